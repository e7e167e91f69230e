"""What a DaskCluster reports: its status as a value (pure).

The operator writes a cluster's ``status``: its phase, the scheduler's and dashboard's
addresses, how many workers are ready, and conditions (``SchedulerReady``, ``WorkersReady``,
``Failed``) that carry the kubelet's or the API server's own words when something does not
start. Everyone who waits for a cluster (the cluster API, KubeCluster, the Airflow provider)
reads it through :class:`ClusterStatus`, so they agree on what "ready" means and say the same
thing when it is not, without re-deriving it from Pods.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract import cluster_status

__all__ = ["FAILED", "RUNNING", "ClusterStatus"]

#: The phases of a DaskCluster that mean something to a reader (contract.cluster_status, in
#: upstream's words): ``Running`` once the scheduler Pod and Service exist, ``Failed`` when the
#: cluster cannot be made. Readiness is the ``SchedulerReady`` condition, not a phase.
RUNNING = cluster_status.PHASE_RUNNING
FAILED = cluster_status.PHASE_FAILED


@dataclass(frozen=True)
class ClusterStatus:
    """A DaskCluster's ``status``, read once: a value, not a live view.

    ``phase`` is None before the operator has seen the cluster; ``raw`` is the status mapping
    as the API returned it.
    """

    phase: str | None = None
    scheduler_address: str | None = None
    dashboard_address: str | None = None
    ready_workers: int = 0
    conditions: tuple[Mapping[str, Any], ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_cluster(cls, cluster: Mapping[str, Any] | None) -> ClusterStatus:
        s = dict((cluster or {}).get("status") or {})
        return cls(phase=s.get("phase") or None, scheduler_address=s.get("schedulerAddress"),
                   dashboard_address=s.get("dashboardAddress"),
                   ready_workers=int(s.get("readyWorkers") or 0),
                   conditions=tuple(s.get("conditions") or ()), raw=s)

    @property
    def failed(self) -> bool:
        """The operator gave up on the cluster (a child refused for good): final."""
        return self.phase == FAILED

    @property
    def running(self) -> bool:
        """The scheduler is ready (workers may still be starting): phase ``Running`` and the
        ``SchedulerReady`` condition True (:func:`contract.cluster_status.scheduler_ready`)."""
        return cluster_status.scheduler_ready(self.raw)

    def ready(self, workers: int = 0) -> bool:
        """The scheduler is ready and at least ``workers`` workers are."""
        return self.running and self.ready_workers >= workers

    def problem(self) -> str | None:
        """Why the cluster is not (yet) ready, in the words the operator wrote to its
        conditions (the kubelet's or the API server's), or None if no condition says so.

        A condition says something is wrong when it is a ``...Ready`` condition that is False
        (``SchedulerReady``, ``WorkersReady``) or any other that is True (``Failed``,
        ``InvalidName``); the latter come first.

        >>> ClusterStatus.from_cluster({"status": {"phase": "Pending", "conditions": [
        ...     {"type": "SchedulerReady", "status": "False", "reason": "ErrImagePull",
        ...      "message": "image nope:1 not found"}]}}).problem()
        'image nope:1 not found'
        """
        wrong = [c for c in self.conditions
                 if c.get("status") == ("False" if str(c.get("type", "")).endswith("Ready")
                                        else "True")]
        wrong.sort(key=lambda c: str(c.get("type", "")).endswith("Ready"))
        said = [str(c.get("message") or c.get("reason")) for c in wrong
                if c.get("message") or c.get("reason")]
        return "; ".join(dict.fromkeys(said)) or None

    def describe(self, workers: int = 0) -> str:
        """One line: the phase, the ready workers against ``workers``, and :meth:`problem`."""
        phase = self.phase or "not reconciled yet"
        if self.phase == RUNNING and not self.running:
            phase += " (scheduler not ready yet)"  # upstream's Running: made, not yet ready
        line = f"{phase} with {self.ready_workers}/{workers} ready worker(s)"
        problem = self.problem()
        return f"{line}; {problem}" if problem else line
