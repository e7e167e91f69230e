"""What a Pod's status says, as the controllers of Kubernetes read it, and why a Pod cannot
start, in the kubelet's and the scheduler's own words (read by the operator, which decides on
it, and by the Airflow provider, which reports it)."""

from __future__ import annotations

from dataclasses import dataclass

from .conditions import condition
from .objects import Obj

IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class Problem:
    reason: str
    message: str
    #: The container has restarted: its useful log is the previous instance's.
    previous_log: bool = False


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


def start_problem(pod: Obj) -> Problem | None:
    """Why a Pending Pod cannot start (unschedulable, image or config errors), or None."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return Problem(cond.get("reason") or "Unschedulable",
                           cond.get("message") or "the Pod cannot be scheduled")
    for cs in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in IMAGE_ERRORS | CONFIG_ERRORS:
            return Problem(waiting["reason"], waiting.get("message") or waiting["reason"])
    return None
