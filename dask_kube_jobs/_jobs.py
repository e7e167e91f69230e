"""Submit a DaskJob, wait for it, follow its log: the one (async) implementation.

``dask_kube_jobs.asyncio`` exports this module's functions as they are; ``dask_kube_jobs.jobs``
runs the same coroutines on a private event-loop thread for sync callers (kr8s's pattern), so
the two APIs cannot drift apart.

Requests go through :class:`dask_kube_jobs.kube.Client` rather than kr8s objects, for two
reasons kube.py explains: kr8s answers any 401/403 by reloading credentials and breaking every
request in flight, and kr8s's ``watch`` never recovers from ``410 Gone``. Waiting must survive
hours, so :meth:`AsyncDaskJobHandle.watch` lists, watches from the list's resourceVersion,
resumes after the server ends a watch, and re-lists after an error or a 410, like client-go's
reflector. A job deleted meanwhile -- or replaced by a new one of the same name, told apart by
its uid -- ends the wait with :class:`JobNotFound` instead of a hang.

>>> import asyncio
>>> from dask_kube_jobs.asyncio import submit
>>> async def main():                                          # doctest: +SKIP
...     job = await submit("examples/simple-job.yaml", namespace="default")
...     async for line in job.logs(follow=True):
...         print(line)
...     return (await job.wait()).result
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
from collections.abc import AsyncIterator, Generator, Mapping
from typing import Any

import httpx

from . import kube
from ._jobs_client import (
    NETWORK_ERRORS,
    close_clients,
    connect,
    default_namespace,
    find_kubeconfig,
    translate,
)
from ._jobs_manifest import (
    DASHBOARD_TEMPLATE_ENV,
    JobStatus,
    check_job_manifest,
    dashboard_link,
    load_job_manifest,
)
from .crds import GROUP, VERSION
from .errors import DaskJobFailed, JobNotFound, WaitTimeout
from .spec import SpecError

__all__ = ["AsyncDaskJobHandle", "LogStream", "close_clients", "find_kubeconfig", "get_job",
           "list_jobs", "submit"]

Obj = dict[str, Any]
DASKJOBS = kube.Resource(GROUP, VERSION, "daskjobs", "DaskJob", True)
DASKCLUSTERS = kube.Resource(GROUP, VERSION, "daskclusters", "DaskCluster", True)
POLL = 0.5  # seconds between looks at a job while following its log across attempts


# -- the handle ----------------------------------------------------------------------------------
class AsyncDaskJobHandle:
    """One submitted DaskJob: its status, its log, its result; made by :func:`submit`,
    :func:`get_job` or :func:`list_jobs`.

    Reads that need the API are coroutines (``await job.status()``, ``await job.result()``,
    ``await job.dashboard_link()``); ``job.phase`` is the phase last seen, without a request.

    ``watch_timeout`` is the server-side timeout in seconds of each watch request (default
    240-300 s, randomised so many waiters do not reconnect together); when the server ends a
    watch, it is resumed from the last resourceVersion seen, so nothing is missed.
    ``watch_connections`` counts the watch requests made, for diagnostics.
    """

    def __init__(self, client: kube.Client, job: Obj) -> None:
        self._client = client
        self._job = job
        meta = job["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str | None = meta.get("uid")
        self.watch_timeout: int = random.randint(240, 300)
        self.watch_connections = 0

    def __repr__(self) -> str:
        return f"<DaskJob {self.namespace}/{self.name} phase={self.phase}>"

    @property
    def phase(self) -> str | None:
        """The phase when last seen (``JobCreated`` ... ``Successful``/``Failed``), or None."""
        return JobStatus.from_job(self._job).phase

    @property
    def raw(self) -> Obj:
        """The DaskJob object as last seen."""
        return self._job

    def _note(self, job: Obj) -> Obj:
        uid = job["metadata"].get("uid")
        if self.uid and uid and uid != self.uid:
            raise JobNotFound(self.name, self.namespace, "it was deleted and re-created")
        self._job = job
        return job

    async def refresh(self) -> Obj:
        """Read the DaskJob again; raises :class:`JobNotFound` if it is gone."""
        with translate(self.name, self.namespace):
            job = await self._client.get(DASKJOBS, self.namespace, self.name)
        if job is None:
            raise JobNotFound(self.name, self.namespace)
        return self._note(job)

    async def status(self) -> JobStatus:
        """The job's status, read now.

        >>> (await job.status()).phase                          # doctest: +SKIP
        'Running'
        """
        return JobStatus.from_job(await self.refresh())

    async def result(self) -> Any:
        """What the runner passed to ``dask_kube_jobs.set_result``, decoded (None if nothing,
        or not finished yet)."""
        return (await self.status()).result

    async def dashboard_link(self) -> str | None:
        """The Dask dashboard URL (see ``DASK_KUBE_JOBS_DASHBOARD_TEMPLATE``); None once the
        job's cluster is gone."""
        st = await self.status()
        cluster = st.cluster_name or self.name
        with translate(None, self.namespace):
            obj = await self._client.get(DASKCLUSTERS, self.namespace, cluster)
        address = ((obj or {}).get("status") or {}).get("dashboardAddress")
        if obj is None and not os.environ.get(DASHBOARD_TEMPLATE_ENV):
            return None
        return dashboard_link(job=self.name, namespace=self.namespace, cluster=cluster,
                              address=address)

    # -- watching --------------------------------------------------------------------------
    async def _changes(self) -> AsyncIterator[Obj]:
        """The job now and after each change; list + watch, resumed and re-listed as needed."""
        selector = f"metadata.name={self.name}"
        rv: str | None = None
        delay = 0.2
        while True:
            if rv is None:
                with translate(self.name, self.namespace):
                    items, rv = await self._client.list(DASKJOBS, self.namespace,
                                                        field_selector=selector)
                if not items:
                    raise JobNotFound(self.name, self.namespace, "deleted")
                yield self._note(items[0])
            params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true",
                      "fieldSelector": selector, "timeoutSeconds": self.watch_timeout}
            try:
                async with self._client.watch_stream(DASKJOBS, self.namespace, params) as resp:
                    self.watch_connections += 1
                    async for line in resp.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        kind, obj = event.get("type"), event.get("object") or {}
                        if kind == "ERROR":
                            raise kube.Expired(obj.get("message", "")) if obj.get("code") == 410 \
                                else kube.APIError(int(obj.get("code") or 0), obj.get("reason", ""),
                                                   obj.get("message", ""), obj)
                        rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            raise JobNotFound(self.name, self.namespace, "deleted")
                        delay = 0.2
                        yield self._note(obj)
                # the server ended the watch (timeoutSeconds): resume from rv, no re-list
            except kube.Expired:
                rv = None
            except kube.APIError as exc:
                if exc.code not in (410, 500, 503, 504, 429):
                    with translate(self.name, self.namespace):
                        raise
                rv = None
                await asyncio.sleep(delay)
            except (*NETWORK_ERRORS, json.JSONDecodeError):
                rv = None  # the stream broke: re-list, after a short back-off
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def watch(self) -> AsyncIterator[JobStatus]:
        """The job's status now and after each change, ending after the final one.

        >>> async for st in job.watch():                        # doctest: +SKIP
        ...     print(st.phase)
        """
        async with contextlib.aclosing(self._changes()) as changes:
            async for job in changes:
                st = JobStatus.from_job(job)
                yield st
                if st.done:
                    return

    async def wait(self, timeout: float | None = None) -> JobStatus:
        """Wait for the job to finish; returns its final status when ``Successful``.

        Raises :class:`DaskJobFailed` (exit code, reason, message, log tail) when it ``Failed``,
        :class:`WaitTimeout` after ``timeout`` seconds (the job keeps running), and
        :class:`JobNotFound` if it is deleted meanwhile.

        >>> final = await job.wait(timeout=600)                 # doctest: +SKIP
        >>> final.result
        {'total': 42}
        """
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                async for st in self.watch():
                    if st.done:
                        return self._verdict(st)
        except TimeoutError:
            if scope.expired():
                last = JobStatus.from_job(self._job)
                raise WaitTimeout(self.name, self.namespace, float(timeout or 0),
                                  last.phase, last.message) from None
            raise
        raise JobNotFound(self.name, self.namespace, "deleted")  # pragma: no cover

    def _verdict(self, st: JobStatus) -> JobStatus:
        if st.phase == "Failed":
            raise DaskJobFailed(st.exit_code, st.reason, st.message, st.log_tail, self.name,
                                namespace=self.namespace, status=st)
        return st

    # -- logs ------------------------------------------------------------------------------
    def logs(self, follow: bool = False, container: str | None = None) -> LogStream:
        """The runner's log: ``await job.logs()`` is the current runner's log as text;
        ``async for line in job.logs(follow=True)`` streams lines until the job finishes,
        moving on to the next runner Pod when the job retries.

        ``container`` defaults to the runner Pod's first container.
        """
        return LogStream(self, follow=follow, container=container)

    async def _log_lines(self, pod: str, container: str | None, *,
                         follow: bool) -> AsyncIterator[str]:
        params: dict[str, Any] = {"follow": "true" if follow else "false"}
        if container:
            params["container"] = container
        timeout = httpx.Timeout(None, connect=kube.REQUEST_TIMEOUT)
        async with self._client._call("GET", kube.PODS.path(self.namespace, pod, "log"),
                                      params=params, stream=True, timeout=timeout) as resp:
            async for line in resp.aiter_lines():
                yield line

    async def _runner_container(self, pod: str, container: str | None) -> tuple[Obj | None, str]:
        with translate(None, self.namespace):
            obj = await self._client.get(kube.PODS, self.namespace, pod)
        if container or obj is None:
            return obj, container or ""
        return obj, ((obj.get("spec") or {}).get("containers") or [{}])[0].get("name", "")

    async def _attempt_runner(self, attempt: int) -> str | None:
        """The runner Pod of one attempt, found by the labels the operator puts on it."""
        selector = f"dask.org/job-name={self.name},dask.org/job-attempt={attempt}"
        with translate(None, self.namespace):
            pods, _ = await self._client.list(kube.PODS, self.namespace, label_selector=selector)
        owned = [p for p in pods if any(r.get("uid") == self.uid
                                        for r in p["metadata"].get("ownerReferences") or [])]
        return owned[0]["metadata"]["name"] if owned else None

    async def _follow(self, container: str | None) -> AsyncIterator[str]:
        """Every attempt's runner log in order, from the first attempt on (so a follower that
        starts late still sees the whole run), following the current one until it ends."""
        attempt = 1
        seen = 0  # lines of this attempt already yielded: a resumed stream starts from the top
        while True:
            try:
                st = JobStatus.from_job(await self.refresh())
            except JobNotFound:
                return
            if st.attempts < attempt:  # this attempt has not started (yet)
                if st.done:
                    return
                await asyncio.sleep(POLL)
                continue
            current = await self._attempt_runner(attempt)
            pod, name = await self._runner_container(current, container) if current else (None, "")
            if pod is None:
                if attempt < st.attempts or st.done:
                    attempt, seen = attempt + 1, 0  # gone (deleted): on to the next attempt
                else:
                    await asyncio.sleep(POLL)
                continue
            skip = seen
            try:
                async for line in self._log_lines(current, name or None, follow=True):
                    if skip:
                        skip -= 1
                        continue
                    seen += 1
                    yield line
            except kube.APIError as exc:
                if exc.code not in (400, 404, 500, 502, 503):  # 400: not started yet
                    with translate(None, self.namespace):
                        raise
                await asyncio.sleep(POLL)
                continue
            except NETWORK_ERRORS:
                await asyncio.sleep(POLL)
                continue
            pod, _ = await self._runner_container(current, container)
            if pod is not None and (pod.get("status") or {}).get("phase") not in (
                    "Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
                continue  # the stream ended but the runner goes on: resume it
            attempt, seen = attempt + 1, 0

    async def _text(self, container: str | None) -> str:
        st = await self.status()
        if not st.runner_pod:
            return ""
        pod, name = await self._runner_container(st.runner_pod, container)
        if pod is None:
            return ""
        try:
            return "".join([line + "\n" async for line in
                            self._log_lines(st.runner_pod, name or None, follow=False)])
        except kube.APIError as exc:
            if exc.code == 400:  # the container has not started: no log yet
                return ""
            with translate(None, self.namespace):
                raise

    # -- deleting --------------------------------------------------------------------------
    async def delete(self, wait: bool = True, timeout: float = 120.0) -> bool:
        """Delete the job and everything it owns (cluster, runner Pods); False if it was
        already gone. With ``wait`` return once it is gone (Foreground deletion: its
        children are removed first), raising :class:`WaitTimeout` after ``timeout``.

        >>> await job.delete()                                  # doctest: +SKIP
        True
        """
        with translate(self.name, self.namespace):
            deleted = await self._client.delete(DASKJOBS, self.namespace, self.name,
                                                uid=self.uid,
                                                propagation="Foreground" if wait else "Background")
        if not (deleted and wait):
            return deleted
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                while True:
                    with translate(self.name, self.namespace):
                        job = await self._client.get(DASKJOBS, self.namespace, self.name)
                    if job is None or job["metadata"].get("uid") != self.uid:
                        return True
                    await asyncio.sleep(0.2)
        except TimeoutError:
            if scope.expired():
                raise WaitTimeout(self.name, self.namespace, timeout, "Terminating") from None
            raise


class LogStream:
    """A runner's log: awaitable (the whole text) and async-iterable (line by line).

    ``await job.logs()`` reads what is there now; ``async for line in job.logs(follow=True)``
    follows. Iterating a non-following stream yields the current lines and stops.
    """

    def __init__(self, handle: AsyncDaskJobHandle, *, follow: bool,
                 container: str | None) -> None:
        self._handle = handle
        self.follow = follow
        self.container = container

    def __await__(self) -> Generator[Any, None, str]:
        return self._handle._text(self.container).__await__()

    def __aiter__(self) -> AsyncIterator[str]:
        if self.follow:
            return self._handle._follow(self.container)
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        for line in (await self._handle._text(self.container)).splitlines():
            yield line


# -- module functions ------------------------------------------------------------------------
async def submit(spec: Any, *, namespace: str | None = None,
                 kubeconfig: str | os.PathLike[str] | None = None) -> AsyncDaskJobHandle:
    """Create a DaskJob; returns its handle at once (``await handle.wait()`` to wait).

    ``spec`` is a manifest dict (e.g. from :func:`~dask_kube_jobs.make_job_spec`), the path
    of a YAML/JSON file, or YAML text. It is checked first: a mistake raises
    :class:`~dask_kube_jobs.SpecError` naming the field, before anything is sent. The namespace
    is ``namespace``, else the manifest's, else the kubeconfig context's.

    >>> job = await submit(make_job_spec("pi", script="print(3.14)"))    # doctest: +SKIP
    """
    manifest = load_job_manifest(spec)
    check_job_manifest(manifest)
    client = await connect(kubeconfig)
    meta = manifest["metadata"]
    if namespace and meta.get("namespace") and meta["namespace"] != namespace:
        raise SpecError("metadata.namespace", f"is {meta['namespace']!r} but namespace="
                        f"{namespace!r} was asked for; remove one of them")
    ns = namespace or meta.get("namespace") or default_namespace(client)
    meta["namespace"] = ns
    with translate(meta.get("name") or meta.get("generateName"), ns, creating=True):
        created = await client.create(DASKJOBS, ns, manifest)
    return AsyncDaskJobHandle(client, created)


async def get_job(name: str, namespace: str | None = None, *,
                  kubeconfig: str | os.PathLike[str] | None = None) -> AsyncDaskJobHandle:
    """Reattach to an existing DaskJob by name; raises :class:`JobNotFound`.

    >>> job = await get_job("nightly-etl", namespace="data")    # doctest: +SKIP
    """
    client = await connect(kubeconfig)
    ns = namespace or default_namespace(client)
    with translate(name, ns):
        job = await client.get(DASKJOBS, ns, name)
    if job is None:
        raise JobNotFound(name, ns)
    return AsyncDaskJobHandle(client, job)


async def list_jobs(namespace: str | None = None, labels: Mapping[str, str] | str | None = None,
                    *, all_namespaces: bool = False,
                    kubeconfig: str | os.PathLike[str] | None = None) -> list[AsyncDaskJobHandle]:
    """The DaskJobs of a namespace (or all), optionally selected by labels, oldest first.

    ``labels`` is a mapping (all must match) or a selector string (``team=data,tier!=dev``).

    >>> [j.name for j in await list_jobs(labels={"team": "data"})]      # doctest: +SKIP
    ['nightly-etl']
    """
    client = await connect(kubeconfig)
    ns = None if all_namespaces else (namespace or default_namespace(client))
    selector = labels if isinstance(labels, str) or labels is None else \
        ",".join(f"{k}={v}" for k, v in labels.items())
    with translate(None, ns or ""):
        items, _ = await client.list(DASKJOBS, ns, label_selector=selector or None)
    items.sort(key=lambda o: (o["metadata"].get("creationTimestamp") or "",
                              o["metadata"]["name"]))
    return [AsyncDaskJobHandle(client, item) for item in items]
