"""The sync face of the job API: submit a DaskJob and wait for it, from ordinary Python.

A thin wrapper: every call runs the coroutine of the async face (``_async.py``, which
``dask_kube_jobs.asyncio`` exports) on one private event-loop thread, as kr8s's sync API
does with its ``_async_utils`` portal. A private loop rather than ``asyncio.run`` per call because
the HTTP connection pool and a handle's client belong to one loop and must outlive each call,
and because a notebook or an Airflow task may already run a loop in this thread.

>>> from dask_kube_jobs import make_job_spec, submit
>>> job = submit(make_job_spec("sum", script="print(1 + 1)", n_workers=1))  # doctest: +SKIP
>>> for line in job.logs(follow=True):                                   # doctest: +SKIP
...     print(line)
2
>>> job.wait().phase                                                     # doctest: +SKIP
'Successful'

Ctrl-C while blocked cancels the coroutine on the loop thread and raises ``KeyboardInterrupt``
here, as a blocking call should.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, Literal, TypeVar, overload

from . import _async as async_face
from ._deprecated import formerly_a_property
from ._logs import LogStream
from ._status import JobStatus

__all__ = ["DaskJobHandle", "FollowedLog", "get_job", "iterate_sync", "list_jobs", "run_sync",
           "submit"]

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _runner_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="dask-kube-jobs-sync",
                             daemon=True).start()
            _loop = loop
        return _loop


def run_sync(awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on the private loop thread and return its result (blocking)."""
    loop = _runner_loop()
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # would wait for itself for ever
        getattr(awaitable, "close", lambda: None)()
        raise RuntimeError("the sync dask_kube_jobs API was called from its own event loop; "
                           "use dask_kube_jobs.asyncio there")

    async def call() -> T:
        return await awaitable

    future = asyncio.run_coroutine_threadsafe(call(), loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # Ctrl-C (KeyboardInterrupt) here stops the work on the loop too
        raise


def iterate_sync(agen: AsyncIterator[T]) -> Iterator[T]:
    """A blocking iterator over an async iterator, stepping it on the private loop thread."""
    async def step() -> tuple[bool, Any]:
        try:
            return False, await agen.__anext__()
        except StopAsyncIteration:
            return True, None

    try:
        while True:
            done, item = run_sync(step())
            if done:
                return
            yield item
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            run_sync(aclose())


class DaskJobHandle:
    """One submitted DaskJob; made by :func:`submit`, :func:`get_job` or :func:`list_jobs`.

    The same names, with the same meanings, as :class:`AsyncDaskJobHandle`'s, blocking where
    that one is awaited. Reads that make a request are methods: :meth:`status`,
    :meth:`result`, :meth:`dashboard_link`, :meth:`refresh`. Properties make none: they say
    what was last seen (:attr:`phase`, :attr:`last_status`, :attr:`raw`), which every read,
    :meth:`watch` and :meth:`wait` renew. ``watch_timeout`` is the server-side timeout
    (seconds) of each watch request.

    >>> job = get_job("nightly-etl", namespace="data")                   # doctest: +SKIP
    >>> job.phase, job.result()                                          # doctest: +SKIP
    ('Successful', {'rows': 1200})

    ``status``, ``result`` and ``dashboard_link`` were properties before this release; used
    as values rather than called they still work for one release, with a
    ``DeprecationWarning`` naming the call (``_deprecated.py`` says how far that goes).
    ``phase`` was a property that read the job on each access and now says the phase last
    seen, as on the async handle: it cannot warn, since that is its meaning from now on, so a
    loop that polled ``job.phase`` must read ``job.status().phase`` (or call :meth:`wait`).
    """

    def __init__(self, handle: async_face.AsyncDaskJobHandle) -> None:
        self._async = handle

    def __repr__(self) -> str:
        return repr(self._async)

    @property
    def name(self) -> str:
        return self._async.name

    @property
    def namespace(self) -> str:
        return self._async.namespace

    @property
    def uid(self) -> str | None:
        return self._async.uid

    @property
    def raw(self) -> dict[str, Any]:
        """The DaskJob object as last seen (no request)."""
        return self._async.raw

    @property
    def watch_timeout(self) -> int:
        return self._async.watch_timeout

    @watch_timeout.setter
    def watch_timeout(self, seconds: int) -> None:
        self._async.watch_timeout = seconds

    @property
    def watch_connections(self) -> int:
        return self._async.watch_connections

    @property
    def poll_interval(self) -> float:
        """Seconds between GETs when RBAC forbids watching the job (see :meth:`watch`)."""
        return self._async.poll_interval

    @poll_interval.setter
    def poll_interval(self, seconds: float) -> None:
        self._async.poll_interval = seconds

    @property
    def notice(self) -> Callable[[str], None]:
        """Where the fallback to polling is said, once (default: a WARNING log record)."""
        return self._async.notice

    @notice.setter
    def notice(self, say: Callable[[str], None]) -> None:
        self._async.notice = say

    @classmethod
    def from_name(cls, name: str, namespace: str, *, uid: str | None = None,
                  kubeconfig: str | os.PathLike[str] | None = None) -> DaskJobHandle:
        """A handle for ``namespace/name`` without reading the job (no request until used);
        see :meth:`AsyncDaskJobHandle.from_name`. :func:`get_job` is the checked way.

        >>> DaskJobHandle.from_name("nightly-etl", "data", uid=saved_uid).wait()  # doctest: +SKIP
        """
        return cls(async_face.AsyncDaskJobHandle.from_name(name, namespace, uid=uid,
                                                           kubeconfig=kubeconfig))

    @property
    def phase(self) -> str | None:
        """The phase when last seen (``JobCreated`` ... ``Successful``/``Failed``), or None;
        no request (:meth:`status` reads it now)."""
        return self._async.phase

    @property
    def last_status(self) -> JobStatus:
        """The status when last seen; no request (:meth:`status` reads it now)."""
        return self._async.last_status

    def refresh(self) -> dict[str, Any]:
        """Read the DaskJob object again; raises :class:`~dask_kube_jobs.JobNotFound` if it
        is gone."""
        return run_sync(self._async.refresh())

    @formerly_a_property
    def status(self) -> JobStatus:
        """The job's status, read now.

        >>> job.status().phase                                             # doctest: +SKIP
        'Running'
        """
        return run_sync(self._async.status())

    @formerly_a_property
    def result(self) -> Any:
        """What the runner passed to ``dask_kube_jobs.set_result``, decoded, read now (None
        if nothing, or not finished yet).

        >>> job.result()                                                   # doctest: +SKIP
        {'rows': 1200}
        """
        return run_sync(self._async.result())

    @formerly_a_property
    def dashboard_link(self) -> str | None:
        """The Dask dashboard URL while the cluster exists, read now: the DaskCluster's
        ``status.dashboardAddress`` + ``/status``, or ``$DASK_KUBE_JOBS_DASHBOARD_TEMPLATE``
        formatted with ``{namespace} {cluster} {job} {scheduler} {port}``; None once the
        job's cluster is gone."""
        return run_sync(self._async.dashboard_link())

    def watch(self) -> Iterator[JobStatus]:
        """The status now and after each change, ending after the final one (polled with GET
        every :attr:`poll_interval` s when RBAC forbids watching DaskJobs but allows getting
        them)."""
        return iterate_sync(self._async.watch())

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job finishes; see :meth:`AsyncDaskJobHandle.wait`.

        >>> submit("job.yaml").wait(timeout=600).result                  # doctest: +SKIP
        """
        return run_sync(self._async.wait(timeout))

    @overload
    def logs(self, follow: Literal[False] = ..., container: str | None = ...) -> str: ...

    @overload
    def logs(self, follow: Literal[True], container: str | None = ..., *,
             skip: int = ...) -> FollowedLog: ...

    def logs(self, follow: bool = False, container: str | None = None, *,
             skip: int = 0) -> str | FollowedLog:
        """The runner's log as text, or with ``follow=True`` an iterator of every attempt's
        lines, in order, until the job ends (continuing with the next runner Pod when the job
        retries). ``skip`` passes over that many lines of the followed stream first: give it
        the :attr:`FollowedLog.position` an earlier follower reached to resume without repeats.

        >>> for line in job.logs(follow=True, skip=saved):                 # doctest: +SKIP
        ...     print(line)
        """
        stream = self._async.logs(follow=follow, container=container, skip=skip)
        if follow:
            return FollowedLog(stream)
        return run_sync(stream)

    def startup_problem(self) -> str | None:
        """Why the job's runner has not started, read now; None once it has (or the job
        ended)."""
        return run_sync(self._async.startup_problem())

    def delete(self, wait: bool = True, timeout: float = 120.0) -> bool:
        """Delete the job and what it owns; with ``wait``, return once it is gone."""
        return run_sync(self._async.delete(wait=wait, timeout=timeout))


class FollowedLog(Iterator[str]):
    """The lines of a followed log (see :meth:`DaskJobHandle.logs`), blocking for each."""

    def __init__(self, stream: LogStream) -> None:
        self._stream = stream
        self._lines = iterate_sync(aiter(stream))

    @property
    def position(self) -> int:
        """Lines of the followed stream passed so far, skipped ones included: the ``skip``
        that resumes right after the last line yielded."""
        return self._stream.position

    def __next__(self) -> str:
        return next(self._lines)

    def close(self) -> None:
        """Stop following (closes the log and watch requests)."""
        self._lines.close()


def submit(spec: Any, *, namespace: str | None = None,
           kubeconfig: str | os.PathLike[str] | None = None,
           cluster: str | None = None, profile: str | None = None,
           profile_options: Mapping[str, Any] | None = None) -> DaskJobHandle:
    """Create a DaskJob from a manifest dict, a YAML/JSON file path or YAML text.

    The manifest is checked first (:class:`~dask_kube_jobs.SpecError` names the field).
    ``cluster`` runs it on that existing DaskCluster instead of a cluster of its own;
    ``profile``/``profile_options`` set its ``spec.profile`` (see
    :func:`dask_kube_jobs.asyncio.submit`).

    >>> job = submit("examples/simple-job.yaml", namespace="default")   # doctest: +SKIP
    """
    return DaskJobHandle(run_sync(async_face.submit(
        spec, namespace=namespace, kubeconfig=kubeconfig, cluster=cluster, profile=profile,
        profile_options=profile_options)))


def get_job(name: str, namespace: str | None = None, *,
            kubeconfig: str | os.PathLike[str] | None = None) -> DaskJobHandle:
    """Reattach to an existing DaskJob; raises :class:`~dask_kube_jobs.JobNotFound`.

    >>> get_job("simple-job").wait()                                   # doctest: +SKIP
    """
    return DaskJobHandle(run_sync(async_face.get_job(name, namespace, kubeconfig=kubeconfig)))


def list_jobs(namespace: str | None = None, labels: Mapping[str, str] | str | None = None, *,
              all_namespaces: bool = False,
              kubeconfig: str | os.PathLike[str] | None = None) -> list[DaskJobHandle]:
    """DaskJobs of a namespace (or all), selected by labels (mapping or selector string).

    >>> [j.name for j in list_jobs(labels={"team": "data"})]           # doctest: +SKIP
    """
    handles = run_sync(async_face.list_jobs(namespace, labels, all_namespaces=all_namespaces,
                                       kubeconfig=kubeconfig))
    return [DaskJobHandle(h) for h in handles]
