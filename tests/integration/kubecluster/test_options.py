"""KubeCluster's pure parts: argument handling, Pod descriptions, manifests (no API server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dask_kube_jobs import make_cluster_spec
from dask_kube_jobs._kubecluster import CreateMode, KubeCluster
from dask_kube_jobs._kubecluster._api import autoscaler_body, worker_group_body
from dask_kube_jobs._kubecluster._network import _container_port
from dask_kube_jobs._kubecluster._options import format_name, parse_create_mode
from dask_kube_jobs._kubecluster._progress import describe_pod


@pytest.mark.parametrize("value, expected", [
    (None, CreateMode.CREATE_OR_CONNECT), ("create_only", CreateMode.CREATE_ONLY),
    ("Connect-Only", CreateMode.CONNECT_ONLY), (CreateMode.CREATE_ONLY, CreateMode.CREATE_ONLY),
    ("CreateMode.CONNECT_ONLY", CreateMode.CONNECT_ONLY),
], ids=["none", "lower", "dashes", "enum", "repr"])
def test_create_mode_is_parsed_from_enums_and_strings(value: object, expected: CreateMode) -> None:
    assert parse_create_mode(value) is expected


def test_an_unknown_create_mode_is_an_error_listing_the_choices() -> None:
    with pytest.raises(ValueError, match="CREATE_OR_CONNECT, CREATE_ONLY, CONNECT_ONLY"):
        parse_create_mode("connect")


def test_names_expand_user_and_uuid_into_a_dns_label() -> None:
    name = format_name("dask-{user}-{uuid}", user="Jane_Doe")
    assert name.startswith("dask-jane-doe-") and len(name) == len("dask-jane-doe-") + 10


def test_custom_cluster_spec_is_checked_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="custom_cluster_spec: metadata.name is required"):
        KubeCluster(custom_cluster_spec={"spec": {}})
    with pytest.raises(ValueError, match="custom_cluster_spec: cannot read"):
        KubeCluster(custom_cluster_spec=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="custom_cluster_spec: must be a DaskCluster .got 'DaskJob'"):
        KubeCluster(custom_cluster_spec={"kind": "DaskJob", "metadata": {"name": "j"}, "spec": {}})


def test_pod_states_are_described_with_their_reason() -> None:
    assert describe_pod(None) == "not created yet"
    crash = {"status": {"phase": "Running", "containerStatuses": [
        {"state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}}]}}
    assert describe_pod(crash) == "CrashLoopBackOff (back-off 10s)"
    ready = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert describe_pod(ready) == "ready"


def test_a_worker_group_copies_the_cluster_template_with_overrides() -> None:
    cluster = make_cluster_spec(name="c", n_workers=2, env={"A": "1"})
    cluster["metadata"].update(namespace="ns", uid="u-1")
    group = worker_group_body(cluster, "c-extra", 4, {"image": "img:2", "env": None}, None)
    worker = group["spec"]["worker"]
    assert group["spec"]["cluster"] == "c" and worker["replicas"] == 4
    assert worker["spec"]["containers"][0]["image"] == "img:2"
    assert worker["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    custom = worker_group_body(cluster, "c-own", 1, {}, {"spec": {"containers": []}})
    assert custom["spec"]["worker"] == {"spec": {"containers": []}, "replicas": 1}
    scaler = autoscaler_body(cluster, "c", {"cluster": "c", "minimum": 0, "maximum": 10})
    assert scaler["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_a_named_target_port_is_resolved_on_the_pod() -> None:
    pod = {"spec": {"containers": [{"ports": [{"name": "tcp-comm", "containerPort": 9786}]}]}}
    assert _container_port(pod, "tcp-comm", 8786) == 9786
    assert _container_port(pod, 8000, 8786) == 8000
    assert _container_port(None, "nope", 8786) == 8786


def test_api_errors_become_the_packages_errors_with_a_hint() -> None:
    from dask_kube_jobs.clusters._async import explain
    from dask_kube_jobs.errors import CRDsNotInstalled, DaskKubeJobsError
    from dask_kube_jobs.kube import api_error

    missing = explain(api_error(404, {"reason": "NotFound", "message": "the server could not find "
                                      "the requested resource"}), "cannot create DaskCluster x")
    assert isinstance(missing, CRDsNotInstalled) and "not installed" in str(missing)
    denied = explain(api_error(403, {"reason": "Forbidden", "message": "nope"}),
                     "cannot create DaskCluster x")
    assert isinstance(denied, DaskKubeJobsError) and "daskclusters" in denied.hint
