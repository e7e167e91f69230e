"""The job API: submit a DaskJob, wait for it, read its status, result and log.

This package's top level is the sync face (``from dask_kube_jobs.jobs import submit``, also
reachable as ``from dask_kube_jobs import submit``); ``dask_kube_jobs.asyncio`` is the async
face. Both faces have the same names with the same meanings: network reads are methods
(``status()``, ``result()``, ``refresh()``, ``dashboard_link()``; coroutines on the async
face), and cheap properties say what was last seen (``phase``, ``last_status``, ``raw``).

The parts, from the bottom up (each imports only those above it):

- ``_client``: finding a kubeconfig, one client per event loop, errors by meaning, retries;
- ``_manifest``: reading a DaskJob manifest and checking it before it is sent;
- ``_profile``: reading DaskClusterProfiles, and checking a manifest's profile options against
  one before it is sent (shared with the cluster API, KubeCluster and the CLI);
- ``_status``: :class:`JobStatus`, a job's status as a value, and the dashboard link;
- ``_watch``: :class:`~._watch.JobReader`, one job as last seen, read (GET) or followed
  (list + watch, or GET polling when RBAC forbids watching);
- ``_logs``: the runner's log, read now or followed across every attempt;
- ``_async``: :class:`~dask_kube_jobs.asyncio.AsyncDaskJobHandle` and the module coroutines,
  the one implementation;
- ``_sync``: :class:`DaskJobHandle` and the module functions, which run the async face's
  coroutines on a private event-loop thread.

>>> from dask_kube_jobs.jobs import submit
>>> submit("examples/simple-job.yaml").wait().phase                  # doctest: +SKIP
'Successful'
"""

from __future__ import annotations

from ._status import JobStatus
from ._sync import DaskJobHandle, FollowedLog, get_job, list_jobs, submit

__all__ = ["DaskJobHandle", "FollowedLog", "JobStatus", "get_job", "list_jobs", "submit"]
