"""Keeps the control plane's child components (kubelet, operator) running.

On a real cluster the kubelet is restarted by systemd and the operator by its Deployment; here
the control-plane process plays that part, so killing either (as the restart-safety tests do)
is followed by a fresh start after a short back-off, exactly the situation production sees.
Each child runs in its own process group, so stopping one stops everything it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("dask_kube_jobs.local")

#: Longest pause before restarting a crashing component (env DKJ_SUPERVISOR_MAX_BACKOFF).
MAX_BACKOFF = float(os.environ.get("DKJ_SUPERVISOR_MAX_BACKOFF", "30"))
HEALTHY_AFTER = 60.0


@dataclass
class Child:
    name: str
    module: str
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff: float = 1.0


@dataclass
class Supervisor:
    logs: Path
    on_change: Callable[[dict[str, int]], None] = lambda pids: None
    children: list[Child] = field(default_factory=list)
    _stopping: bool = False

    def add(self, name: str, module: str, args: list[str]) -> bool:
        if importlib.util.find_spec(module) is None:
            log.info("%s is not part of this installation; not starting it", name)
            return False
        child = Child(name, module, args)
        self._spawn(child)
        self.children.append(child)
        return True

    def pids(self) -> dict[str, int]:
        return {c.name: c.proc.pid for c in self.children if c.proc is not None}

    def _spawn(self, child: Child) -> None:
        with open(self.logs / f"{child.name}.log", "ab") as logfile:
            child.proc = subprocess.Popen(
                [sys.executable, "-m", child.module, *child.args], stdout=logfile,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        child.started = time.monotonic()
        log.info("started %s (pid %d)", child.name, child.proc.pid)
        self.on_change(self.pids())

    async def watch(self) -> None:
        """Restart children that exit, with a back-off that resets once they stay up."""
        while not self._stopping:
            await asyncio.sleep(0.5)
            for child in self.children:
                proc = child.proc
                if proc is None or proc.poll() is None or self._stopping:
                    continue
                _kill_group(proc.pid, signal.SIGKILL)  # whatever it left behind
                uptime = time.monotonic() - child.started
                child.backoff = 1.0 if uptime > HEALTHY_AFTER else min(MAX_BACKOFF, child.backoff * 2)
                log.warning("%s exited with code %s after %.0fs; restarting in %.0fs",
                            child.name, proc.returncode, uptime, child.backoff)
                child.proc = None
                await asyncio.sleep(child.backoff)
                if not self._stopping:
                    child.restarts += 1
                    self._spawn(child)

    def stop(self, grace: float = 10.0) -> None:
        self._stopping = True
        procs = [c.proc for c in self.children if c.proc is not None]
        for proc in procs:
            _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            _kill_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=2)


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
