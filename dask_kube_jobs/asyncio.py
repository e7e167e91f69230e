"""The async API: ``from dask_kube_jobs.asyncio import submit, get_job, list_jobs``, and the
cluster API's ``create_cluster, get_cluster, list_clusters``, and profile discovery's
``list_profiles, get_profile, profile_options``.

The same functions as ``dask_kube_jobs`` (which wraps these), as coroutines, for code that
already runs an event loop: the operator, Airflow triggers, async services. Reads that need the
API are coroutine methods on the handle (``await job.status()``, ``await job.result()``,
``await job.dashboard_link()``, ``await job.refresh()``) and properties say what was last seen
without a request (``job.phase``, ``job.last_status``), with the names and meanings of the sync
handle's; ``await job.logs()`` is the log's text and ``async for line in job.logs(follow=True)``
follows it, as kr8s's ``kr8s.asyncio`` mirrors ``kr8s``.

For code that kept a job's name, namespace and uid (a trigger, a queue message),
``AsyncDaskJobHandle.from_name(name, namespace, uid=uid)`` makes a handle without a request. A
follower that must start again resumes where it stopped with
``job.logs(follow=True, skip=stream.position)``. Transient API errors (the network, 5xx, 429)
are retried with a bounded back-off; a user who may get but not watch DaskJobs is served by
polling (``job.poll_interval``).

``open_client(kubeconfig, context=..., namespace=..., in_cluster=...)`` is the one way the
library turns a kubeconfig (a path or its content) into a client; ``from_name(..., client=)``
reuses it, and whoever opened it closes it.

>>> from dask_kube_jobs.asyncio import submit
>>> job = await submit("examples/simple-job.yaml")            # doctest: +SKIP
>>> (await job.wait(timeout=600)).phase                       # doctest: +SKIP
'Successful'
>>> later = AsyncDaskJobHandle.from_name(job.name, job.namespace, uid=job.uid)  # doctest: +SKIP
"""

from __future__ import annotations

from .clusters._async import AsyncDaskClusterHandle, create_cluster, get_cluster, list_clusters
from .clusters._manifest import load_cluster_manifest
from .clusters._status import ClusterStatus
from .errors import (
    ClusterExistsError,
    ClusterFailed,
    ClusterNotFoundError,
    ClusterStartupError,
    DaskJobFailed,
    DaskKubeJobsError,
    JobNotFound,
    WaitTimeout,
)
from .jobs._async import AsyncDaskJobHandle, get_job, list_jobs, submit
from .jobs._client import is_transient, open_client
from .jobs._logs import LogStream
from .jobs._manifest import check_job_manifest, load_job_manifest, with_cluster_ref
from .jobs._status import JobStatus, dashboard_link
from .jobs._watch import POLL_INTERVAL
from .kube import default_namespace
from .profile_spec import with_profile
from .profiles._async import get_profile, list_profiles, profile_options

__all__ = [
    "POLL_INTERVAL",
    "AsyncDaskClusterHandle",
    "AsyncDaskJobHandle",
    "ClusterExistsError",
    "ClusterFailed",
    "ClusterNotFoundError",
    "ClusterStartupError",
    "ClusterStatus",
    "DaskJobFailed",
    "DaskKubeJobsError",
    "JobNotFound",
    "JobStatus",
    "LogStream",
    "WaitTimeout",
    "check_job_manifest",
    "create_cluster",
    "dashboard_link",
    "default_namespace",
    "get_cluster",
    "get_job",
    "get_profile",
    "is_transient",
    "list_clusters",
    "list_jobs",
    "list_profiles",
    "load_job_manifest",
    "load_cluster_manifest",
    "open_client",
    "profile_options",
    "submit",
    "with_cluster_ref",
    "with_profile",
]
