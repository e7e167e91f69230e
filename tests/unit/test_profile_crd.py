"""The DaskClusterProfile CRD and the spec.profile fields, as the API server enforces them: the
CEL rules refuse a malformed option or bounds, and a cluster may leave its scheduler and
workers to a profile only when it names one."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dask_kube_jobs import crds
from dask_kube_jobs.contract import profiles
from dask_kube_jobs.local.apiserver import crd_validation, errors
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.registry import type_from_crd
from dask_kube_jobs.local.apiserver.tables import to_table

GROUP = "kubernetes.dask.org"
PROFILE: dict[str, Any] = {
    "apiVersion": f"{GROUP}/v1", "kind": "DaskClusterProfile", "metadata": {"name": "standard"},
    "spec": {
        "description": "2-16 GiB workers",
        "image": "ghcr.io/dask/dask:latest",
        "worker": {"replicas": 2, "minReplicas": 0, "maxReplicas": 20},
        "locked": ["image", "nodeSelector"],
        "options": [
            {"name": "worker_memory", "target": "worker.memory",
             "quantity": {"default": "4Gi", "min": "2Gi", "max": "16Gi"}},
            {"name": "image", "target": "image",
             "choice": {"default": "a:1", "choices": ["a:1", "a:2"]}},
            {"name": "workers", "target": "worker.replicas",
             "integer": {"default": 2, "min": 1, "max": 20}},
            {"name": "mode", "target": "env.MODE", "choice": {"default": "x", "choices": ["x"]}},
        ],
    },
}


@pytest.fixture(scope="module")
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    crd_type = core.registry.get("apiextensions.k8s.io", "customresourcedefinitions")
    for kind in crds.CRD_FILES:
        core.create(crd_type, "v1", None, crds.load_crd(kind))
    return core


def create(core: APICore, plural: str, body: dict, namespace: str | None = "default") -> dict:
    return core.create(core.registry.get(GROUP, plural), "v1", namespace, copy.deepcopy(body))


def refusal(core: APICore, plural: str, body: dict, namespace: str | None = "default") -> str:
    with pytest.raises(errors.APIError) as refused:
        create(core, plural, body, namespace)
    assert refused.value.code == 422
    return refused.value.message


def test_the_profile_crd_is_cluster_scoped_with_a_short_name_and_passes_crd_validation():
    crd = crds.load_crd("DaskClusterProfile")
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["dcp"]
    assert crd_validation.validate_crd(crd_validation.default_crd(crd)) == []


def test_a_profile_is_stored_whole_and_prints_its_description_image_and_locks(core):
    stored = create(core, "daskclusterprofiles", PROFILE, None)
    assert "namespace" not in stored["metadata"]
    assert stored["spec"]["options"] == PROFILE["spec"]["options"]
    table = to_table(type_from_crd(crds.load_crd("DaskClusterProfile")), [stored], version="v1")
    names = [c["name"] for c in table["columnDefinitions"]]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    assert row["Description"] == "2-16 GiB workers"
    assert row["Image"] == "ghcr.io/dask/dask:latest"
    assert "nodeSelector" in str(row["Locked"])


def _profile_with(option: dict | None = None, **spec: Any) -> dict:
    body = copy.deepcopy(PROFILE)
    body["metadata"]["name"] = "p" + str(abs(hash(repr((option, spec)))))[:8]
    body["spec"].update(spec)
    if option is not None:
        body["spec"]["options"] = [option]
    return body


@pytest.mark.parametrize("option,message", [
    ({"name": "m", "target": "worker.memory"}, "set exactly one of quantity, integer and choice"),
    ({"name": "m", "target": "worker.replicas", "integer": {"default": 1},
      "choice": {"default": "a", "choices": ["a"]}}, "set exactly one of quantity"),
    ({"name": "m", "target": "worker.replicas", "integer": {"default": 3, "min": 5, "max": 4}},
     "min must not exceed max"),
    ({"name": "m", "target": "worker.replicas", "integer": {"default": 9, "min": 1, "max": 4}},
     "default must lie within [min, max]"),
    ({"name": "m", "target": "image", "choice": {"default": "c", "choices": ["a", "b"]}},
     "default must be one of choices"),
    ({"name": "Memory", "target": "worker.memory", "quantity": {"default": "1Gi"}}, "name"),
    ({"name": "m", "target": "worker.disk", "quantity": {"default": "1Gi"}}, "target"),
], ids=["no-kind", "two-kinds", "min-over-max", "default-outside", "default-not-a-choice",
        "name-not-identifier", "unknown-target"])
def test_a_malformed_option_is_refused(core, option, message):
    assert message in refusal(core, "daskclusterprofiles", _profile_with(option), None)


def test_worker_bounds_in_the_wrong_order_and_an_unknown_lock_are_refused(core):
    bad = _profile_with(worker={"minReplicas": 5, "maxReplicas": 2})
    assert "minReplicas must not exceed maxReplicas" in refusal(core, "daskclusterprofiles", bad, None)
    bad = _profile_with(locked=["command"])
    assert "Unsupported value" in refusal(core, "daskclusterprofiles", bad, None)


def test_the_lockable_fields_and_targets_of_the_contract_are_the_schemas():
    spec = crds.load_crd("DaskClusterProfile")["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert spec["locked"]["items"]["enum"] == list(profiles.LOCKABLE)
    assert spec["options"]["items"]["properties"]["target"]["pattern"] == profiles.TARGET_PATTERN
    assert profiles.option_kind_of_target("env.MY_VAR") == "choice"
    assert profiles.option_kind_of_target("worker.disk") is None


def _cluster(name: str, spec: dict) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "DaskCluster", "metadata": {"name": name},
            "spec": spec}


def test_a_cluster_may_leave_scheduler_and_workers_to_a_profile_only_when_it_names_one(core):
    message = refusal(core, "daskclusters", _cluster("bare", {"worker": {"replicas": 2}}))
    assert "unless spec.profile names a DaskClusterProfile" in message
    stored = create(core, "daskclusters", _cluster("profiled", {
        "profile": {"name": "standard", "options": {"worker_memory": "8Gi", "workers": 3}},
        "worker": {"replicas": 2}}))
    assert stored["spec"]["profile"]["options"] == {"worker_memory": "8Gi", "workers": 3}


def _job(name: str, spec: dict) -> dict:
    body = {"apiVersion": f"{GROUP}/v1", "kind": "DaskJob", "metadata": {"name": name},
            "spec": {"job": {"spec": {"containers": [{"name": "job", "image": "x"}]}}, **spec}}
    return body


def test_a_job_with_a_profile_may_leave_out_its_cluster_but_not_combine_it_with_clusterref(core):
    stored = create(core, "daskjobs", _job("with-profile", {"profile": {"name": "standard"}}))
    assert "cluster" not in stored["spec"]
    partial = {"profile": {"name": "standard"}, "cluster": {"spec": {"worker": {"replicas": 1}}}}
    create(core, "daskjobs", _job("partial", partial))
    assert "exactly one of spec.cluster" in refusal(core, "daskjobs", _job("neither", {}))
    assert "spec.cluster.spec.scheduler (spec and service)" in refusal(
        core, "daskjobs", _job("bare", {"cluster": {"spec": {"worker": {"replicas": 1}}}}))
    assert "cannot be set with spec.clusterRef" in refusal(core, "daskjobs", _job("ref", {
        "profile": {"name": "standard"}, "clusterRef": {"name": "c"}}))
