"""Upstream's ``KubeCluster`` and ``make_cluster_spec``, unmodified, against our operator.

Each test uses the client the way upstream documents it. The test process is outside the
"cluster" (Service names do not resolve here), so upstream's client port-forwards to the
scheduler Service exactly as from a laptop, through kr8s and the local API server.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from dask.distributed import Client
from dask_kubernetes.exceptions import CrashLoopBackOffError, SchedulerStartupError
from dask_kubernetes.operator import KubeCluster, make_cluster_spec
from dask_kubernetes.operator._objects import DaskCluster
from dask_kubernetes.operator.networking import wait_for_scheduler

from dask_kube_jobs.local.testing import Kubectl

from .support import eventually

pytestmark = pytest.mark.timeout(300)

# Upstream's default command with one thread per worker (two cores are shared by every test).
WORKER = "dask-worker --nthreads 1"


def n_workers(client: Client) -> int:
    return len(client.scheduler_info(n_workers=-1)["workers"])


def get(kubectl: Kubectl, kind: str, name: str) -> dict[str, Any] | None:
    found = kubectl("get", kind, name, "-o", "json", check=False)
    return found.json() if found.returncode == 0 else None


def test_create_compute_scale_connect_by_name_and_close(namespace: str, kubectl: Kubectl) -> None:
    with KubeCluster(name="life", namespace=namespace, n_workers=1, worker_command=WORKER,
                     quiet=True) as cluster:
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(lambda x: x + 1, 1).result() == 2
            cluster.scale(2)
            eventually(lambda: n_workers(client) == 2, what="2 workers after scale(2)")
        group = get(kubectl, "daskworkergroup", "life-default")
        assert group is not None and group["spec"]["worker"]["replicas"] == 2

        # from_name connects to the running cluster and does not own it.
        other = KubeCluster.from_name("life", namespace=namespace, quiet=True)
        try:
            assert not other.shutdown_on_close
            with Client(other) as client:
                assert n_workers(client) == 2
        finally:
            other.close()
        assert get(kubectl, "daskcluster", "life") is not None
    # close() of the creating client deletes the cluster and waits until it is gone.
    assert get(kubectl, "daskcluster", "life") is None
    eventually(lambda: not kubectl("get", "pods", "-l", "dask.org/cluster-name=life",
                                   "-o", "name").stdout.strip(),
               what="the cluster's Pods to be deleted with it")


def test_custom_spec_with_upstreams_nulls_gets_workers_and_extra_groups_take_env(
        namespace: str, kubectl: Kubectl) -> None:
    spec = make_cluster_spec(name="custom", n_workers=1, worker_command=WORKER)
    worker_container = spec["spec"]["worker"]["spec"]["containers"][0]
    # What upstream's builder sends and what our operator must take as absent (issue 17, bug 1).
    assert worker_container["env"] is None and worker_container["resources"] is None
    with KubeCluster(custom_cluster_spec=spec, namespace=namespace, quiet=True) as cluster:
        assert cluster.name == "custom"
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)

            cluster.add_worker_group("highmem", n_workers=1, worker_command=WORKER,
                                     env={"COMPAT_GROUP": "highmem"})
            eventually(lambda: n_workers(client) == 2, what="the extra group's worker")
            seen = client.run(lambda: __import__("os").environ.get("COMPAT_GROUP"))
            assert sorted(seen.values(), key=str) == [None, "highmem"]
            pods = kubectl("get", "pods", "-l", "dask.org/workergroup-name=custom-highmem",
                           "-o", "json").json()["items"]
            assert len(pods) == 1

            cluster.delete_worker_group("highmem")
            eventually(lambda: n_workers(client) == 1, what="the extra group's worker to leave")
        assert get(kubectl, "daskworkergroup", "custom-highmem") is None


def test_adapt_creates_an_autoscaler_that_scale_removes(namespace: str, kubectl: Kubectl) -> None:
    with KubeCluster(name="elastic", namespace=namespace, n_workers=1, worker_command=WORKER,
                     quiet=True) as cluster, Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        cluster.adapt(minimum=2, maximum=3)
        autoscaler = get(kubectl, "daskautoscaler", "elastic")
        assert autoscaler is not None
        assert (autoscaler["spec"]["minimum"], autoscaler["spec"]["maximum"]) == (2, 3)
        # An idle cluster adapts to its minimum.
        eventually(lambda: n_workers(client) == 2, what="adapt to raise workers to 2")

        cluster.scale(1)  # turns adaptivity off first, as upstream documents
        assert get(kubectl, "daskautoscaler", "elastic") is None
        eventually(lambda: n_workers(client) == 1, what="scale(1) after adapt")


def crashing_spec(name: str) -> dict[str, Any]:
    spec = make_cluster_spec(name=name, n_workers=0)
    spec["spec"]["scheduler"]["spec"]["containers"][0]["args"] = [
        "python", "-c", "print('scheduler says goodbye'); raise SystemExit(3)"]
    return spec


def test_a_crash_looping_scheduler_is_reported_as_such_with_its_logs(
        namespace: str, kubectl: Kubectl) -> None:
    # Upstream's client waits for phase Running ("actioned"), then watches the scheduler Pod
    # and detects CrashLoopBackOff. Against a phase that waited for a ready scheduler it timed
    # out instead, asking whether the operator was running at all.
    with pytest.raises(Exception) as raised:
        KubeCluster(custom_cluster_spec=crashing_spec("crashing"), namespace=namespace,
                    resource_timeout=10, quiet=True)
    error = raised.value
    # It then deletes the cluster and reads the scheduler's logs, in that order: when the
    # Pod is gone first (no Deployment layers to outlive the DaskCluster here; see
    # docs/migrating-from-dask-kubernetes.md), the log read fails inside its handler of the
    # detected crash loop instead of becoming SchedulerStartupError's text.
    if isinstance(error, SchedulerStartupError):
        assert "scheduler says goodbye" in json.dumps(error.args)
    else:
        assert any(isinstance(e, CrashLoopBackOffError) for e in chain(error)), repr(error)
    eventually(lambda: get(kubectl, "daskcluster", "crashing") is None,
               what="the failed cluster to be deleted")

    # The same detection and logs through upstream's pieces while the cluster exists.
    kubectl("apply", "-f", "-", input=json.dumps(crashing_spec("crashing-kept")))
    phase, logs = asyncio.run(crash_loop_and_logs("crashing-kept", namespace))
    assert phase == "Running" and "scheduler says goodbye" in logs


def chain(error: BaseException | None) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or while handling."""
    found: list[BaseException] = []
    while error is not None and error not in found:
        found.append(error)
        error = error.__cause__ or error.__context__
    return found


async def crash_loop_and_logs(name: str, namespace: str) -> tuple[str, str]:
    """Upstream's own crash-loop detection on a cluster, then its scheduler Pod's logs read
    through upstream's DaskCluster object."""
    with pytest.raises(CrashLoopBackOffError):
        await asyncio.wait_for(wait_for_scheduler(name, namespace, timeout=5), timeout=120)
    cluster = await DaskCluster.get(name, namespace=namespace)
    pod = await cluster.scheduler_pod()
    return cluster.status.phase, "\n".join([line async for line in pod.logs()])
