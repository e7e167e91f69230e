"""One DaskJob as this process sees it, and how that view is kept current.

A :class:`JobReader` knows which job it stands for (name, namespace, uid), how the job looked
when last read, and how to read it again: one GET (:meth:`JobReader.refresh`), or every change
until the job ends (:meth:`JobReader.states`). The handles wait on it and the log follower is
woken by it, so it is its own module, below both: neither needs the other to reach the job.

Requests go through :class:`dask_kube_jobs.kube.Client` rather than kr8s objects, for two
reasons kube.py explains: kr8s answers any 401/403 by reloading credentials and breaking every
request in flight, and kr8s's ``watch`` never recovers from ``410 Gone``. Waiting must survive
hours, so :meth:`JobReader.states` lists, watches from the list's resourceVersion, resumes after
the server ends a watch, and re-lists after an error or a 410, like client-go's reflector. A
job deleted meanwhile -- or replaced by a new one of the same name, told apart by its uid --
ends the wait with :class:`JobNotFound` instead of a hang. Where RBAC lets a user get DaskJobs
but not list/watch them (a 403), the reader polls with GET instead and says so once; only a
user who may not even get the job sees the 403 raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any

from .. import kube
from ..contract.api_resources import DASKJOBS
from ..errors import APIRequestError, DaskKubeJobsError, JobNotFound
from ._client import NETWORK_ERRORS, connect, retrying, translate
from ._status import JobStatus

__all__ = ["POLL_INTERVAL", "JobReader"]

Obj = dict[str, Any]
POLL_INTERVAL = 10.0  # seconds between GETs of a job when RBAC forbids watching it
log = logging.getLogger("dask_kube_jobs.jobs")


class JobReader:
    """One DaskJob (one uid): its identity, the object as last seen, and the reads that renew it.

    ``watch_timeout`` is the server-side timeout in seconds of each watch request (default
    240-300 s, randomised so many waiters do not reconnect together); when the server ends a
    watch, it is resumed from the last resourceVersion seen, so nothing is missed.
    ``watch_connections`` counts the watch requests made, for diagnostics.

    ``poll_interval`` (seconds, default 10) is how often the job is read with GET instead when
    RBAC forbids listing/watching DaskJobs but allows getting them (a 403 on the watch): the
    fallback is said once, to ``notice``: a callable taking the message, by default WARNING on
    the ``dask_kube_jobs.jobs`` logger.

    Made without a uid, the reader takes the uid of the job it first sees; a job re-created
    under the same name afterwards is :class:`JobNotFound` ("deleted and re-created") rather
    than silently another job.
    """

    def __init__(self, client: kube.Client | None, job: Obj, *,
                 kubeconfig: str | os.PathLike[str] | None = None) -> None:
        self._client = client
        self._kubeconfig = kubeconfig
        self.last_seen = job
        meta = job["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]
        self.uid: str | None = meta.get("uid")
        self.watch_timeout: int = random.randint(240, 300)
        self.watch_connections = 0
        self.poll_interval: float = POLL_INTERVAL
        self.notice: Callable[[str], None] = log.warning
        self._poll_noted = False

    async def api(self) -> kube.Client:
        """The client, connected on first use when the reader was made without one."""
        if self._client is None:
            self._client = await connect(self._kubeconfig)
        return self._client

    def _note(self, job: Obj) -> Obj:
        uid = job["metadata"].get("uid")
        if self.uid and uid and uid != self.uid:
            raise JobNotFound(self.name, self.namespace, "it was deleted and re-created")
        self.uid = self.uid or uid
        self.last_seen = job
        return job

    async def refresh(self) -> Obj:
        """Read the DaskJob again; raises :class:`JobNotFound` if it is gone."""
        with translate(self.name, self.namespace):
            job = await (await self.api()).get(DASKJOBS, self.namespace, self.name)
        if job is None:
            raise JobNotFound(self.name, self.namespace)
        return self._note(job)

    async def _list_self(self) -> tuple[list[Obj], str]:
        client = await self.api()
        with translate(self.name, self.namespace):
            return await client.list(DASKJOBS, self.namespace,
                                     field_selector=f"metadata.name={self.name}")

    @contextlib.asynccontextmanager
    async def _watch_self(self, rv: str) -> AsyncIterator[AsyncIterator[str]]:
        client = await self.api()
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

    async def states(self) -> AsyncIterator[Obj]:
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
