"""What the kubelet reports about a Pod, as pure logic: its phase, its conditions, and the
record of each container across restarts that becomes a ``containerStatus``.

Kept free of processes and I/O so the rules (the kubelet's ``getPhase``, condition transition
times) can be unit-tested on plain dicts; ``pod.py`` feeds them what it observes.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ...contract.times import fmt_time
from .container import ContainerProcess, ExitInfo


def pod_phase(restart_policy: str, init_done: bool, init_failed: bool,
              statuses: list[dict[str, Any]]) -> str:
    """The kubelet's getPhase over app container statuses."""
    if init_failed:
        return "Failed"
    if not init_done:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for st in statuses:
        state = st.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif (st.get("lastState") or {}).get("terminated"):
            stopped += 1
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped and restart_policy == "Always":
        return "Running"
    if stopped and stopped == succeeded:
        return "Succeeded"
    if restart_policy == "Never":
        return "Failed"
    return "Running"


def condition(kind: str, ok: bool, old: list[dict[str, Any]], reason: str | None = None,
              message: str | None = None) -> dict[str, Any]:
    status = "True" if ok else "False"
    prev = next((c for c in old if c.get("type") == kind), None)
    since = prev["lastTransitionTime"] if prev and prev.get("status") == status and \
        prev.get("lastTransitionTime") else fmt_time()
    out: dict[str, Any] = {"type": kind, "status": status, "lastProbeTime": None,
                           "lastTransitionTime": since}
    if reason:
        out["reason"] = reason
    if message:
        out["message"] = message
    return out



@dataclass
class Container:
    """What the kubelet knows about one container of a Pod across its restarts."""

    spec: dict[str, Any]
    init: bool
    restart_count: int = 0
    proc: ContainerProcess | None = None
    state: dict[str, Any] = field(default_factory=dict)
    last_state: dict[str, Any] = field(default_factory=dict)
    container_id: str = ""
    exit: ExitInfo | None = None
    exited_at: float = 0.0
    done: bool = False
    backoff: float | None = None
    backoff_updated: float = 0.0
    retry_at: float = 0.0
    started: bool = False
    ready: bool = False
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    waiter: asyncio.Task[None] | None = None
    #: the record of a container a previous kubelet left running, to adopt
    adoptable: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def field_path(self) -> str:
        return f"spec.{'initContainers' if self.init else 'containers'}{{{self.name}}}"

    def status(self) -> dict[str, Any]:
        image = str(self.spec.get("image", ""))
        out: dict[str, Any] = {
            "name": self.name, "state": self.state, "lastState": self.last_state,
            "ready": self.ready, "restartCount": self.restart_count, "image": image,
            "imageID": "", "started": self.started}
        if self.container_id:
            out["containerID"] = self.container_id
            out["imageID"] = f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        return out

    def cancel_tasks(self) -> None:
        for t in self.tasks:
            t.cancel()
        self.tasks = []


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration (``10s``, ``1m20s``, ``5m0s``, ``500ms``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    minutes, secs = divmod(round(seconds, 3), 60)
    text = f"{secs:g}s"
    return f"{int(minutes)}m{text}" if minutes else text
