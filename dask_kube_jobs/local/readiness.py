"""When the local control plane is ready for a user: a Ready Node and a ready operator too.

An API server that answers ``/readyz`` is not yet a cluster a user can use: ``kubectl get
nodes`` right after ``local up`` said "No resources found", and a DaskJob applied then waited
for an operator still importing kopf. So the control-plane process watches its components and
publishes their state in its endpoint record (``state.json``), which ``local up``, the
``LocalControlPlane`` context manager and ``local status`` read:

* ``kubelet``: ready once a Node it registered has its ``Ready`` condition True;
* ``operator``: ready once its readiness endpoint (``--readiness``) answers 200, i.e. its
  informers have synced;
* a component that has restarted ``CRASH_LOOP_RESTARTS`` times without becoming ready is
  ``failing``, with the path and the last lines of its log, so ``local up`` fails with them
  instead of waiting out its timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .supervisor import Supervisor

log = logging.getLogger("dask_kube_jobs.local")

CRASH_LOOP_RESTARTS = 3
POLL_SECONDS = 0.2
TAIL_LINES = 20

READY, STARTING, FAILING = "ready", "starting", "failing"


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def node_ready(nodes: list[dict[str, Any]]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for n in nodes for c in (n.get("status") or {}).get("conditions") or [])


async def _http_ok(url: str) -> bool:
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session, \
                session.get(url) as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


class Components:
    """The state of each component, published through ``publish`` whenever it changes."""

    def __init__(self, supervisor: Supervisor, publish: Callable[[dict[str, Any]], None], *,
                 nodes: Callable[[], list[dict[str, Any]]] | None,
                 operator_readyz: str | None) -> None:
        self.supervisor = supervisor
        self.publish = publish
        self.nodes = nodes
        self.operator_readyz = operator_readyz
        self.state: dict[str, str] = {"apiserver": READY}
        if nodes is not None:
            self.state["kubelet"] = STARTING
        if operator_readyz is not None:
            self.state["operator"] = STARTING
        self.failure: dict[str, Any] | None = None

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"components": dict(self.state),
                               "components_ready": all(v == READY for v in self.state.values())}
        if self.failure is not None:
            out["failed"] = self.failure
        return out

    async def _check(self, name: str) -> str:
        child = next((c for c in self.supervisor.children if c.name == name), None)
        if name == "kubelet" and self.nodes is not None and node_ready(self.nodes()):
            return READY
        if name == "operator" and self.operator_readyz and await _http_ok(self.operator_readyz):
            return READY
        if child is not None and child.restarts >= CRASH_LOOP_RESTARTS:
            return FAILING
        return STARTING

    async def watch(self) -> None:
        """Follow the components for the life of the process (a ready one may fail later)."""
        while True:
            changed = False
            for name in [n for n in self.state if n != "apiserver"]:
                with contextlib.suppress(Exception):  # a probe's error is "not ready", not a crash
                    now = await self._check(name)
                    if now != self.state[name]:
                        log.info("%s is %s", name, now)
                        self.state[name] = now
                        changed = True
                        if now == FAILING and self.failure is None:
                            path = self.supervisor.logs / f"{name}.log"
                            child = next(c for c in self.supervisor.children if c.name == name)
                            self.failure = {"component": name, "restarts": child.restarts,
                                            "log": str(path), "tail": log_tail(path)}
                        elif now == READY and self.failure and self.failure["component"] == name:
                            self.failure = None
            if changed:
                self.publish(self.record())
            await asyncio.sleep(POLL_SECONDS)


def describe_failure(failure: dict[str, Any]) -> str:
    return (f"the {failure['component']} keeps crashing ({failure['restarts']} restarts); the "
            f"last lines of its log, {failure['log']}:\n{failure['tail']}")
