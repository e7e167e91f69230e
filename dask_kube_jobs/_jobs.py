"""Submit a DaskJob, wait for it, follow its log: the one (async) implementation.

``dask_kube_jobs.asyncio`` exports this module's functions as they are; ``dask_kube_jobs.jobs``
runs the same coroutines on a private event-loop thread for sync callers (kr8s's pattern), so
the two APIs cannot drift apart.

Requests go through :class:`dask_kube_jobs.kube.Client` rather than kr8s objects, for two
reasons dask_kube_jobs.kube explains: kr8s answers any 401/403 by reloading credentials and breaking every
request in flight, and kr8s's ``watch`` never recovers from ``410 Gone``. Waiting must survive
hours, so :meth:`AsyncDaskJobHandle.watch` lists, watches from the list's resourceVersion,
resumes after the server ends a watch, and re-lists after an error or a 410, like client-go's
reflector. A job deleted meanwhile -- or replaced by a new one of the same name, told apart by
its uid -- ends the wait with :class:`JobNotFound` instead of a hang. Where RBAC lets a user get
DaskJobs but not list/watch them (a 403), the handle polls with GET instead and says so once
in the log; only a user who may not even get the job sees the 403 raised.

Handles come from :func:`submit`, :func:`get_job`, :func:`list_jobs`, or, without a request,
from what a caller kept (name, namespace, uid): :meth:`AsyncDaskJobHandle.from_name`. Following
the log is ``_jobs_logs.py``'s business.

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
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

from . import kube
from ._jobs_client import (
    NETWORK_ERRORS,
    close_clients,
    connect,
    find_kubeconfig,
    retrying,
    translate,
)
from ._jobs_logs import LogStream
from ._jobs_manifest import (
    DASHBOARD_TEMPLATE_ENV,
    JobStatus,
    check_job_manifest,
    dashboard_link,
    load_job_manifest,
)
from .contract.api_resources import DASKCLUSTERS, DASKJOBS
from .errors import APIRequestError, DaskJobFailed, DaskKubeJobsError, JobNotFound, WaitTimeout
from .kube import default_namespace
from .spec import SpecError

__all__ = ["POLL_INTERVAL", "AsyncDaskJobHandle", "LogStream", "close_clients", "find_kubeconfig",
           "get_job", "list_jobs", "submit"]

Obj = dict[str, Any]
POLL_INTERVAL = 10.0  # seconds between GETs of a job when RBAC forbids watching it
log = logging.getLogger("dask_kube_jobs.jobs")


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

    ``poll_interval`` (seconds, default 10) is how often the job is read with GET instead when
    RBAC forbids listing/watching DaskJobs but allows getting them (a 403 on the watch): the
    fallback is said once, to ``notice``: a callable taking the message, by default WARNING on
    the ``dask_kube_jobs.jobs`` logger (an Airflow trigger passes its own log's, so the remark
    lands in the task's log).

    A handle stands for one job (one uid): if the handle was made without a uid it takes the
    uid of the job it first sees, and a job re-created under the same name afterwards is
    :class:`JobNotFound` ("deleted and re-created") rather than silently another job.
    """

    def __init__(self, client: kube.Client | None, job: Obj, *,
                 kubeconfig: str | os.PathLike[str] | None = None) -> None:
        self._client = client
        self._kubeconfig = kubeconfig
        self._job = job
        meta = job["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str | None = meta.get("uid")
        self.watch_timeout: int = random.randint(240, 300)
        self.watch_connections = 0
        self.poll_interval: float = POLL_INTERVAL
        self.notice: Callable[[str], None] = log.warning
        self._poll_noted = False

    @classmethod
    def from_name(cls, name: str, namespace: str, *, uid: str | None = None,
                  kubeconfig: str | os.PathLike[str] | None = None,
                  client: kube.Client | None = None) -> AsyncDaskJobHandle:
        """A handle for the DaskJob ``namespace/name`` without reading it (no request is made
        until the handle is used): for code that kept a job's name, namespace and uid -- an
        Airflow trigger, a queue message -- and may not even have the right to read it yet.

        With ``uid``, a job of that name but another uid counts as gone (:class:`JobNotFound`).
        ``client`` reuses a :class:`dask_kube_jobs.kube.Client`; else one is connected with
        ``kubeconfig`` (found as :func:`find_kubeconfig` does) on first use. Until the job is
        read, :attr:`phase` is None. :func:`get_job` is the checked way (one GET).

        >>> job = AsyncDaskJobHandle.from_name("nightly-etl", "data")   # doctest: +SKIP
        >>> await job.wait()                                            # doctest: +SKIP
        """
        if not name or not namespace:
            raise ValueError(f"from_name needs a job name and a namespace (got name={name!r}, "
                             f"namespace={namespace!r})")
        if client is None:
            kubeconfig = find_kubeconfig(kubeconfig)  # a missing file is reported now
        return cls(client, {"metadata": {"name": name, "namespace": namespace, "uid": uid}},
                   kubeconfig=kubeconfig)

    async def _api(self) -> kube.Client:
        if self._client is None:
            self._client = await connect(self._kubeconfig)
        return self._client

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
        self.uid = self.uid or uid
        self._job = job
        return job

    async def refresh(self) -> Obj:
        """Read the DaskJob again; raises :class:`JobNotFound` if it is gone."""
        with translate(self.name, self.namespace):
            job = await (await self._api()).get(DASKJOBS, self.namespace, self.name)
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
            obj = await (await self._api()).get(DASKCLUSTERS, self.namespace, cluster)
        address = ((obj or {}).get("status") or {}).get("dashboardAddress")
        if obj is None and not os.environ.get(DASHBOARD_TEMPLATE_ENV):
            return None
        return dashboard_link(job=self.name, namespace=self.namespace, cluster=cluster,
                              address=address)

    # -- watching --------------------------------------------------------------------------
    async def _list_self(self) -> tuple[list[Obj], str]:
        client = await self._api()
        with translate(self.name, self.namespace):
            return await client.list(DASKJOBS, self.namespace,
                                     field_selector=f"metadata.name={self.name}")

    @contextlib.asynccontextmanager
    async def _watch_self(self, rv: str) -> AsyncIterator[AsyncIterator[str]]:
        client = await self._api()
        async with client.watch_lines(DASKJOBS, self.namespace, rv,
                                      timeout_seconds=self.watch_timeout,
                                      field_selector=f"metadata.name={self.name}") as lines:
            self.watch_connections += 1
            yield lines

    async def _changes(self) -> AsyncIterator[Obj]:
        """The job now and after each change; list + watch, resumed and re-listed as needed
        (a watch the server ends is resumed; a 410 lists again at once; a transient error or a
        broken stream lists again after a pause of 0.2 s, doubling up to 5 s)."""
        backoff = kube.Backoff(first=0.2, most=5.0)
        while True:
            try:
                async for event in kube.ListThenWatch(partial(retrying, self._list_self),
                                                      self._watch_self):
                    if isinstance(event, kube.Relisted):
                        if not event.items:
                            raise JobNotFound(self.name, self.namespace, "deleted")
                        yield self._note(event.items[0])
                    elif event.type == "DELETED":
                        raise JobNotFound(self.name, self.namespace, "deleted")
                    else:
                        backoff.reset()
                        yield self._note(event.object)
            except DaskKubeJobsError:  # said in our terms already (the list is translated)
                raise
            except kube.APIError as exc:
                if not kube.is_transient(exc):
                    with translate(self.name, self.namespace):
                        raise
                await backoff.pause()
            except (*NETWORK_ERRORS, ValueError):  # the stream broke: re-list after a pause
                await backoff.pause()

    async def _polled(self, forbidden: APIRequestError) -> AsyncIterator[Obj]:
        """The job read with GET every ``poll_interval`` s, for users who may get DaskJobs but
        not list/watch them (some clusters' RBAC); a 403 on the GET too is raised."""
        job = await self.refresh()
        if not self._poll_noted:
            self._poll_noted = True
            self.notice(f"Watching DaskJob {self.namespace}/{self.name} is forbidden "
                        f"({forbidden.message}); polling it with GET every "
                        f"{self.poll_interval:g}s instead")
        while True:
            yield job
            await asyncio.sleep(self.poll_interval)
            job = await retrying(self.refresh)

    async def _states(self) -> AsyncIterator[Obj]:
        """The job now and after each change, ending after its final state: watched, or
        polled when RBAC forbids watching. A state is never yielded twice in a row."""
        last_rv: object = None
        try:
            async with contextlib.aclosing(self._changes()) as changes:
                async for job in changes:
                    last_rv = job["metadata"].get("resourceVersion")
                    yield job
                    if JobStatus.from_job(job).done:
                        return
        except APIRequestError as exc:
            if exc.code != 403:
                raise
            forbidden = exc
        async with contextlib.aclosing(self._polled(forbidden)) as polled:
            async for job in polled:
                rv = job["metadata"].get("resourceVersion")
                if rv is None or rv != last_rv:
                    last_rv = rv
                    yield job
                if JobStatus.from_job(job).done:
                    return

    async def watch(self) -> AsyncIterator[JobStatus]:
        """The job's status now and after each change, ending after the final one.

        Watched (list + watch, resumed across drops and ``410 Gone``); when RBAC forbids
        listing/watching DaskJobs but allows getting them, polled with GET every
        ``poll_interval`` seconds instead (logged once).

        >>> async for st in job.watch():                        # doctest: +SKIP
        ...     print(st.phase)
        """
        async with contextlib.aclosing(self._states()) as states:
            async for job in states:
                yield JobStatus.from_job(job)

    async def wait(self, timeout: float | None = None) -> JobStatus:
        """Wait for the job to finish; returns its final status when ``Successful``.

        Raises :class:`DaskJobFailed` (exit code, reason, message, log tail) when it ``Failed``,
        :class:`WaitTimeout` after ``timeout`` seconds (the job keeps running), and
        :class:`JobNotFound` if it is deleted meanwhile.

        >>> final = await job.wait(timeout=600)                 # doctest: +SKIP
        >>> final.result                                        # doctest: +SKIP
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
    def logs(self, follow: bool = False, container: str | None = None, *,
             skip: int = 0) -> LogStream:
        """The runner's log: ``await job.logs()`` is the current runner's log as text;
        ``async for line in job.logs(follow=True)`` streams every attempt's lines in order
        until the job finishes, moving on to the next runner Pod when the job retries.

        ``container`` defaults to the runner Pod's first container. ``skip`` (with ``follow``)
        passes over that many lines of the followed stream first: give it the
        :attr:`LogStream.position` an earlier follower reached to resume without repeats.

        >>> stream = job.logs(follow=True, skip=120)            # doctest: +SKIP
        >>> async for line in stream: ...                       # doctest: +SKIP
        """
        return LogStream(self, follow=follow, container=container, skip=skip)

    # -- deleting --------------------------------------------------------------------------
    async def delete(self, wait: bool = True, timeout: float = 120.0) -> bool:
        """Delete the job and everything it owns (cluster, runner Pods); False if it was
        already gone. With ``wait`` return once it is gone (Foreground deletion: its
        children are removed first), raising :class:`WaitTimeout` after ``timeout``.

        >>> await job.delete()                                  # doctest: +SKIP
        True
        """
        with translate(self.name, self.namespace):
            deleted = await (await self._api()).delete(
                DASKJOBS, self.namespace, self.name, uid=self.uid,
                propagation="Foreground" if wait else "Background")
        if not (deleted and wait):
            return deleted
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                while True:
                    with translate(self.name, self.namespace):
                        job = await (await self._api()).get(DASKJOBS, self.namespace, self.name)
                    if job is None or (self.uid and job["metadata"].get("uid") != self.uid):
                        return True
                    await asyncio.sleep(0.2)
        except TimeoutError:
            if scope.expired():
                raise WaitTimeout(self.name, self.namespace, timeout, "Terminating") from None
            raise


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
