"""What a DaskJob reports: its status as a value, and the link to its Dask dashboard.

Pure: the handles, the CLI and the Airflow provider read a job's ``status`` through
:class:`JobStatus`, so they agree on what a phase means and when a job is done.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract.names import DASHBOARD_PORT, scheduler_name
from ..spec import SpecError

__all__ = ["DASHBOARD_TEMPLATE_ENV", "PHASES", "TERMINAL_PHASES", "JobStatus", "dashboard_link"]

PHASES = ("JobCreated", "ClusterCreated", "Running", "Successful", "Failed")
TERMINAL_PHASES = ("Successful", "Failed")

#: Environment variable holding a format string for dashboard links, for clusters whose
#: dashboards are reached through an ingress or proxy rather than the in-cluster Service.
#: Fields: ``{namespace}``, ``{cluster}`` (the DaskCluster's name), ``{job}``, ``{scheduler}``
#: (the scheduler Service's name) and ``{port}`` (8787). Example:
#: ``https://dask.example.com/{namespace}/{cluster}/status``.
DASHBOARD_TEMPLATE_ENV = "DASK_KUBE_JOBS_DASHBOARD_TEMPLATE"


@dataclass(frozen=True)
class JobStatus:
    """A DaskJob's ``status``, read once: a value, not a live view.

    ``phase`` is one of :data:`PHASES` (None before the operator has seen the job); ``result``
    is the decoded value the runner passed to ``dask_kube_jobs.set_result``; ``raw`` is the
    status mapping as the API returned it.
    """

    phase: str | None = None
    cluster_name: str | None = None
    runner_pod: str | None = None
    attempts: int = 0
    failed: int = 0
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    result: Any = None
    log_tail: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> JobStatus:
        s = dict(job.get("status") or {})
        return cls(phase=s.get("jobStatus") or None, cluster_name=s.get("clusterName"),
                   runner_pod=s.get("jobRunnerPodName"), attempts=int(s.get("attempts") or 0),
                   failed=int(s.get("failed") or 0), exit_code=s.get("exitCode"),
                   reason=s.get("reason"), message=s.get("message"), result=s.get("result"),
                   log_tail=s.get("logTail"), start_time=s.get("startTime"),
                   end_time=s.get("endTime"), raw=s)

    @property
    def done(self) -> bool:
        """True once the job is Successful or Failed (the phase never changes afterwards)."""
        return self.phase in TERMINAL_PHASES


def dashboard_link(*, job: str, namespace: str, cluster: str | None,
                   address: str | None, template: str | None = None) -> str | None:
    """The Dask dashboard URL: from ``template`` (else :data:`DASHBOARD_TEMPLATE_ENV`) when
    set, else ``address`` (the DaskCluster's ``status.dashboardAddress``) plus ``/status``;
    None if neither is known.

    >>> dashboard_link(job="j", namespace="ns", cluster="j", address="http://j-scheduler:8787")
    'http://j-scheduler:8787/status'
    """
    template = template or os.environ.get(DASHBOARD_TEMPLATE_ENV)
    cluster = cluster or job
    if template:
        try:
            return template.format(namespace=namespace, cluster=cluster, job=job,
                                   scheduler=scheduler_name(cluster), port=DASHBOARD_PORT)
        except (KeyError, IndexError, ValueError) as exc:
            raise SpecError(DASHBOARD_TEMPLATE_ENV, f"bad template {template!r}: {exc!r}; "
                            "fields: {namespace} {cluster} {job} {scheduler} {port}") from exc
    if not address:
        return None
    return address.rstrip("/") + "/status"
