"""The async API: ``from dask_kube_jobs.asyncio import submit, get_job, list_jobs``.

The same functions as ``dask_kube_jobs`` (which wraps these), as coroutines, for code that
already runs an event loop: the operator, Airflow triggers, async services. Reads that need the
API are coroutine methods on the handle (``await job.status()``, ``await job.result()``,
``await job.dashboard_link()``); ``await job.logs()`` is the log's text and
``async for line in job.logs(follow=True)`` follows it, as kr8s's ``kr8s.asyncio`` mirrors
``kr8s``.

>>> from dask_kube_jobs.asyncio import submit
>>> job = await submit("examples/simple-job.yaml")            # doctest: +SKIP
>>> (await job.wait(timeout=600)).phase                       # doctest: +SKIP
'Successful'
"""

from __future__ import annotations

from ._jobs import AsyncDaskJobHandle, LogStream, get_job, list_jobs, submit
from ._jobs_manifest import JobStatus
from .errors import (
    DaskJobFailed,
    DaskKubeJobsError,
    JobNotFound,
    WaitTimeout,
)

__all__ = [
    "AsyncDaskJobHandle",
    "DaskJobFailed",
    "DaskKubeJobsError",
    "JobNotFound",
    "JobStatus",
    "LogStream",
    "WaitTimeout",
    "get_job",
    "list_jobs",
    "submit",
]
