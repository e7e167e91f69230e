"""A daemon's pass ends as soon as the daemon is asked to stop, and otherwise runs to its end."""

from __future__ import annotations

import asyncio

import pytest

from dask_kube_jobs.operator.runtime import unless_stopped


async def test_a_pass_is_cut_short_when_the_daemon_is_stopped() -> None:
    stopped = asyncio.Event()  # stands in for kopf's DaemonStopped: falsy until set, awaitable
    reached_the_end = False

    async def slow_pass() -> float:
        nonlocal reached_the_end
        await asyncio.sleep(30)
        reached_the_end = True
        return 10.0

    asyncio.get_running_loop().call_later(0.1, stopped.set)
    outcome = await asyncio.wait_for(unless_stopped(slow_pass(), stopped), 5)  # type: ignore[arg-type]
    assert outcome is None
    assert not reached_the_end


async def test_a_pass_that_ends_gives_its_delay_or_its_error() -> None:
    stopped = asyncio.Event()

    async def quick_pass() -> float:
        return 7.0

    async def failing_pass() -> float:
        raise TimeoutError("no answer")

    assert await unless_stopped(quick_pass(), stopped) == 7.0  # type: ignore[arg-type]
    with pytest.raises(TimeoutError, match="no answer"):
        await unless_stopped(failing_pass(), stopped)  # type: ignore[arg-type]


async def test_cancelling_the_daemon_cancels_its_pass() -> None:
    stopped = asyncio.Event()
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def pass_() -> float:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1.0

    daemon = asyncio.ensure_future(unless_stopped(pass_(), stopped))  # type: ignore[arg-type]
    await started.wait()
    daemon.cancel()
    with pytest.raises(asyncio.CancelledError):
        await daemon
    await asyncio.wait_for(cancelled.wait(), 5)
