"""What a Pod's status says, as the controllers of Kubernetes read it."""

from __future__ import annotations

from .conditions import condition
from .objects import Obj


def pod_ready(pod: Obj | None) -> bool:
    """The Pod's Ready condition is True (its containers pass their readiness probes); False
    for no Pod at all."""
    c = condition(pod or {}, "Ready")
    return bool(c and c.get("status") == "True")


def pod_active(pod: Obj) -> bool:
    """Not terminated and not being deleted (what ReplicaSets, Endpoints and the operator's
    worker counts count)."""
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") \
        and not pod["metadata"].get("deletionTimestamp")
