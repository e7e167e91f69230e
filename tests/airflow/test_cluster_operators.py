"""CreateDaskClusterOperator / DeleteDaskClusterOperator outside a DAG run, on the local
control plane with the real operator: addresses in XCom, reuse on retry but never adoption of
someone else's cluster, a connection from the host through ``connect_to_cluster``, teardown."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from distributed import Client

from dask_kube_jobs import kube
from dask_kube_jobs.airflow_provider._identity import LABEL_KEY, TaskIdentity
from dask_kube_jobs.airflow_provider.operators.daskcluster import (
    CreateDaskClusterOperator,
    DeleteDaskClusterOperator,
    connect_to_cluster,
)
from dask_kube_jobs.contract.api_resources import DASKCLUSTERS

from ..kubeconfigs import PLANE_CONTEXT, two_context_kubeconfig
from .conftest import CONN_ENV
from .helpers import FakeTI

pytestmark = pytest.mark.timeout(240)


async def get_cluster(plane: Any, namespace: str, name: str) -> dict[str, Any] | None:
    client = await kube.Client.connect(plane.kubeconfig)
    try:
        return await client.get(DASKCLUSTERS, namespace, name)
    finally:
        await client.close()


def test_create_reuse_on_retry_connect_from_the_host_and_delete(
        local_control_plane: Any, namespace: str, dkj_connection: Any, kubectl: Any) -> None:
    ti = FakeTI(task_id="create")
    create = CreateDaskClusterOperator(task_id="create", n_workers=1, min_ready_workers=1)
    info = create.execute({"ti": ti})
    name = info["name"]
    assert name == TaskIdentity("dag", "create", "run-1").job_name().rsplit("-", 1)[0]
    assert info == {"name": name, "namespace": namespace, "ready_workers": 1,
                    "scheduler_address":
                        f"tcp://{name}-scheduler.{namespace}.svc.cluster.local:8786",
                    "dashboard_address":
                        f"http://{name}-scheduler.{namespace}.svc.cluster.local:8787"}
    assert ti.xcoms["scheduler_address"] == info["scheduler_address"]
    assert ti.xcoms["dashboard_url"] == info["dashboard_address"] + "/status"
    first = asyncio.run(get_cluster(local_control_plane, namespace, name))
    assert first and first["metadata"]["labels"][LABEL_KEY] == TaskIdentity(
        "dag", "create", "run-1").key
    # A retry of the same task finds its own cluster and reuses it: no 409, no second cluster.
    retry = CreateDaskClusterOperator(task_id="create", n_workers=1)
    assert retry.execute({"ti": FakeTI(task_id="create", try_number=2)})["name"] == name
    again = asyncio.run(get_cluster(local_control_plane, namespace, name))
    assert again and again["metadata"]["uid"] == first["metadata"]["uid"]
    # Another task asking for that name must not adopt it (its teardown would delete it).
    other = CreateDaskClusterOperator(task_id="other", cluster_name=name, n_workers=1)
    with pytest.raises(AirflowException, match="not created by this task"):
        other.execute({"ti": FakeTI(task_id="other")})
    # A task outside Kubernetes reaches the scheduler through a port-forward.
    with connect_to_cluster(name, namespace) as cluster, Client(cluster) as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    assert asyncio.run(get_cluster(local_control_plane, namespace, name))  # still there
    delete = DeleteDaskClusterOperator(task_id="delete", cluster_name=name)
    assert delete.execute({"ti": FakeTI(task_id="delete")}) is True
    assert kubectl("get", "daskclusters,daskworkergroups,pods,services", "-o",
                   "name").stdout.strip() == ""
    assert delete.execute({"ti": FakeTI(task_id="delete")}) is False  # gone: fine
    strict = DeleteDaskClusterOperator(task_id="delete", cluster_name=name,
                                       ignore_missing=False)
    with pytest.raises(AirflowException, match="does not exist"):
        strict.execute({"ti": FakeTI(task_id="delete")})


def execute_in_thread(op: CreateDaskClusterOperator, ti: FakeTI
                      ) -> tuple[threading.Thread, list[Any]]:
    """``op.execute`` in a worker thread (as a task runs while ``on_kill`` comes in from a
    signal); the list gets its return value or exception."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(op.execute({"ti": ti}))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    return worker, outcome


def wait_until_waiting(op: CreateDaskClusterOperator, plane: Any, namespace: str,
                       name: str) -> dict[str, Any]:
    """The cluster, once it exists and the operator has decided what a kill would delete."""
    for _ in range(300):
        obj = asyncio.run(get_cluster(plane, namespace, name))
        if obj is not None and (obj.get("status") or {}).get("phase") == "Running":
            time.sleep(0.5)  # the operator is past create-or-reuse, in its wait
            return obj
        time.sleep(0.2)
    raise AssertionError(f"DaskCluster {name} never ran")


def test_killing_the_create_task_deletes_the_cluster_it_made_but_not_one_it_reused(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    # A try that made its cluster is killed while waiting for a worker that never comes:
    # the half-made cluster goes with it.
    made = CreateDaskClusterOperator(task_id="made", n_workers=0, min_ready_workers=1,
                                     startup_timeout=120)
    name = made.default_name(TaskIdentity("dag", "made", "run-1"))
    worker, outcome = execute_in_thread(made, FakeTI(task_id="made"))
    wait_until_waiting(made, local_control_plane, namespace, name)
    made.on_kill()
    obj = asyncio.run(get_cluster(local_control_plane, namespace, name))
    assert obj is None or obj["metadata"].get("deletionTimestamp"), "kill left the cluster"
    worker.join(60)
    assert not worker.is_alive() and isinstance(outcome[0], AirflowException)

    # A cluster an earlier try got running is reused by a retry; killing the retry keeps it.
    first = CreateDaskClusterOperator(task_id="shared", n_workers=0)
    shared = first.execute({"ti": FakeTI(task_id="shared")})["name"]
    running = asyncio.run(get_cluster(local_control_plane, namespace, shared))
    assert running and running["status"]["phase"] == "Running"
    retry = CreateDaskClusterOperator(task_id="shared", n_workers=0, min_ready_workers=1,
                                      startup_timeout=8)
    worker, outcome = execute_in_thread(retry, FakeTI(task_id="shared", try_number=2))
    wait_until_waiting(retry, local_control_plane, namespace, shared)
    retry.on_kill()
    kept = asyncio.run(get_cluster(local_control_plane, namespace, shared))
    assert kept and not kept["metadata"].get("deletionTimestamp"), "kill deleted a reused cluster"
    assert kept["metadata"]["uid"] == running["metadata"]["uid"]
    worker.join(60)  # its startup_timeout ends the wait
    assert not worker.is_alive() and isinstance(outcome[0], AirflowException)


MANIFEST = """
apiVersion: kubernetes.dask.org/v1
kind: DaskCluster
metadata:
  name: from-yaml
spec:
  scheduler:
    spec:
      containers:
      - name: scheduler
        image: ghcr.io/dask/dask:latest
        args: [dask, scheduler, --host, 0.0.0.0]
    service:
      type: ClusterIP
      selector: {dask.org/cluster-name: from-yaml, dask.org/component: scheduler}
      ports: [{name: tcp-comm, port: 8786, targetPort: 8786, protocol: TCP}]
  worker:
    replicas: 0
    spec:
      containers:
      - name: worker
        image: ghcr.io/dask/dask:latest
        args: [dask, worker]
"""


def test_a_manifest_cluster_without_waiting_returns_its_addresses_at_once(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    ti = FakeTI(task_id="create")
    create = CreateDaskClusterOperator(task_id="create", manifest=MANIFEST,
                                       wait_for_ready=False)
    info = create.execute({"ti": ti})
    assert info["name"] == "from-yaml" and info["namespace"] == namespace
    assert info["scheduler_address"] == \
        f"tcp://from-yaml-scheduler.{namespace}.svc.cluster.local:8786"
    assert asyncio.run(get_cluster(local_control_plane, namespace, "from-yaml"))
    DeleteDaskClusterOperator(task_id="d", cluster_name="from-yaml",
                              wait_for_deletion=False).execute({"ti": ti})
    obj = asyncio.run(get_cluster(local_control_plane, namespace, "from-yaml"))
    assert obj is None or obj["metadata"].get("deletionTimestamp")


def test_a_cluster_that_never_gets_ready_is_deleted_and_fails_the_task(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    create = CreateDaskClusterOperator(task_id="create", cluster_name="too-few", n_workers=0,
                                       min_ready_workers=1, startup_timeout=8)
    with pytest.raises(AirflowException, match=r"0/1 ready worker.*startup_timeout 8s.*deleted"):
        create.execute({"ti": FakeTI(task_id="create")})
    obj = asyncio.run(get_cluster(local_control_plane, namespace, "too-few"))
    assert obj is None or obj["metadata"].get("deletionTimestamp")


def test_the_connections_cluster_context_is_used_for_a_shared_cluster(
        local_control_plane: Any, namespace: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    # The kubeconfig's current context leads nowhere; the connection names the working one.
    config = two_context_kubeconfig(local_control_plane.kubeconfig, tmp_path / "config")
    extra = {"kube_config_path": str(config), "cluster_context": PLANE_CONTEXT,
             "namespace": namespace}
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "dask_kube_jobs", "extra": extra}))
    info = CreateDaskClusterOperator(task_id="create", cluster_name="ctx", n_workers=1,
                                     min_ready_workers=1).execute({"ti": FakeTI()})
    assert info["name"] == "ctx" and info["ready_workers"] == 1
    with connect_to_cluster("ctx", namespace) as cluster, Client(cluster) as client:
        assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    assert DeleteDaskClusterOperator(task_id="delete", cluster_name="ctx").execute(
        {"ti": FakeTI()}) is True


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"manifest": MANIFEST, "n_workers": 2}, "not both", id="manifest-and-keywords"),
    pytest.param({"min_ready_workers": -1}, "min_ready_workers", id="negative-workers"),
    pytest.param({"startup_timeout": 0}, "startup_timeout", id="zero-timeout"),
])
def test_contradictory_create_arguments_are_refused_at_parse_time(
        kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CreateDaskClusterOperator(task_id="create", **kwargs)


def test_bad_cluster_manifests_and_names_are_refused_before_any_request() -> None:
    ti = {"ti": FakeTI(task_id="create")}
    with pytest.raises(ValueError, match="must be a DaskCluster"):
        CreateDaskClusterOperator(task_id="create", manifest="kind: DaskJob\nspec: {}\n"
                                  ).build_manifest(TaskIdentity("d", "t", "r"))
    with pytest.raises(ValueError, match="name"):
        CreateDaskClusterOperator(task_id="create", cluster_name="Not_A_Name").execute(ti)
    with pytest.raises(ValueError, match="cluster_name"):
        DeleteDaskClusterOperator(task_id="d", cluster_name=" ")


def test_a_cluster_task_names_its_profile_or_the_connections_default() -> None:
    identity = TaskIdentity("d", "t", "r")
    op = CreateDaskClusterOperator(task_id="create", cluster_name="prof", profile="standard",
                                   profile_options={"workers": 2})
    assert op.build_manifest(identity, "fallback")["spec"] == \
        {"profile": {"name": "standard", "options": {"workers": 2}}}
    plain = CreateDaskClusterOperator(task_id="create", cluster_name="prof", n_workers=1)
    assert plain.build_manifest(identity, "fallback")["spec"] == \
        {"profile": {"name": "fallback"}, "worker": {"replicas": 1}}
    assert "profile" not in plain.build_manifest(identity)["spec"]
    with pytest.raises(ValueError, match="profile_options"):
        CreateDaskClusterOperator(task_id="create", cluster_name="prof",
                                  profile_options={"workers": 2}).build_manifest(identity)
