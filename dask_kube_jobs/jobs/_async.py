"""The async face of the job API: :class:`AsyncDaskJobHandle` and the module functions.

``dask_kube_jobs.asyncio`` exports them as they are; the sync face (``_sync.py``) runs the same
coroutines on a private event-loop thread (kr8s's pattern), so the two cannot drift apart.

A handle is a :class:`~._watch.JobReader` (which job, how it last looked, how to read and watch
it) plus what a user does with a job: read its status and result, wait for it, read or follow
its log (:class:`~._logs.LogStream`), delete it. Handles come from :func:`submit`,
:func:`get_job`, :func:`list_jobs`, or, without a request, from what a caller kept (name,
namespace, uid): :meth:`AsyncDaskJobHandle.from_name`.

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
import os
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from .. import kube
from ..contract.api_resources import DASKCLUSTERS, DASKJOBS
from ..errors import DaskJobFailed, JobNotFound, WaitTimeout
from ..kube import default_namespace
from ..profile_spec import with_profile
from ..spec import SpecError
from ._client import (
    NETWORK_ERRORS,
    connect,
    find_kubeconfig,
    translate,
)
from ._logs import LogStream
from ._manifest import check_job_manifest, load_job_manifest, with_cluster_ref
from ._profile import check_early
from ._startup import startup_problem
from ._status import DASHBOARD_TEMPLATE_ENV, JobStatus, dashboard_link
from ._watch import JobReader

__all__ = ["AsyncDaskJobHandle", "get_job", "list_jobs", "submit"]

Obj = dict[str, Any]
DELETE_POLL = 0.2  # seconds between reads of a job being deleted


# -- the handle ----------------------------------------------------------------------------------
class AsyncDaskJobHandle:
    """One submitted DaskJob: its status, its log, its result; made by :func:`submit`,
    :func:`get_job` or :func:`list_jobs`.

    Reads that make a request are coroutines (``await job.status()``, ``await job.result()``,
    ``await job.dashboard_link()``, ``await job.refresh()``); properties make none and say
    what was last seen (``job.phase``, ``job.last_status``, ``job.raw``). The sync
    :class:`~dask_kube_jobs.DaskJobHandle` has the same names with the same meanings.

    ``watch_timeout``, ``watch_connections``, ``poll_interval`` and ``notice`` are those of the
    :class:`~._watch.JobReader` the handle reads the job with: how watches are timed, and how
    the job is polled (and the fallback said, once) when RBAC forbids watching it. An Airflow
    trigger passes its own log's ``notice``, so the remark lands in the task's log.

    A handle stands for one job (one uid): if the handle was made without a uid it takes the
    uid of the job it first sees, and a job re-created under the same name afterwards is
    :class:`JobNotFound` ("deleted and re-created") rather than silently another job.
    """

    def __init__(self, client: kube.Client | None, job: Obj, *,
                 kubeconfig: str | os.PathLike[str] | None = None) -> None:
        self._reader = JobReader(client, job, kubeconfig=kubeconfig)

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

    def __repr__(self) -> str:
        return f"<DaskJob {self.namespace}/{self.name} phase={self.phase}>"

    # -- what the handle knows without a request -------------------------------------------
    @property
    def name(self) -> str:
        return self._reader.name

    @property
    def namespace(self) -> str:
        return self._reader.namespace

    @property
    def uid(self) -> str | None:
        """The job's uid; None until the job is first read when the handle was made by name."""
        return self._reader.uid

    @property
    def raw(self) -> Obj:
        """The DaskJob object as last seen."""
        return self._reader.last_seen

    @property
    def phase(self) -> str | None:
        """The phase when last seen (``JobCreated`` ... ``Successful``/``Failed``), or None;
        no request (:meth:`status` reads it now)."""
        return self.last_status.phase

    @property
    def last_status(self) -> JobStatus:
        """The status when last seen; no request (:meth:`status` reads it now). Every read,
        :meth:`watch` and :meth:`wait` renew it."""
        return JobStatus.from_job(self._reader.last_seen)

    @property
    def watch_timeout(self) -> int:
        return self._reader.watch_timeout

    @watch_timeout.setter
    def watch_timeout(self, seconds: int) -> None:
        self._reader.watch_timeout = seconds

    @property
    def watch_connections(self) -> int:
        return self._reader.watch_connections

    @property
    def poll_interval(self) -> float:
        return self._reader.poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._reader.poll_interval = seconds

    @property
    def notice(self) -> Callable[[str], None]:
        return self._reader.notice

    @notice.setter
    def notice(self, say: Callable[[str], None]) -> None:
        self._reader.notice = say

    # -- reads -----------------------------------------------------------------------------
    async def refresh(self) -> Obj:
        """Read the DaskJob again; raises :class:`JobNotFound` if it is gone."""
        return await self._reader.refresh()

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
            obj = await (await self._reader.api()).get(DASKCLUSTERS, self.namespace, cluster)
        address = ((obj or {}).get("status") or {}).get("dashboardAddress")
        if obj is None and not os.environ.get(DASHBOARD_TEMPLATE_ENV):
            return None
        return dashboard_link(job=self.name, namespace=self.namespace, cluster=cluster,
                              address=address)

    # -- waiting ---------------------------------------------------------------------------
    async def watch(self) -> AsyncIterator[JobStatus]:
        """The job's status now and after each change, ending after the final one.

        Watched (list + watch, resumed across drops and ``410 Gone``); when RBAC forbids
        listing/watching DaskJobs but allows getting them, polled with GET every
        ``poll_interval`` seconds instead (logged once).

        >>> async for st in job.watch():                        # doctest: +SKIP
        ...     print(st.phase)
        """
        async with contextlib.aclosing(self._reader.states()) as states:
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
                last = self.last_status
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
        return LogStream(self._reader, follow=follow, container=container, skip=skip)

    async def startup_problem(self) -> str | None:
        """Why the job's runner has not started, read now (the job's reason and conditions,
        its Pods' scheduling and container states, Warning Events), or None once it has
        started or the job ended; best effort where RBAC hides Pods or Events."""
        job = await self.refresh()
        return await startup_problem(await self._reader.api(), job)

    # -- deleting --------------------------------------------------------------------------
    async def delete(self, wait: bool = True, timeout: float = 120.0) -> bool:
        """Delete the job and everything it owns (cluster, runner Pods); False if it was
        already gone. With ``wait`` return once it is gone (Foreground deletion: its
        children are removed first), raising :class:`WaitTimeout` after ``timeout``.

        >>> await job.delete()                                  # doctest: +SKIP
        True
        """
        client = await self._reader.api()
        if not wait:
            with translate(self.name, self.namespace):
                return await client.delete(DASKJOBS, self.namespace, self.name, uid=self.uid,
                                           propagation="Background")
        try:
            return await client.delete_and_wait(
                DASKJOBS, self.namespace, self.name, uid=self.uid, propagation="Foreground",
                timeout=timeout, poll=DELETE_POLL)
        except TimeoutError:  # the deadline (an OSError too: caught before translate sees it)
            raise WaitTimeout(self.name, self.namespace, timeout, "Terminating") from None
        except (kube.APIError, *NETWORK_ERRORS):
            with translate(self.name, self.namespace):
                raise


# -- module functions ------------------------------------------------------------------------
async def submit(spec: Any, *, namespace: str | None = None,
                 kubeconfig: str | os.PathLike[str] | None = None,
                 client: kube.Client | None = None,
                 cluster: str | None = None, profile: str | None = None,
                 profile_options: Mapping[str, Any] | None = None) -> AsyncDaskJobHandle:
    """Create a DaskJob; returns its handle at once (``await handle.wait()`` to wait).

    ``spec`` is a manifest dict (e.g. from :func:`~dask_kube_jobs.make_job_spec`), the path
    of a YAML/JSON file, or YAML text. It is checked first: a mistake raises
    :class:`~dask_kube_jobs.SpecError` naming the field, before anything is sent. The namespace
    is ``namespace``, else the manifest's, else the kubeconfig context's. ``client`` reuses a
    client from :func:`~dask_kube_jobs.asyncio.open_client` instead of ``kubeconfig``'s.
    ``cluster`` names an existing DaskCluster to run on (``spec.clusterRef``) in place of the
    manifest's own cluster, which is then not made. :class:`~dask_kube_jobs.JobAlreadyExists`
    if the name is taken.

    >>> job = await submit(make_job_spec("pi", script="print(3.14)"))    # doctest: +SKIP
    """
    manifest = load_job_manifest(spec)
    if cluster is not None:
        manifest = with_cluster_ref(manifest, cluster)
    if profile is not None:
        manifest = with_profile(manifest, profile, profile_options)
    elif profile_options:
        raise SpecError("profile_options", "are options of a profile; name it with profile=...")
    check_job_manifest(manifest)
    client = client or await connect(kubeconfig)
    await check_early(client, manifest["spec"])
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
                  kubeconfig: str | os.PathLike[str] | None = None,
                  client: kube.Client | None = None) -> AsyncDaskJobHandle:
    """Reattach to an existing DaskJob by name; raises :class:`JobNotFound`.

    >>> job = await get_job("nightly-etl", namespace="data")    # doctest: +SKIP
    """
    if not isinstance(name, str) or not name:
        raise SpecError("name", f"must be the DaskJob's name (a non-empty string), got {name!r}")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise SpecError("namespace", f"must be a namespace name or None, got {namespace!r}")
    client = client or await connect(kubeconfig)
    ns = namespace or default_namespace(client)
    with translate(name, ns):
        job = await client.get(DASKJOBS, ns, name)
    if job is None:
        raise JobNotFound(name, ns)
    return AsyncDaskJobHandle(client, job)


async def list_jobs(namespace: str | None = None, labels: Mapping[str, str] | str | None = None,
                    *, all_namespaces: bool = False,
                    kubeconfig: str | os.PathLike[str] | None = None,
                    client: kube.Client | None = None) -> list[AsyncDaskJobHandle]:
    """The DaskJobs of a namespace (or all), optionally selected by labels, oldest first.

    ``labels`` is a mapping (all must match) or a selector string (``team=data,tier!=dev``).

    >>> [j.name for j in await list_jobs(labels={"team": "data"})]      # doctest: +SKIP
    ['nightly-etl']
    """
    client = client or await connect(kubeconfig)
    ns = None if all_namespaces else (namespace or default_namespace(client))
    selector = labels if isinstance(labels, str) or labels is None else \
        ",".join(f"{k}={v}" for k, v in labels.items())
    with translate(None, ns or ""):
        items, _ = await client.list(DASKJOBS, ns, label_selector=selector or None)
    items.sort(key=lambda o: (o["metadata"].get("creationTimestamp") or "",
                              o["metadata"]["name"]))
    return [AsyncDaskJobHandle(client, item) for item in items]
