"""dask-kube-jobs: run Dask batch work on Kubernetes, from kubectl, Python and Airflow.

The spec builders and ``set_result`` are imported eagerly: they are pure and cheap, and a runner
Pod that only calls ``set_result`` should not pay for an HTTP client. The kr8s resource classes
(sync variants; the async ones live in ``dask_kube_jobs.resources`` as ``AsyncDaskJob``...) are
loaded on first use.
"""

from __future__ import annotations

from typing import Any

from .result import ResultError, set_result
from .spec import (
    SpecError,
    make_cluster_spec,
    make_job_spec,
    make_scheduler_spec,
    make_worker_spec,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "DaskAutoscaler",
    "DaskCluster",
    "DaskJob",
    "DaskWorkerGroup",
    "ResultError",
    "SpecError",
    "__version__",
    "make_cluster_spec",
    "make_job_spec",
    "make_scheduler_spec",
    "make_worker_spec",
    "set_result",
]

_LAZY = {"DaskAutoscaler", "DaskCluster", "DaskJob", "DaskWorkerGroup"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from . import resources

        return getattr(resources, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
