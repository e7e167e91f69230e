"""dask-kube-jobs: run Dask batch work on Kubernetes, from kubectl, Python and Airflow.

The spec builders, ``set_result`` and the exceptions are imported eagerly: they are pure and
cheap, and a runner Pod that only calls ``set_result`` should not pay for an HTTP client. The
kr8s resource classes (sync variants; the async ones live in ``dask_kube_jobs.resources`` as
``AsyncDaskJob``...) and the submit-and-wait API (``submit``, ``get_job``, ``list_jobs``; async
variants in ``dask_kube_jobs.asyncio``) and profile discovery (``list_profiles``, ``get_profile``,
``profile_options``) are loaded on first use.

>>> from dask_kube_jobs import make_job_spec, submit
>>> submit(make_job_spec("pi", script="print(3.14)")).wait().phase    # doctest: +SKIP
'Successful'
"""

from __future__ import annotations

from typing import Any

from .errors import (
    APIRequestError,
    ClusterFailed,
    CRDsNotInstalled,
    DaskJobFailed,
    DaskKubeJobsError,
    JobAlreadyExists,
    JobNotFound,
    KubeconfigError,
    NamespaceNotFound,
    ProfileNotFound,
    ProfileOptionError,
    WaitTimeout,
)
from .profile_spec import ClusterProfile, ProfileOption
from .result import ResultError, set_result
from .spec import (
    SpecError,
    make_cluster_spec,
    make_job_spec,
    make_scheduler_spec,
    make_worker_spec,
)

__version__ = "0.1.0"

__all__ = [
    "APIRequestError",
    "ClusterExistsError",
    "ClusterFailed",
    "ClusterNotFoundError",
    "ClusterStartupError",
    "ClusterProfile",
    "CreateMode",
    "KubeCluster",
    "KubeClusterError",
    "CRDsNotInstalled",
    "DaskAutoscaler",
    "DaskCluster",
    "DaskJob",
    "DaskJobFailed",
    "DaskJobHandle",
    "DaskKubeJobsError",
    "DaskWorkerGroup",
    "JobAlreadyExists",
    "JobNotFound",
    "JobStatus",
    "KubeconfigError",
    "NamespaceNotFound",
    "ProfileNotFound",
    "ProfileOption",
    "ProfileOptionError",
    "ResultError",
    "SpecError",
    "WaitTimeout",
    "__version__",
    "get_job",
    "get_profile",
    "list_jobs",
    "list_profiles",
    "make_cluster_spec",
    "make_job_spec",
    "make_scheduler_spec",
    "make_worker_spec",
    "profile_options",
    "set_result",
    "submit",
]

_LAZY = {"DaskAutoscaler", "DaskCluster", "DaskJob", "DaskWorkerGroup"}
_LAZY_JOBS = {"DaskJobHandle", "JobStatus", "get_job", "list_jobs", "submit"}
_LAZY_PROFILES = {"get_profile", "list_profiles", "profile_options"}
#: KubeCluster pulls in distributed's deploy machinery: loaded only when asked for.
_LAZY_CLUSTER = {"KubeCluster", "CreateMode", "KubeClusterError", "ClusterExistsError",
                 "ClusterNotFoundError", "ClusterStartupError"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import resources

        return getattr(resources, name)
    if name in _LAZY_JOBS:
        from . import jobs

        return getattr(jobs, name)
    if name in _LAZY_PROFILES:
        from . import profiles

        return getattr(profiles, name)
    if name in _LAZY_CLUSTER:
        from . import _kubecluster

        return getattr(_kubecluster, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
