"""Submit-or-reattach, wait, follow the log, delete: the async core both modes run.

The one-code-path rule (STYLE.md, Airflow): the blocking operator runs :func:`wait_for_job` on
its own event loop and the deferrable operator's trigger runs the very same coroutine in the
triggerer, so the two modes cannot drift apart (the cncf.kubernetes provider's sync and
deferrable paths did: apache/airflow#72504). Its answer is an *event*: a dict of primitives,
because a trigger can only hand JSON-able values back to the worker, and the operator then
turns that one event into an XCom or an exception in one place (``DaskJobOperator._finish``).

Watching, not polling: a list-then-watch :class:`dask_kube_jobs.kube.Informer` on the one job
(field selector ``metadata.name``). It re-lists after a dropped stream or ``410 Gone``, and a
job that vanished meanwhile is reported ``DELETED`` by that re-list, so "deleted" is an event,
never a crash (apache/airflow#66715). An absolute wall-clock ``deadline`` (seconds since the
epoch) rather than a duration survives the trigger moving between triggerers, and is how
``execution_timeout`` is honoured while deferred (apache/airflow#67227).

The log is followed while waiting (``GET pods/<runner>/log?follow=true``), line by line to a
callback, moving on to the next runner Pod when the job retries its runner, and resuming a
stream the server ended while the runner still runs (skipping the lines already seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import kr8s

from .. import kube
from ..crds import GROUP, VERSION
from ._identity import TaskIdentity, try_of

Obj = dict[str, Any]
DASKJOBS = kube.Resource(GROUP, VERSION, "daskjobs", "DaskJob", True)
DASKCLUSTERS = kube.Resource(GROUP, VERSION, "daskclusters", "DaskCluster", True)
TERMINAL = ("Successful", "Failed")
LOG_RETRY = 0.5  # seconds between attempts to open a runner's log (container not started yet)
LOG_GRACE = 10.0  # seconds to let a finished runner's log stream drain after the job ends
_NETWORK_ERRORS = (httpx.HTTPError, kr8s.APITimeoutError, OSError)


def is_terminal(job: Obj) -> bool:
    return (job.get("status") or {}).get("jobStatus") in TERMINAL


def outcome(job: Obj) -> Obj:
    """The event for a finished (or still running) job: primitives only."""
    meta, status = job.get("metadata") or {}, job.get("status") or {}
    phase = status.get("jobStatus")
    return {
        "status": {"Successful": "success", "Failed": "failed"}.get(phase, "running"),
        "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        "phase": phase, "result": status.get("result"), "exit_code": status.get("exitCode"),
        "reason": status.get("reason"), "message": status.get("message"),
        "log_tail": status.get("logTail"), "cluster": status.get("clusterName"),
        "runner_pod": status.get("jobRunnerPodName"),
    }


def _event(status: str, namespace: str, name: str, message: str, **extra: Any) -> Obj:
    return {"status": status, "name": name, "namespace": namespace, "message": message, **extra}


async def submit_or_reattach(client: kube.Client, manifest: Obj, identity: TaskIdentity, *,
                             namespace: str, name_prefix: str | None = None) -> tuple[Obj, bool]:
    """Create the DaskJob of this task try, or find the one it must reattach to.

    Returns ``(job, reattached)``. Reattaches to a non-terminal job of the same task (any try:
    a retry after a worker crash) or to this very try's own job (finished or not); never to a
    finished job of an earlier try. Creating uses a name derived from identity and try, so a
    concurrent second create of the same try answers 409 and we read the winner's job.
    """
    items, _ = await client.list(DASKJOBS, namespace, label_selector=identity.selector())
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
    try:
        return await client.create(DASKJOBS, namespace, body), False
    except kube.APIError as exc:
        if exc.code != 409:
            raise
    job = await client.get(DASKJOBS, namespace, meta["name"])
    if job is None:  # created and deleted in between: vanishingly rare, let the retry handle it
        raise RuntimeError(f"DaskJob {meta['name']} vanished right after a 409 on create")
    return job, True


async def dashboard_url(client: kube.Client, *, namespace: str, job: str, cluster: str | None,
                        template: str | None = None) -> str:
    """The Dask dashboard: the template when given, else the cluster's reported address, else
    the scheduler Service's in-cluster address (known before the cluster exists)."""
    cluster = cluster or job
    if template:
        return template.format(namespace=namespace, cluster=cluster, job=job,
                               scheduler=f"{cluster}-scheduler", port=8787)
    obj = await client.get(DASKCLUSTERS, namespace, cluster)
    address = ((obj or {}).get("status") or {}).get("dashboardAddress")
    # The scheduler Service's in-cluster address (the upstream naming the operator follows),
    # spelled out here because the provider uses the client library, not the operator.
    address = address or f"http://{cluster}-scheduler.{namespace}.svc.cluster.local:8787"
    return address.rstrip("/") + "/status"


async def delete_job(client: kube.Client, *, namespace: str, name: str,
                     uid: str | None = None) -> bool:
    """Delete the job (its cluster and Pods go with it); False if it was already gone. The uid
    precondition keeps a stale caller from deleting a newer job of the same name."""
    return await client.delete(DASKJOBS, namespace, name, uid=uid, propagation="Background")


class _LogFollower:
    """Follows each runner Pod's log in its own task, handing lines to ``on_line``."""

    def __init__(self, client: kube.Client, namespace: str,
                 on_line: Callable[[str], None]) -> None:
        self.client = client
        self.namespace = namespace
        self.on_line = on_line
        self.pods: dict[str, asyncio.Task[None]] = {}

    def runner(self, pod: str | None) -> None:
        if pod and pod not in self.pods:
            self.pods[pod] = asyncio.create_task(self._follow(pod), name=f"follow-log-{pod}")

    async def _follow(self, pod: str) -> None:
        seen = 0
        path = kube.PODS.path(self.namespace, pod, "log")
        while True:
            skip = seen
            try:
                # kube.Client has no public streaming GET for subresources; _call is its
                # Status-aware request (no kr8s credential reload on 4xx), as _jobs.py uses it.
                async with self.client._call("GET", path, params={"follow": "true"}, stream=True,
                                             timeout=httpx.Timeout(None, connect=30)) as resp:
                    async for line in resp.aiter_lines():
                        if skip:
                            skip -= 1
                            continue
                        seen += 1
                        self.on_line(line)
            except kube.APIError as exc:
                if exc.code == 404:
                    return
                await asyncio.sleep(LOG_RETRY)  # 400: the container has not started yet
                continue
            except _NETWORK_ERRORS:
                await asyncio.sleep(LOG_RETRY)
                continue
            obj = await self.client.get(kube.PODS, self.namespace, pod)
            if obj is None or (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return
            await asyncio.sleep(LOG_RETRY)  # the server ended the stream; the runner goes on

    async def drain(self, timeout: float) -> None:
        if self.pods:
            await asyncio.wait(list(self.pods.values()), timeout=timeout)

    async def close(self) -> None:
        for task in self.pods.values():
            task.cancel()
        for task in self.pods.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def wait_for_job(client: kube.Client, *, namespace: str, name: str,
                       uid: str | None = None, deadline: float | None = None,
                       on_log: Callable[[str], None] | None = None) -> Obj:
    """Wait until the job is finished, deleted, or ``deadline`` (epoch seconds) passes.

    Returns exactly one event (see :func:`outcome`; ``status`` is ``success``, ``failed``,
    ``deleted`` or ``timeout``). With ``on_log``, the runner's log lines are passed to it as
    they are written. API errors other than the informer's retried ones propagate.

    >>> event = await wait_for_job(client, namespace="ns", name="job-1")  # doctest: +SKIP
    >>> event["status"], event["result"]
    ('success', {'total': 42})
    """
    changes: asyncio.Queue[tuple[str, Obj]] = asyncio.Queue()
    informer = kube.Informer(client, DASKJOBS, namespace=namespace,
                             field_selector=f"metadata.name={name}")
    informer.on_change(lambda kind, obj, old: changes.put_nowait((kind, obj)))
    follower = _LogFollower(client, namespace, on_log) if on_log else None
    watcher = asyncio.create_task(informer.run(), name=f"watch-daskjob-{name}")
    remaining = None if deadline is None else max(0.0, deadline - time.time())
    try:
        async with asyncio.timeout(remaining):
            await informer.synced.wait()
            if informer.get(namespace, name) is None:
                return _event("deleted", namespace, name, f"DaskJob {name} does not exist")
            while True:
                kind, obj = await changes.get()
                if uid and obj["metadata"].get("uid") != uid:
                    return _event("deleted", namespace, name,
                                  f"DaskJob {name} was deleted and re-created")
                if kind == "DELETED":
                    return _event("deleted", namespace, name,
                                  f"DaskJob {name} was deleted while being waited for")
                if follower:
                    follower.runner((obj.get("status") or {}).get("jobRunnerPodName"))
                if is_terminal(obj):
                    if follower:
                        await follower.drain(LOG_GRACE)
                    return outcome(obj)
    except TimeoutError:
        if deadline is not None and time.time() >= deadline - 0.001:
            return _event("timeout", namespace, name,
                          f"DaskJob {name} did not finish before the task's deadline")
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if follower:
            await follower.close()
