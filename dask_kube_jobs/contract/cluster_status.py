"""What a DaskCluster's ``status`` says, and what a client may conclude from it.

``status.phase`` speaks upstream's vocabulary (the Dask Kubernetes Operator), because
upstream's own client reads it: its ``KubeCluster`` waits for ``Running`` as the sign that the
operator has *actioned* the cluster (made the scheduler and its Service), and only then watches
the scheduler Pod itself, raising ``SchedulerStartupError`` with the Pod's logs when it
crash-loops. A phase that waited for a ready scheduler would hide that crash behind a "not
actioned, is the operator running?" timeout. So readiness is not a phase here: it is the
``SchedulerReady`` condition (``kubectl wait --for=condition=SchedulerReady``), and
:func:`scheduler_ready` is the one test of it for this package's clients.
"""

from __future__ import annotations

from typing import Any

#: Admitted by the operator; its children are about to be made.
PHASE_CREATED = "Created"
#: Waiting: refused for now by the operator's limits, or the scheduler Pod is being (re)made.
PHASE_PENDING = "Pending"
#: Actioned: the scheduler Pod and its Service exist (the scheduler may still be starting).
PHASE_RUNNING = "Running"
#: Final: the cluster cannot be made (an invalid name); upstream says ``Error`` here.
PHASE_FAILED = "Failed"

#: True once the scheduler Pod is ready (its readiness probe passes).
CONDITION_SCHEDULER_READY = "SchedulerReady"


def scheduler_ready(status: dict[str, Any] | None) -> bool:
    """Whether a DaskCluster's ``status`` reports a ready scheduler (clients connect then)."""
    status = status or {}
    return status.get("phase") == PHASE_RUNNING and any(
        c.get("type") == CONDITION_SCHEDULER_READY and c.get("status") == "True"
        for c in status.get("conditions") or [])
