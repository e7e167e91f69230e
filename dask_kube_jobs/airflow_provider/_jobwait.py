"""Submit-or-reattach, wait, follow the log, delete: the async core both modes run.

The one-code-path rule (STYLE.md, Airflow): the blocking operator runs :func:`wait_for_job` on
its own event loop and the deferrable operator's trigger runs the very same coroutine in the
triggerer, so the two modes cannot drift apart (the cncf.kubernetes provider's sync and
deferrable paths did: apache/airflow#72504). Its answer is an *event*: a dict of primitives,
because a trigger can only hand JSON-able values back to the worker, and the operator then
turns that one event into an XCom or an exception in one place (``DaskJobOperator._finish``).

What is not Airflow's business comes from the job API (``dask_kube_jobs.jobs``), so the
provider and ``dask_kube_jobs.wait()`` agree on what a job's state means:

* watching: :meth:`AsyncDaskJobHandle.watch` lists, watches from the list's resourceVersion,
  resumes after the server ends a watch and re-lists after a drop or ``410 Gone``; a job that
  vanished, or was re-created under the same name (another uid), is :class:`JobNotFound`,
  which is an event here ("deleted"), never a crash (apache/airflow#66715);
* outcome: :class:`JobStatus` says whether a job is done and how;
* logs: :meth:`AsyncDaskJobHandle.logs` follows every runner attempt in order, resuming a
  stream the server ended (skipping lines already seen).

Polling with GET when RBAC forbids the watch verb (a 403 on the watch while GET is allowed)
is the job API's too: it says why, once, through the ``notice`` given. Airflow's own needs
stay here: an absolute wall-clock ``deadline`` (seconds since the epoch) that survives the
trigger moving between triggerers and is how ``execution_timeout`` is honoured while deferred
(apache/airflow#67227), and a startup deadline that re-reads the real state before firing
(see :func:`startup_problem`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..asyncio import (
    POLL_INTERVAL,
    AsyncDaskJobHandle,
    ClusterNotFoundError,
    JobStatus,
    dashboard_link,
    get_cluster,
    get_job,
    is_transient,
    list_jobs,
    submit,
)
from ..contract import names
from ..errors import APIRequestError, JobAlreadyExists, JobNotFound, KubeconfigError
from ._identity import TaskIdentity, try_of

__all__ = ["dashboard_url", "delete_job", "is_terminal", "outcome",
           "submit_or_reattach", "wait_for_job"]

Obj = dict[str, Any]
LOG_GRACE = 10.0  # seconds to let a finished runner's log stream drain after the job ends
LOG_RETRY = 0.5  # seconds before following the log again after a network error
STARTUP_RECHECK = 5.0  # seconds before re-checking a startup the API could not confirm


def is_terminal(job: Obj) -> bool:
    return JobStatus.from_job(job).done


def outcome(job: Obj) -> Obj:
    """The event for a finished (or still running) job: primitives only."""
    meta, st = job.get("metadata") or {}, JobStatus.from_job(job)
    return {
        "status": {"Successful": "success", "Failed": "failed"}.get(st.phase or "", "running"),
        "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        "phase": st.phase, "result": st.result, "exit_code": st.exit_code, "reason": st.reason,
        "message": st.message, "log_tail": st.log_tail, "cluster": st.cluster_name,
        "runner_pod": st.runner_pod,
    }


def _event(status: str, namespace: str, name: str, message: str, **extra: Any) -> Obj:
    return {"status": status, "name": name, "namespace": namespace, "message": message, **extra}


async def submit_or_reattach(client: Any, manifest: Obj, identity: TaskIdentity, *,
                             namespace: str, name_prefix: str | None = None,
                             remembered: Obj | None = None) -> tuple[Obj, bool]:
    """Create the DaskJob of this task try, or find the one it must reattach to.

    Returns ``(job, reattached)``. Reattaches to a non-terminal job of the same task (any try:
    a retry after a worker crash) or to this very try's own job (finished or not); never to a
    finished job of an earlier try.

    ``remembered`` is what Airflow 3.3's task state store holds for this task instance (the
    ``name``, ``namespace`` and ``uid`` of the job an earlier try created): that exact job is
    read by name first, which needs no list right and survives its labels being edited.
    Labels are the fallback and the only record below 3.3. Creating uses a name derived from
    identity and try, so a concurrent second create of the same try answers 409 and we read
    the winner's job.
    """
    if remembered and remembered.get("name") and remembered.get("uid"):
        try:
            job: Obj | None = (await get_job(remembered["name"], remembered.get("namespace")
                                             or namespace, client=client)).raw
        except JobNotFound:
            job = None
        if job is not None and job["metadata"].get("uid") == remembered["uid"] and \
                not job["metadata"].get("deletionTimestamp") and \
                (not is_terminal(job) or try_of(job) == identity.try_number):
            return job, True
    items = [h.raw for h in await list_jobs(namespace, identity.selector(), client=client)]
    items = [j for j in items if not j["metadata"].get("deletionTimestamp")]
    running = sorted((j for j in items if not is_terminal(j)), key=try_of)
    own = [j for j in items if try_of(j) == identity.try_number]
    if running:
        return running[-1], True
    if own:
        return own[0], True
    body = {**manifest, "metadata": dict(manifest.get("metadata") or {})}
    meta = body["metadata"]
    meta.pop("generateName", None)
    meta["name"] = identity.job_name(name_prefix)
    meta["namespace"] = namespace
    meta["labels"] = {**(meta.get("labels") or {}), **identity.labels()}
    with contextlib.suppress(JobAlreadyExists):
        return (await submit(body, namespace=namespace, client=client)).raw, False
    try:
        return (await get_job(meta["name"], namespace, client=client)).raw, True
    except JobNotFound:  # created and deleted in between: vanishingly rare, let the retry handle it
        raise RuntimeError(f"DaskJob {meta['name']} vanished right after a 409 on "
                           "create") from None


async def dashboard_url(client: Any, *, namespace: str, job: str, cluster: str | None,
                        template: str | None = None) -> str:
    """The Dask dashboard: the template when given, else the cluster's reported address, else
    the scheduler Service's in-cluster address (known before the cluster exists)."""
    cluster = cluster or job
    address = None
    if not template:
        with contextlib.suppress(ClusterNotFoundError):
            address = (await get_cluster(cluster, namespace,
                                         client=client)).last_status.dashboard_address
    # The scheduler Service's in-cluster address (the upstream naming the operator follows).
    link = dashboard_link(job=job, namespace=namespace, cluster=cluster, template=template,
                          address=address or names.dashboard_address(cluster, namespace))
    assert link is not None  # an address is always given
    return link


def _handle(client: Any, namespace: str, name: str, uid: str | None) -> AsyncDaskJobHandle:
    """A job handle from what a trigger carries (name, namespace, uid), without a request."""
    return AsyncDaskJobHandle.from_name(name, namespace, uid=uid, client=client)


async def delete_job(client: Any, *, namespace: str, name: str,
                     uid: str | None = None) -> bool:
    """Delete the job (its cluster and Pods go with it, in the background); False if it was
    already gone. The uid precondition keeps a stale caller from deleting a newer job of the
    same name."""
    return await _handle(client, namespace, name, uid).delete(wait=False)


# -- waiting ------------------------------------------------------------------------------------
async def _follow_log(handle: AsyncDaskJobHandle, on_log: Callable[[str], None],
                      notice: Callable[[str], None]) -> None:
    """Every runner attempt's log lines, in order, to ``on_log``.

    The job API retries transient errors itself (for minutes); should they outlast that, the
    follow starts again from the position reached: no line twice, none lost.
    """
    stream = handle.logs(follow=True)
    while True:
        try:
            async for line in stream:
                on_log(line)
            return
        except JobNotFound:
            return
        except (KubeconfigError, APIRequestError) as exc:
            if not is_transient(exc):
                notice(f"Cannot follow the runner's log of DaskJob {handle.name}: {exc}")
                return
            await asyncio.sleep(LOG_RETRY)
            stream = handle.logs(follow=True, skip=stream.position)


async def wait_for_job(client: Any, *, namespace: str, name: str,
                       uid: str | None = None, deadline: float | None = None,
                       startup_deadline: float | None = None,
                       on_log: Callable[[str], None] | None = None,
                       notice: Callable[[str], None] | None = None,
                       poll_interval: float = POLL_INTERVAL) -> Obj:
    """Wait until the job is finished, deleted, or a deadline (epoch seconds) passes.

    Returns exactly one event (see :func:`outcome`; ``status`` is ``success``, ``failed``,
    ``deleted``, ``timeout`` or ``startup_timeout``). ``startup_deadline`` fires only if, when
    it passes, the job's ``startup_problem()`` finds the runner still not started; its ``message``
    says why. With ``on_log``, the runner's log lines are passed to it as they are written;
    ``notice`` gets the provider's own remarks (e.g. why it polls). API errors other than the
    retried ones propagate.

    >>> event = await wait_for_job(client, namespace="ns", name="job-1")  # doctest: +SKIP
    >>> event["status"], event["result"]
    ('success', {'total': 42})
    """
    notice = notice or (lambda message: None)
    handle = _handle(client, namespace, name, uid)
    handle.poll_interval = poll_interval  # used only if RBAC forbids watching
    handle.notice = notice  # says why, once, when it polls instead
    states: asyncio.Queue[Obj | BaseException] = asyncio.Queue()

    async def pump() -> None:
        try:
            async with contextlib.aclosing(handle.watch()) as changes:
                async for _ in changes:
                    states.put_nowait(handle.raw)
        except Exception as exc:  # handed to the waiting loop, which turns it into the answer
            states.put_nowait(exc)

    watcher = asyncio.create_task(pump(), name=f"watch-daskjob-{name}")
    # Started once the watch sees a runner Pod named: the follower keeps its own watch of the
    # job, which is not worth a connection while the cluster is still starting.
    follower: asyncio.Task[None] | None = None
    remaining = None if deadline is None else max(0.0, deadline - time.time())
    try:
        async with asyncio.timeout(remaining):
            while True:
                until_startup = None if startup_deadline is None else \
                    max(0.0, startup_deadline - time.time())
                try:
                    state = await asyncio.wait_for(states.get(), until_startup)
                except TimeoutError:
                    assert startup_deadline is not None
                    try:
                        problem = await handle.startup_problem()
                    except JobNotFound:  # gone, or another job (uid) of that name
                        return _event("deleted", namespace, name, f"DaskJob {name} is gone")
                    except (APIRequestError, KubeconfigError) as exc:  # no evidence: look again
                        notice(f"Cannot check whether DaskJob {name} started ({exc!r}); "
                               f"checking again in {STARTUP_RECHECK:g}s")
                        startup_deadline = time.time() + STARTUP_RECHECK
                        continue
                    if problem is None:
                        startup_deadline = None  # it started: no more startup checks
                        continue
                    return {**outcome(handle.raw), "status": "startup_timeout", "message":
                            f"DaskJob {name}'s runner did not start in time: {problem}"}
                if isinstance(state, JobNotFound):
                    return _event("deleted", namespace, name, str(state))
                if isinstance(state, BaseException):
                    raise state
                if on_log and follower is None and JobStatus.from_job(state).runner_pod:
                    follower = asyncio.create_task(_follow_log(handle, on_log, notice),
                                                   name=f"follow-log-{name}")
                if is_terminal(state):
                    if follower:
                        await asyncio.wait([follower], timeout=LOG_GRACE)
                    return outcome(state)
    except TimeoutError:
        if deadline is not None and time.time() >= deadline - 0.001:
            return _event("timeout", namespace, name,
                          f"DaskJob {name} did not finish before the task's deadline")
        raise
    finally:
        for task in (watcher, follower):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
