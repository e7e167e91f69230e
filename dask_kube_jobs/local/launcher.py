"""Starting, finding and stopping a local control plane from Python, the CLI and tests.

The control plane always runs as a separate process group (``daemon.py``), never inside the
caller's event loop: tests and notebooks then talk to it exactly as to a remote cluster, and
``down`` can guarantee that no process is left behind by killing the whole group.

Example::

    from dask_kube_jobs.local import LocalControlPlane

    with LocalControlPlane() as cp:
        subprocess.run(["kubectl", "--kubeconfig", cp.kubeconfig, "get", "ns"], check=True)
"""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from . import kubeconfig as kc
from ._processes import pid_alive
from .readiness import describe_failure
from .state import StateDir, state_dir_for


class ControlPlaneError(RuntimeError):
    """The local control plane could not be started, found or stopped."""


def _probe(server: str, ca: Path | None, timeout: float = 1.0) -> bool:
    ctx = None
    if server.startswith("https"):
        ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    try:
        with urllib.request.urlopen(f"{server}/readyz", timeout=timeout, context=ctx) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class LocalControlPlane:
    """A local Kubernetes-compatible control plane for the lifetime of a ``with`` block.

    ``kubelet`` and ``operator`` choose whether the process kubelet and the Dask operator are
    started with it (each only if installed). ``port=0`` picks a free port.
    """

    def __init__(self, kubeconfig: str | os.PathLike[str] | None = None, *, port: int = 0,
                 kubelet: bool = True, operator: bool = True, controllers: bool = True,
                 state_dir: str | os.PathLike[str] | None = None, startup_timeout: float = 60.0,
                 extra_args: list[str] | None = None) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if kubeconfig is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dkj-local-")
            kubeconfig = Path(self._tmp.name) / "kubeconfig.yaml"
            state_dir = state_dir or Path(self._tmp.name) / "state"
        self.kubeconfig = str(Path(kubeconfig).expanduser().resolve())
        self.state = StateDir(Path(state_dir) if state_dir else state_dir_for(Path(self.kubeconfig)))
        self.port = port
        self.kubelet = kubelet
        self.operator = operator
        self.controllers = controllers
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None
        #: the running control plane's endpoint record (``daemon.py``), once ``start`` returned
        self.endpoint: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "dask_kube_jobs.local.daemon", "--state-dir",
               str(self.state.root), "--kubeconfig", self.kubeconfig, "--port", str(self.port)]
        if not self.kubelet:
            cmd.append("--no-kubelet")
        if not self.operator:
            cmd.append("--no-operator")
        if not self.controllers:
            cmd.append("--no-controllers")
        return cmd + self.extra_args

    def start(self) -> LocalControlPlane:
        record = self.state.read_endpoint()
        if record and pid_alive(int(record["pid"])):
            raise ControlPlaneError(
                f"a local control plane already runs for {self.kubeconfig} (pid {record['pid']}); "
                "stop it with `dask-kube-jobs local down` or pass another --kubeconfig")
        self.state.prepare()
        self.state.clear_endpoint()
        log = open(self.state.logs / "control-plane.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log_path = self.state.logs / "control-plane.log"
                last = _last_line(log_path)
                raise ControlPlaneError(
                    f"the control plane exited with code {self.process.returncode}"
                    + (f" ({last})" if last else "") + f"; see {log_path}")
            record = self.state.read_endpoint()
            if record and record.get("pid") == self.process.pid:
                if record.get("failed"):
                    self.stop()
                    raise ControlPlaneError(describe_failure(record["failed"]))
                # Ready for a user: the API server answers, a Node is Ready and the operator
                # has synced (readiness.py), not merely the first of these.
                if record.get("components_ready") and _probe(record["server"], self.state.ca_cert):
                    self.endpoint = record
                    return self
            time.sleep(0.05)
        waiting = [name for name, st in ((record or {}).get("components") or {}).items()
                   if st != "ready"]
        self.stop()
        raise ControlPlaneError(
            f"the control plane did not become ready within {self.startup_timeout:.0f}s"
            + (f" (still waiting for: {', '.join(waiting)})" if waiting else "")
            + f"; see the logs in {self.state.logs}")

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.process.pid if self.process else None
        if pid is None:
            record = self.state.read_endpoint()
            pid = int(record["pid"]) if record else None
        if pid is not None:
            stop_process_group(pid, timeout)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process = None
        self.state.clear_endpoint()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    @property
    def server(self) -> str:
        return kc.server_of(kc.read(Path(self.kubeconfig)))

    @property
    def logs(self) -> Path:
        return self.state.logs

    def mint_kubeconfig(self, path: str | os.PathLike[str], *, user: str | None = None,
                        groups: tuple[str, ...] = (), service_account: str | None = None,
                        namespace: str = "default", mode: int = 0o600) -> str:
        """Write a kubeconfig for another identity (a user with groups, or ``ns/name`` SA),
        with file mode ``mode`` (0o644 for a container running as another uid)."""
        from .identities import write_identity_kubeconfig

        return str(write_identity_kubeconfig(self.state, self.state.admin_kubeconfig, Path(path),
                                             user=user, groups=groups,
                                             service_account=service_account,
                                             namespace=namespace, mode=mode))

    def __enter__(self) -> LocalControlPlane:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> LocalControlPlane:
        import asyncio

        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: Any) -> None:
        import asyncio

        await asyncio.to_thread(self.stop)


def stop_process_group(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM the group led by ``pid``, SIGKILL what is left after ``timeout``. True if it ran."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid) or _zombie(pid):
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def _last_line(path: Path) -> str:
    """The last line a process wrote to its log: for a crash at start, the error itself."""
    try:
        with path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return False


def status(kubeconfig: Path) -> dict[str, Any] | None:
    """The endpoint record of the control plane started for ``kubeconfig``, if it runs."""
    state = StateDir(state_dir_for(kubeconfig))
    record = state.read_endpoint()
    if not record or not pid_alive(int(record["pid"])):
        return None
    record["ready"] = bool(record.get("components_ready")) and _probe(record["server"], state.ca_cert)
    record["state_dir"] = str(state.root)
    return record
