"""A DaskJob's runner log: read it now, or follow it across every attempt.

Following is its own small state machine: which attempt is being streamed, how many of its
lines were passed on, and what the job is doing meanwhile. The job's state comes from a
:class:`~._watch.JobReader` (list + watch, or GET polling when RBAC forbids watching), kept
current by a background task, so a follower waiting for a cluster that is still starting
makes no requests of its own: it wakes when the job changes. It needs the reader, never the
reader, so the handles can hand out a :class:`LogStream` without an import cycle.

Requests that fail for transient reasons (the network, 5xx, 429, timeouts) are retried with
the bounded back-off of ``_client``; a job that is deleted ends the follow quietly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from functools import partial
from typing import Any

from .. import kube
from ..contract.names import LABEL_ATTEMPT, LABEL_JOB
from ..contract.pods import pod_active
from ..errors import JobNotFound
from ._client import NETWORK_ERRORS, Backoff, is_transient, retrying, translate
from ._status import JobStatus
from ._watch import JobReader

__all__ = ["LogStream", "attempt_runner", "log_text"]

Obj = dict[str, Any]
RUNNER_WAIT = 0.5  # seconds: first pause when a started attempt's runner Pod is not visible yet
RUNNER_WAIT_MOST = 5.0  # seconds: the longest such pause (a job change ends it early)


# -- single requests ---------------------------------------------------------------------------
async def attempt_runner(reader: JobReader, attempt: int) -> str | None:
    """The runner Pod of one attempt, found by the labels the operator puts on it
    (``dask.org/job-name``, ``dask.org/job-attempt``) and its owner: the job's uid when the
    reader knows it, else a DaskJob of the job's name."""
    client = await reader.api()
    selector = f"{LABEL_JOB}={reader.name},{LABEL_ATTEMPT}={attempt}"
    with translate(None, reader.namespace):
        pods, _ = await client.list(kube.PODS, reader.namespace, label_selector=selector)

    def owns(ref: Obj) -> bool:
        if reader.uid:
            return bool(ref.get("uid") == reader.uid)
        return bool(ref.get("kind") == "DaskJob" and ref.get("name") == reader.name)

    owned = [p for p in pods if any(owns(r) for r in p["metadata"].get("ownerReferences") or [])]
    return owned[0]["metadata"]["name"] if owned else None


async def runner_container(reader: JobReader, pod: str,
                           container: str | None) -> tuple[Obj | None, str]:
    """The runner Pod (None if gone) and the container to read: the given one, else its first."""
    client = await reader.api()
    with translate(None, reader.namespace):
        obj = await client.get(kube.PODS, reader.namespace, pod)
    if container or obj is None:
        return obj, container or ""
    return obj, ((obj.get("spec") or {}).get("containers") or [{}])[0].get("name", "")


async def log_lines(reader: JobReader, pod: str, container: str | None, *,
                    follow: bool) -> AsyncIterator[str]:
    """One Pod's log, line by line (raw errors: the follower tells transient ones apart)."""
    client = await reader.api()
    async for line in client.log_lines(reader.namespace, pod, container=container,
                                       follow=follow):
        yield line


async def log_text(reader: JobReader, container: str | None) -> str:
    """The current runner's log as it is now ('' before the runner has started)."""
    st = JobStatus.from_job(await reader.refresh())
    if not st.runner_pod:
        return ""
    pod, name = await runner_container(reader, st.runner_pod, container)
    if pod is None:
        return ""
    try:
        return "".join([line + "\n" async for line in
                        log_lines(reader, st.runner_pod, name or None, follow=False)])
    except kube.BadRequest:  # the container has not started: no log yet
        return ""
    except kube.APIError:
        with translate(None, reader.namespace):
            raise


# -- the job's state, kept current while following ---------------------------------------------
class _JobTracker:
    """The job's latest state, read by a background task from the reader's ``states()``;
    the follower reads it without a request and sleeps until it changes."""

    def __init__(self, reader: JobReader) -> None:
        self._reader = reader
        self._job: Obj | None = None
        self._error: BaseException | None = None
        self._ended = False
        self._version = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _JobTracker:
        self._task = asyncio.create_task(self._run(), name=f"track-daskjob-{self._reader.name}")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        # a cancellation of our own caller still propagates; a watch slow to close its
        # connection must not hold the follower's exit
        await asyncio.wait([self._task], timeout=5)

    async def _run(self) -> None:
        try:
            async with contextlib.aclosing(self._reader.states()) as states:
                async for job in states:
                    self._job = job
                    self._version += 1
                    self._changed.set()
        except Exception as exc:  # handed to the follower by latest()
            self._error = exc
        finally:
            self._ended = True
            self._changed.set()

    async def latest(self) -> tuple[Obj, int]:
        """The job as last seen and a version to pass to :meth:`changed`; raises what the
        watch raised (:class:`JobNotFound` once the job is gone)."""
        await self.changed(0)
        if self._error is not None:
            raise self._error
        assert self._job is not None
        return self._job, self._version

    async def changed(self, version: int, timeout: float | None = None) -> None:
        """Return once the job is newer than ``version`` (or no change can come any more,
        or ``timeout`` seconds passed)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._version == version and not self._ended:
                    self._changed.clear()
                    await self._changed.wait()


# -- the stream --------------------------------------------------------------------------------
class LogStream:
    """A runner's log: awaitable (the whole text) and async-iterable (line by line).

    ``await job.logs()`` reads what is there now; ``async for line in job.logs(follow=True)``
    follows every attempt in order until the job ends. Iterating a non-following stream
    yields the current lines and stops.

    Resuming: ``skip`` lines of the followed stream (all attempts, in the order yielded) are
    passed over first, and :attr:`position` counts the lines passed so far (skipped or
    yielded). A consumer that must start again -- after its process restarted, say -- follows
    anew with ``job.logs(follow=True, skip=position)`` and gets no line twice::

        stream = job.logs(follow=True)
        async for line in stream:
            save(line, stream.position)             # position: this line's number, from 1
        # later, elsewhere:
        async for line in job.logs(follow=True, skip=saved_position): ...
    """

    def __init__(self, reader: JobReader, *, follow: bool, container: str | None,
                 skip: int = 0) -> None:
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
            raise ValueError(f"skip must be a whole number of lines >= 0, not {skip!r}")
        if skip and not follow:
            raise ValueError("skip applies to a followed log (all attempts in order): pass "
                             "follow=True, or slice the text of `await job.logs()` instead")
        self._reader = reader
        self.follow = follow
        self.container = container
        self.skip = skip
        #: Lines of the followed stream passed so far, skipped ones included.
        self.position = 0

    def __await__(self) -> Generator[Any, None, str]:
        return log_text(self._reader, self.container).__await__()

    def __aiter__(self) -> AsyncIterator[str]:
        if self.follow:
            return self._follow()
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        for line in (await log_text(self._reader, self.container)).splitlines():
            yield line

    async def _follow(self) -> AsyncIterator[str]:
        """Every attempt's runner log in order, from the first attempt on (so a follower that
        starts late still sees the whole run), following the current one until it ends."""
        reader, container = self._reader, self.container
        self.position = 0
        attempt = 1
        seen = 0  # lines of this attempt passed: a resumed stream starts from its top again
        stream_backoff = Backoff()
        not_visible = 0  # looks in a row at a started attempt whose Pod was not there
        async with _JobTracker(reader) as tracker:
            while True:
                try:
                    job, version = await tracker.latest()
                except JobNotFound:
                    return
                st = JobStatus.from_job(job)
                if st.attempts < attempt:  # this attempt has not started (yet)
                    if st.done:
                        return
                    await tracker.changed(version)
                    continue
                current = await retrying(partial(attempt_runner, reader, attempt))
                pod, name = (await retrying(partial(runner_container, reader, current, container))
                             if current else (None, ""))
                if pod is None or current is None:
                    if attempt < st.attempts or st.done:
                        attempt, seen = attempt + 1, 0  # gone (deleted): on to the next attempt
                        continue
                    # Started, but its Pod is not visible yet: look again at the next change
                    # of the job, or after a short, growing pause.
                    await tracker.changed(version, timeout=min(RUNNER_WAIT * 2 ** not_visible,
                                                               RUNNER_WAIT_MOST))
                    not_visible += 1
                    continue
                not_visible = 0
                resume, before = seen, seen
                try:
                    async for line in log_lines(reader, current, name or None, follow=True):
                        if resume:
                            resume -= 1
                            continue
                        seen += 1
                        self.position += 1
                        stream_backoff.reset()
                        if self.position <= self.skip:
                            continue
                        yield line
                except kube.BadRequest:  # the container has not started: wait for it
                    await tracker.changed(version, timeout=RUNNER_WAIT)
                    continue
                except kube.NotFound:  # the Pod is gone: the next look moves on
                    continue
                except kube.APIError as exc:
                    with translate(None, reader.namespace):
                        if not is_transient(exc):
                            raise
                        await stream_backoff.pause(exc)
                    continue
                except NETWORK_ERRORS as exc:
                    with translate(None, reader.namespace):
                        await stream_backoff.pause(exc)
                    continue
                pod, _ = await retrying(partial(runner_container, reader, current, container))
                if pod is not None and pod_active(pod):
                    if seen == before:  # nothing new: do not hammer a log that closes at once
                        await tracker.changed(version, timeout=RUNNER_WAIT)
                    continue  # the stream ended but the runner goes on: resume it
                attempt, seen = attempt + 1, 0
