"""The job API under adverse conditions: a flaky API server, RBAC that forbids watching,
a follower that resumes where an earlier one stopped."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs import APIRequestError
from dask_kube_jobs.asyncio import AsyncDaskJobHandle, get_job, submit
from dask_kube_jobs.jobs._logs import attempt_runner
from dask_kube_jobs.jobs._watch import JobReader

from .faults import FaultProxy, failing_every
from .manifests import result_job, retrying_job

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("aclients")]

RETRIED = ["attempt 1 starts", "attempt 1 fails", "attempt 2 starts", "attempt 2 succeeds"]


def _job_reads(method: str, path: str) -> bool:
    """The follower's own reads of the job and its Pods (not the watch, not the log)."""
    return method == "GET" and "watch=true" not in path and "/log" not in path and (
        "/pods" in path or "/daskjobs" in path)


async def test_following_rides_out_503s_and_is_driven_by_the_watch_not_polling(
        kubeconfig: str, namespace: str, tmp_path: Path) -> None:
    proxy = FaultProxy(kubeconfig, failing_every(2, matching=_job_reads))
    flaky = await proxy.start(tmp_path / "flaky.yaml")
    try:
        job = await submit(retrying_job("flaky"), namespace=namespace, kubeconfig=kubeconfig)
        # Made from what a trigger or a queue message carries: no uid, no request yet.
        follower = AsyncDaskJobHandle.from_name("flaky", namespace, kubeconfig=flaky)
        assert follower.uid is None and follower.phase is None
        stream = follower.logs(follow=True)
        lines = [line async for line in stream]
        assert lines == RETRIED and stream.position == 4
        assert follower.uid == job.uid  # learnt from the first state seen
        assert len(proxy.failed) >= 2, proxy.requests  # every other read was a 503
        # The job is read by list + watch: never polled by name while waiting for attempts.
        by_name = f"/apis/kubernetes.dask.org/v1/namespaces/{namespace}/daskjobs/flaky"
        assert proxy.count("GET", by_name) == 0, proxy.requests

        # A consumer that restarts passes the position it reached: no line twice, none lost.
        resumed = follower.logs(follow=True, skip=3)
        assert [line async for line in resumed] == ["attempt 2 succeeds"]
        assert resumed.position == 4
        assert [line async for line in follower.logs(follow=True, skip=9)] == []
    finally:
        await proxy.close()
    # Runner Pods are found by the operator's labels even by a reader that has no uid.
    anonymous = JobReader(None, {"metadata": {"name": "flaky", "namespace": namespace}},
                          kubeconfig=kubeconfig)
    assert await attempt_runner(anonymous, 2) == (await job.status()).runner_pod


async def test_wait_and_follow_poll_with_get_when_rbac_forbids_watching(
        local_control_plane: Any, kubectl: Any, namespace: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # RBAC as some clusters hand out: read a DaskJob by name, but neither list nor watch them.
    await asyncio.to_thread(kubectl, "create", "role", "job-reader", "--verb=get",
                            "--resource=daskjobs.kubernetes.dask.org")
    await asyncio.to_thread(kubectl, "create", "role", "log-reader", "--verb=get,list",
                            "--resource=pods,pods/log")
    for role in ("job-reader", "log-reader"):
        await asyncio.to_thread(kubectl, "create", "rolebinding", role, f"--role={role}",
                                "--user=getter")
    getter = local_control_plane.mint_kubeconfig(tmp_path / "getter.yaml", user="getter",
                                                 namespace=namespace)
    nobody = local_control_plane.mint_kubeconfig(tmp_path / "nobody.yaml", user="nobody",
                                                 namespace=namespace)
    await submit(result_job("getonly"), namespace=namespace,
                 kubeconfig=local_control_plane.kubeconfig)

    caplog.set_level(logging.WARNING, logger="dask_kube_jobs.jobs")
    job = await get_job("getonly", namespace, kubeconfig=getter)
    job.poll_interval = 0.5
    assert [line async for line in job.logs(follow=True)] == ["total is 6"]
    final = await job.wait(timeout=60)
    assert final.phase == "Successful" and final.result == {"total": 6, "ok": True}
    assert job.watch_connections == 0
    notes = [r.getMessage() for r in caplog.records if r.name == "dask_kube_jobs.jobs"]
    assert len(notes) == 1, notes  # said once per handle, not once per poll or per watch()
    assert "Watching DaskJob" in notes[0] and "is forbidden" in notes[0] and \
        "polling it with GET every 0.5s" in notes[0] and notes[0].startswith("Watching")

    # Without even the right to get the job, there is nothing to poll: the 403 is raised.
    stranger = AsyncDaskJobHandle.from_name("getonly", namespace, kubeconfig=nobody)
    with pytest.raises(APIRequestError) as info:
        await stranger.wait(timeout=30)
    assert info.value.code == 403 and "daskjobs" in str(info.value)
