"""The cluster API (``dask_kube_jobs.clusters`` and its async face in ``dask_kube_jobs.asyncio``)
against the local control plane with the operator and real Dask processes."""

from __future__ import annotations

import asyncio

import pytest

from dask_kube_jobs import make_cluster_spec
from dask_kube_jobs.asyncio import (
    AsyncDaskClusterHandle,
    ClusterExistsError,
    ClusterFailed,
    ClusterNotFoundError,
    ClusterStartupError,
    create_cluster,
    get_cluster,
    list_clusters,
)
from dask_kube_jobs.clusters import create_cluster as create_cluster_sync
from dask_kube_jobs.clusters import get_cluster as get_cluster_sync

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("aclients")]

WORKER = "dask worker --nthreads 1"


def spec(name: str, n_workers: int = 1, **kwargs: object) -> dict:
    return make_cluster_spec(name, n_workers=n_workers, worker_command=WORKER, **kwargs)


async def test_create_wait_ready_scale_list_and_delete(kubeconfig: str, namespace: str) -> None:
    cluster = await create_cluster(spec("api"), namespace=namespace, kubeconfig=kubeconfig,
                                   labels={"team": "data"})
    assert cluster.last_status.phase is None or not cluster.last_status.running
    with pytest.raises(ClusterExistsError):
        await create_cluster(spec("api"), namespace=namespace, kubeconfig=kubeconfig)
    ready = await cluster.wait_ready(workers=1, timeout=120)
    assert ready.running and ready.ready_workers >= 1
    assert ready.scheduler_address == f"tcp://api-scheduler.{namespace}.svc.cluster.local:8786"
    assert cluster.last_status == ready  # what was last seen, without a request
    await cluster.scale(2)  # through the worker group's scale subresource
    assert (await cluster.wait_ready(workers=2, timeout=120)).ready_workers == 2
    again = await get_cluster("api", namespace, kubeconfig=kubeconfig)
    assert again.uid == cluster.uid and again.raw["spec"]["worker"]["replicas"] == 2
    assert [c.name for c in await list_clusters(namespace, {"team": "data"},
                                                kubeconfig=kubeconfig)] == ["api"]
    assert await list_clusters(namespace, "team=other", kubeconfig=kubeconfig) == []
    assert await cluster.delete(timeout=120) is True
    with pytest.raises(ClusterNotFoundError):
        await get_cluster("api", namespace, kubeconfig=kubeconfig)
    assert await cluster.delete() is False


async def test_wait_ready_says_why_in_the_operators_words(kubeconfig: str,
                                                          namespace: str) -> None:
    # A worker asking for a GPU the machine does not have stays Pending: the operator writes
    # the scheduler's reason to WorkersReady, and the timeout error carries it.
    gpu = spec("gpu")
    gpu["spec"]["worker"]["spec"]["containers"][0]["resources"] = {
        "limits": {"nvidia.com/gpu": "1"}}
    cluster = await create_cluster(gpu, namespace=namespace, kubeconfig=kubeconfig)
    with pytest.raises(ClusterStartupError) as info:
        await cluster.wait_ready(workers=1, timeout=20)
    assert "0/1 ready worker(s)" in str(info.value) and "nvidia.com/gpu" in str(info.value)
    assert await cluster.delete(timeout=120) is True


async def test_a_failed_cluster_ends_the_wait_at_once(kubeconfig: str, namespace: str) -> None:
    bad = spec("bad")  # a worker Pod the API server refuses: the operator fails the cluster
    bad["spec"]["worker"]["spec"]["containers"][0]["ports"] = [{"containerPort": 70000}]
    cluster = await create_cluster(bad, namespace=namespace, kubeconfig=kubeconfig)
    with pytest.raises(ClusterFailed) as info:
        await cluster.wait_ready(timeout=60)
    assert "containerPort" in str(info.value) and info.value.status.failed
    await cluster.delete(timeout=120)


async def test_a_handle_by_name_sees_the_cluster_deleted_meanwhile(kubeconfig: str,
                                                                  namespace: str) -> None:
    await create_cluster(spec("gone", 0), namespace=namespace, kubeconfig=kubeconfig)
    handle = await AsyncDaskClusterHandle.from_name("gone", namespace, kubeconfig=kubeconfig)
    assert handle.last_status.phase is None  # no request yet

    async def delete_soon() -> bool:
        await asyncio.sleep(2)
        return await (await get_cluster("gone", namespace, kubeconfig=kubeconfig)).delete()

    deleter = asyncio.create_task(delete_soon())
    with pytest.raises(ClusterNotFoundError):
        await handle.wait_ready(workers=5, timeout=120)
    assert await deleter is True


def test_the_sync_face_runs_the_same_calls(kubeconfig: str, namespace: str) -> None:
    cluster = create_cluster_sync(spec("sync", 0), namespace=namespace, kubeconfig=kubeconfig)
    assert cluster.wait_ready(timeout=120).running
    assert get_cluster_sync("sync", namespace, kubeconfig=kubeconfig).uid == cluster.uid
    assert cluster.delete(timeout=120) is True
