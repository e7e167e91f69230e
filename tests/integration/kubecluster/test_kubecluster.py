"""KubeCluster against the local control plane with the operator and real Dask processes.

The test process is outside the "cluster" (Service names do not resolve here), so every
``Client(cluster)`` below goes through the port-forward KubeCluster opens, as from a laptop.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from dask.distributed import Client

from dask_kube_jobs import make_cluster_spec
from dask_kube_jobs._kubecluster import (
    ClusterExistsError,
    ClusterNotFoundError,
    ClusterStartupError,
    KubeCluster,
)
from dask_kube_jobs.local.testing import Kubectl

from ...kubeconfigs import PLANE_CONTEXT, two_context_kubeconfig

pytestmark = pytest.mark.timeout(240)

WORKER = "dask worker --nthreads 1"  # keep CPU modest


@pytest.fixture
def options(local_control_plane: Any, namespace: str) -> dict[str, Any]:
    return {"namespace": namespace, "kubeconfig": local_control_plane.kubeconfig,
            "worker_command": WORKER, "quiet": True}


def exists(kubectl: Kubectl, kind: str, name: str) -> bool:
    return kubectl("get", kind, name, check=False).returncode == 0


def eventually(check: Callable[[], bool], timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what or check}")


def n_workers(client: Client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def test_a_created_cluster_computes_through_a_port_forward_scales_and_is_deleted_on_close(
        options: dict[str, Any], kubectl: Kubectl, capsys: pytest.CaptureFixture[str]) -> None:
    with KubeCluster(name="basic", n_workers=1, **{**options, "quiet": False}) as cluster:
        assert cluster.created and cluster.shutdown_on_close
        assert cluster.scheduler_address.startswith("tcp://localhost:")
        assert cluster.dashboard_link.startswith("http://localhost:")
        health = cluster.dashboard_link.replace("/status", "/health")
        with urllib.request.urlopen(health, timeout=30) as response:  # the dashboard forward
            assert response.read() == b"ok"
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
            cluster.scale(2)
            client.wait_for_workers(2, timeout=60)
            assert kubectl("get", "daskworkergroup", "basic-default",
                           "-o", "jsonpath={.spec.worker.replicas}").stdout == "2"
            cluster.scale(1)  # the operator retires one worker through the scheduler
            eventually(lambda: n_workers(client) == 1, what="scale-down to 1 worker")
        logs = cluster.get_logs()
        assert "basic-scheduler" in logs and "Scheduler at" in logs["basic-scheduler"]
        assert any(name.startswith("basic-default-worker-") for name in logs)
    assert not exists(kubectl, "daskcluster", "basic")
    err = capsys.readouterr().err
    assert "KubeCluster basic: DaskCluster" in err and "ready" in err


def test_adapt_without_arguments_creates_an_owned_daskautoscaler_and_scale_turns_it_off(
        options: dict[str, Any], kubectl: Kubectl) -> None:
    with KubeCluster(name="adaptive", n_workers=0, **options) as cluster:
        cluster.adapt()
        autoscaler = kubectl("get", "daskautoscaler", "adaptive", "-o", "json").json()
        assert autoscaler["spec"]["minimum"] == 0 and autoscaler["spec"]["maximum"] == 10
        assert autoscaler["spec"]["workerGroup"] == "adaptive-default"
        assert autoscaler["metadata"]["ownerReferences"][0]["name"] == "adaptive"
        cluster.adapt(minimum=1, maximum=2)  # updates the same resource
        spec = kubectl("get", "daskautoscaler", "adaptive", "-o", "json").json()["spec"]
        assert (spec["minimum"], spec["maximum"]) == (1, 2)
        with pytest.raises(ValueError, match="must not exceed"):
            cluster.adapt(minimum=3, maximum=2)
        cluster.scale(0)
        assert not exists(kubectl, "daskautoscaler", "adaptive")


def test_worker_groups_are_added_used_and_deleted(options: dict[str, Any],
                                                  kubectl: Kubectl) -> None:
    with KubeCluster(name="groups", n_workers=1, **options) as cluster:
        cluster.add_worker_group("extra", n_workers=1, env={"GROUP": "extra"})
        group = kubectl("get", "daskworkergroup", "groups-extra", "-o", "json").json()
        container = group["spec"]["worker"]["spec"]["containers"][0]
        assert {"name": "GROUP", "value": "extra"} in container["env"]
        assert container["args"][:4] == ["dask", "worker", "--nthreads", "1"]  # the template's
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=90)
            cluster.scale(0, worker_group="extra")
            eventually(lambda: n_workers(client) == 1, what="the extra group to shrink")
        cluster.delete_worker_group("extra")
        # deleted at once; gone once the operator has stopped its daemon and dropped its finalizer
        eventually(lambda: not exists(kubectl, "daskworkergroup", "groups-extra"), timeout=30,
                   what="the deleted worker group to go")
        with pytest.raises(ValueError, match="scale"):
            cluster.delete_worker_group("default")


def test_from_name_connects_and_leaves_the_cluster_running(options: dict[str, Any],
                                                           kubectl: Kubectl) -> None:
    first = KubeCluster(name="shared", n_workers=0, shutdown_on_close=False, **options)
    first.close()
    assert exists(kubectl, "daskcluster", "shared")
    kw = {k: v for k, v in options.items() if k != "worker_command"}
    with KubeCluster.from_name("shared", **kw) as cluster:
        assert not cluster.created and cluster.shutdown_on_close is False
        with pytest.raises(RuntimeError, match="does not serve Jupyter"):
            _ = cluster.jupyter_link  # its scheduler has no --jupyter
        with Client(cluster) as client:
            assert client.run_on_scheduler(lambda: 41 + 1) == 42
    assert exists(kubectl, "daskcluster", "shared")
    # an existing cluster is connected to by default, and not deleted either
    with KubeCluster(name="shared", **options) as cluster:
        assert not cluster.created
    assert exists(kubectl, "daskcluster", "shared")
    with KubeCluster.from_name("shared", shutdown_on_close=True, **kw):
        pass
    assert not exists(kubectl, "daskcluster", "shared")


def test_create_mode_accepts_strings_in_any_case(options: dict[str, Any],
                                                 kubectl: Kubectl) -> None:
    with pytest.raises(ClusterNotFoundError, match="does not exist"):
        KubeCluster(name="absent", create_mode="connect_only", **options)
    assert not exists(kubectl, "daskcluster", "absent")
    with pytest.raises(ValueError, match="create_mode"):
        KubeCluster(name="absent", create_mode="connect-or-whatever", **options)
    with KubeCluster(name="modes", n_workers=0, create_mode="Create_Only", **options):
        with pytest.raises(ClusterExistsError, match="already exists"):
            KubeCluster(name="modes", create_mode="CREATE_ONLY", **options)
        assert exists(kubectl, "daskcluster", "modes")  # the failed attempt deleted nothing


async def test_async_use(options: dict[str, Any], kubectl: Kubectl) -> None:
    async with KubeCluster(name="asyncluster", n_workers=1, asynchronous=True,
                           **options) as cluster:
        async with Client(cluster, asynchronous=True) as client:
            await client.wait_for_workers(1, timeout=60)
            assert await client.submit(lambda x: x * 2, 21) == 42
        await cluster.adapt(maximum=2)
        logs = await cluster.get_logs()
        assert "asyncluster-scheduler" in logs
    assert not exists(kubectl, "daskcluster", "asyncluster")


def test_custom_cluster_spec_from_a_dict_and_a_yaml_file(
        options: dict[str, Any], kubectl: Kubectl, tmp_path: Path) -> None:
    spec = make_cluster_spec(name="custom", n_workers=1, worker_command=WORKER)
    spec["metadata"]["labels"] = {"team": "data"}
    spec["spec"]["worker"]["spec"]["containers"][0]["env"] = [{"name": "FOO", "value": "bar"}]
    kw = {k: v for k, v in options.items() if k != "worker_command"}
    with KubeCluster(custom_cluster_spec=spec, **kw) as cluster:
        assert cluster.name == "custom"
        assert kubectl("get", "daskcluster", "custom",
                       "-o", "jsonpath={.metadata.labels.team}").stdout == "data"
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=60)
            assert set(client.run(lambda: __import__("os").environ["FOO"]).values()) == {"bar"}
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(make_cluster_spec(name="from-yaml", n_workers=0)))
    with KubeCluster(custom_cluster_spec=str(path), **kw) as cluster:
        assert cluster.name == "from-yaml" and exists(kubectl, "daskcluster", "from-yaml")
    assert not exists(kubectl, "daskcluster", "from-yaml")


def test_a_service_selecting_no_scheduler_is_reported_not_retried_forever(
        options: dict[str, Any], kubectl: Kubectl) -> None:
    spec = make_cluster_spec(name="mislabelled", n_workers=0)
    spec["spec"]["scheduler"]["service"]["selector"]["dask.org/cluster-name"] = "elsewhere"
    kw = {k: v for k, v in options.items() if k != "worker_command"}
    with pytest.raises(ClusterStartupError, match="selects no ready Pod"):
        KubeCluster(custom_cluster_spec=spec, **kw)
    assert not exists(kubectl, "daskcluster", "mislabelled")


def test_a_scheduler_that_never_gets_ready_raises_and_deletes_the_cluster(
        options: dict[str, Any], kubectl: Kubectl) -> None:
    # No GPU on this machine: the scheduler Pod stays Pending (Unschedulable), as on a cluster
    # without GPU nodes.
    with pytest.raises(ClusterStartupError) as info:
        KubeCluster(name="nogpu", n_workers=0, resources={"limits": {"nvidia.com/gpu": 1}},
                    resource_timeout=8, **options)
    message = str(info.value)
    assert "nogpu-scheduler" in message and "was not ready within 8s" in message
    assert "nvidia.com/gpu" in message
    assert not exists(kubectl, "daskcluster", "nogpu")


def test_bad_arguments_fail_before_any_request(options: dict[str, Any]) -> None:
    from dask_kube_jobs import SpecError

    with pytest.raises(SpecError, match="memroy"):
        KubeCluster(name="typo", resources={"requests": {"memroy": "1Gi"}}, **options)
    with pytest.raises(ValueError, match="differs"):
        KubeCluster(name="a", custom_cluster_spec=make_cluster_spec(name="b"), **options)


IN_POD = """
from dask.distributed import Client
from dask_kube_jobs._kubecluster import KubeCluster

with KubeCluster.from_name("inside", quiet=True) as cluster:  # no namespace, no kubeconfig
    print("NAMESPACE", cluster.namespace)
    print("ADDRESS", cluster.scheduler_address)
    with Client(cluster) as client:
        print("RESULT", client.submit(sum, [1, 2, 3]).result(timeout=60))
"""


def test_inside_a_pod_the_namespace_is_the_pods_and_no_port_forward_is_used(
        options: dict[str, Any], kubectl: Kubectl, namespace: str) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "dask-user"},
            "rules": [{"apiGroups": ["kubernetes.dask.org"], "verbs": ["*"],
                       "resources": ["daskclusters", "daskworkergroups", "daskautoscalers"]},
                      {"apiGroups": [""], "verbs": ["get", "list", "watch"],
                       "resources": ["pods", "pods/log", "services"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "dask-user"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                           "name": "dask-user"},
               "subjects": [{"kind": "ServiceAccount", "name": "default",
                             "namespace": namespace}]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "notebook"},
           "spec": {"restartPolicy": "Never", "containers": [
               {"name": "notebook", "image": "ghcr.io/dask/dask:latest",
                "args": ["python", "-c", IN_POD]}]}}
    with KubeCluster(name="inside", n_workers=1, **options):
        for obj in (role, binding, pod):
            kubectl("apply", "-f", "-", input=yaml.safe_dump(obj))

        def finished() -> bool:
            phase = kubectl("get", "pod", "notebook", "-o", "jsonpath={.status.phase}").stdout
            return phase in ("Succeeded", "Failed")

        eventually(finished, timeout=120, what="the in-cluster notebook Pod")
        out = kubectl("logs", "notebook").stdout
        assert kubectl("get", "pod", "notebook", "-o",
                       "jsonpath={.status.phase}").stdout == "Succeeded", out
        assert f"NAMESPACE {namespace}" in out
        assert f"ADDRESS tcp://inside-scheduler.{namespace}.svc.cluster.local:8786" in out
        assert "RESULT 6" in out
        assert exists(kubectl, "daskcluster", "inside")  # from_name did not delete it


def test_an_operator_that_never_answers_is_named_in_the_error_and_nothing_is_left(
        options: dict[str, Any], kubectl: Kubectl, monkeypatch: pytest.MonkeyPatch) -> None:
    from dask_kube_jobs._kubecluster import _api

    real = _api.scheduler_objects

    async def as_if_no_operator(*args: Any) -> Any:
        cluster, pod, service = await real(*args)
        if cluster is not None:
            cluster.pop("status", None)
        return cluster, None, None

    monkeypatch.setattr(_api, "scheduler_objects", as_if_no_operator)
    with pytest.raises(ClusterStartupError,
                       match="DaskCluster silent in namespace .* has no status after 2s: is "
                             "the dask-kube-jobs operator running"):
        KubeCluster(name="silent", n_workers=0, resource_timeout=2, **options)
    assert not exists(kubectl, "daskcluster", "silent")


def test_a_context_other_than_the_current_one_is_the_one_used(
        local_control_plane: Any, namespace: str, kubectl: Kubectl, tmp_path: Path) -> None:
    config = two_context_kubeconfig(local_control_plane.kubeconfig, tmp_path / "config",
                                    namespace=namespace)
    # No namespace argument: the chosen context's namespace is the one used.
    with KubeCluster(name="ctx", n_workers=0, kubeconfig=config, context=PLANE_CONTEXT,
                     worker_command=WORKER, quiet=True) as cluster:
        assert cluster.namespace == namespace
        assert exists(kubectl, "daskcluster", "ctx")
    assert not exists(kubectl, "daskcluster", "ctx")
    # The kubeconfig's current context leads nowhere: without context= nothing is reached.
    with pytest.raises(httpx.ConnectError):
        KubeCluster(name="ctx", n_workers=0, kubeconfig=config, namespace=namespace,
                    quiet=True, resource_timeout=5)
