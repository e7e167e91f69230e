"""A plain-text progress display for a starting KubeCluster, and Pod state descriptions.

Starting a cluster takes from seconds (local) to minutes (image pulls, node scale-up), and a
silent notebook cell for that long looks hung. Upstream draws a ``rich`` live panel; this writes
one short line to stderr each time what it observes changes (no terminal control codes, so it
reads the same in a notebook, a CI log and an Airflow task log, and adds no dependency)::

    KubeCluster demo: DaskCluster Pending | scheduler ContainerCreating | workers 0/2 ready [3s]
    KubeCluster demo: DaskCluster Running | scheduler ready | workers 2/2 ready [9s]

``quiet=True`` turns it off. :func:`describe_pod` is also what start-up errors quote, so the
error says *why* the scheduler is not ready (Unschedulable: Insufficient nvidia.com/gpu,
CrashLoopBackOff, ImagePullBackOff...).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..contract.pods import pod_ready

__all__ = ["Progress", "describe_pod"]


def describe_pod(pod: dict[str, Any] | None) -> str:
    """One phrase for a Pod's state: ``ready``, ``Pending (Unschedulable: ...)``, ``CrashLoopBackOff``...

    >>> describe_pod({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
    ...     "status": "False", "reason": "Unschedulable", "message": "no GPU"}]}})
    'Pending (Unschedulable: no GPU)'
    """
    if pod is None:
        return "not created yet"
    status = pod.get("status") or {}
    if pod_ready(pod):
        return "ready"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state:
            reason = state["waiting"].get("reason") or "Waiting"
            message = state["waiting"].get("message")
            return f"{reason} ({message})" if message and reason != "ContainerCreating" \
                else reason
        if "terminated" in state:
            term = state["terminated"]
            return f"terminated ({term.get('reason') or 'Error'}, exit code {term.get('exitCode')})"
    phase = status.get("phase") or "Pending"
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False" and cond.get("reason") and cond.get("type") != "Ready":
            return f"{phase} ({cond['reason']}: {cond.get('message', '')})".replace(": )", ")")
    if phase == "Running":
        return "Running (not ready yet)"
    return phase


class Progress:
    """Prints a status line whenever the observed start-up state changes."""

    def __init__(self, name: str, *, quiet: bool, stream: TextIO | None = None) -> None:
        self.name = name
        self.quiet = quiet
        self.stream = stream
        self.started = time.monotonic()
        self._last = ""

    def note(self, message: str) -> None:
        """A one-off step (``creating DaskCluster``, ``port-forwarding to ...``)."""
        self._write(message)

    def update(self, *, cluster: dict[str, Any] | None, scheduler: dict[str, Any] | None,
               service: bool) -> None:
        status = (cluster or {}).get("status") or {}
        parts = [f"DaskCluster {status.get('phase') or 'waiting for the operator'}",
                 f"scheduler {describe_pod(scheduler)}",
                 "Service created" if service else "Service not created yet"]
        if "readyWorkers" in status or "workers" in status:
            wanted = (((cluster or {}).get("spec") or {}).get("worker") or {}).get("replicas")
            parts.append(f"workers {status.get('readyWorkers', 0)}/"
                         f"{wanted if wanted is not None else status.get('workers', 0)} ready")
        line = " | ".join(parts)
        if line != self._last:
            self._last = line
            self._write(line)

    def _write(self, text: str) -> None:
        if self.quiet:
            return
        stream = self.stream or sys.stderr
        elapsed = time.monotonic() - self.started
        print(f"KubeCluster {self.name}: {text} [{elapsed:.0f}s]", file=stream, flush=True)
