"""The async job API (``dask_kube_jobs.asyncio``): the implementation the sync API wraps."""

from __future__ import annotations

import asyncio

import pytest

from dask_kube_jobs.asyncio import (
    AsyncDaskJobHandle,
    DaskJobFailed,
    JobNotFound,
    WaitTimeout,
    get_job,
    list_jobs,
    submit,
)

from .manifests import failing_job, result_job, retrying_job, sleeping_job

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("aclients")]


async def test_async_submit_wait_result_and_logs(kubeconfig: str, namespace: str) -> None:
    job = await submit(result_job("async-adds"), namespace=namespace, kubeconfig=kubeconfig)
    lines = [line async for line in job.logs(follow=True)]
    assert lines == ["total is 6"]
    final = await job.wait(timeout=60)
    assert final.phase == "Successful" and final.result == {"total": 6, "ok": True}
    assert await job.result() == {"total": 6, "ok": True}
    assert (await job.status()).exit_code == 0 and job.phase == "Successful"
    assert await job.logs() == "total is 6\n"
    assert [line async for line in job.logs()] == ["total is 6"]


async def test_async_failure_and_follow_across_retries(kubeconfig: str, namespace: str) -> None:
    failing = await submit(failing_job("async-breaks"), namespace=namespace,
                           kubeconfig=kubeconfig)
    retrying = await submit(retrying_job("async-retries"), namespace=namespace,
                            kubeconfig=kubeconfig)
    with pytest.raises(DaskJobFailed) as info:
        await failing.wait(timeout=120)
    assert info.value.exit_code == 3 and "boom" in (info.value.log_tail or "")
    lines = [line async for line in retrying.logs(follow=True)]
    assert lines == ["attempt 1 starts", "attempt 1 fails", "attempt 2 starts",
                     "attempt 2 succeeds"]
    assert (await retrying.wait(timeout=30)).attempts == 2


async def test_async_wait_raises_job_not_found_when_deleted(kubeconfig: str,
                                                            namespace: str) -> None:
    job = await submit(sleeping_job("async-gone", 60), namespace=namespace,
                       kubeconfig=kubeconfig)
    job.watch_timeout = 1

    async def delete_soon() -> bool:
        await asyncio.sleep(3)
        other = await get_job("async-gone", namespace, kubeconfig=kubeconfig)
        return await other.delete(wait=True)

    deleter = asyncio.create_task(delete_soon())
    with pytest.raises(JobNotFound):
        await job.wait(timeout=60)
    assert await deleter is True
    assert await list_jobs(namespace, kubeconfig=kubeconfig) == []


async def test_async_wait_timeout_then_reattach(kubeconfig: str, namespace: str) -> None:
    job = await submit(sleeping_job("async-slow", 3), namespace=namespace, kubeconfig=kubeconfig)
    with pytest.raises(WaitTimeout):
        await job.wait(timeout=0.5)
    again = await get_job("async-slow", namespace, kubeconfig=kubeconfig)
    assert again.uid == job.uid
    assert (await again.wait(timeout=60)).phase == "Successful"
    jobs = await list_jobs(namespace, labels={}, kubeconfig=kubeconfig)
    assert [j.name for j in jobs] == ["async-slow"]
    assert await jobs[0].delete() is True


async def test_async_reads_are_coroutines_and_properties_say_what_was_last_seen(
        kubeconfig: str, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    job = await submit(result_job("async-shaped"), namespace=namespace, kubeconfig=kubeconfig)
    await job.wait(timeout=120)
    later = AsyncDaskJobHandle.from_name("async-shaped", namespace, kubeconfig=kubeconfig)
    assert later.phase is None and later.last_status.phase is None
    assert await later.result() == {"total": 6, "ok": True}
    assert later.phase == "Successful" and later.last_status.exit_code == 0
    assert (await later.status()).runner_pod == job.last_status.runner_pod
    assert (await later.refresh())["metadata"]["uid"] == job.uid == later.uid
    monkeypatch.setenv("DASK_KUBE_JOBS_DASHBOARD_TEMPLATE", "https://dask.example.com/{job}")
    assert await later.dashboard_link() == "https://dask.example.com/async-shaped"
