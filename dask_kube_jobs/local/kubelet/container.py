"""One container as a process tree of the current Python environment: start, log, wait, stop.

Each container is one process tree started through a short ``sh`` prologue (see
``volumes.launch_script``): it joins the container's memory cgroup, sets up its mounts in a
private mount namespace, changes to ``workingDir`` and ``exec``-s the program, so the container's
pid is the program's pid. ``setpriv --pdeathsig KILL`` ties the program to the kubelet: if the
kubelet is SIGKILLed its containers die with it, and the restarted kubelet kills whatever they
left behind (recorded in ``procs.json`` and found through the cgroup and the session id).

Every container is a session leader (``start_new_session``), so a signal can reach the whole
tree; stragglers that left the session are still in the cgroup. Output goes through one reader
task per stream into CRI-format log files that the log server reads. What a container means to
its Pod (restarts, back-off, probes, status) is ``pod.py``'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...contract.times import fmt_time
from .resources import CgroupManager, kill_pids, tree_pids, tree_rss
from .volumes import Mount, PodPaths, launch_script, resolve_host

MAX_LINE = 16 * 1024
COMPAT = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


def cri_timestamp() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class StartError(Exception):
    """The container could not be started (reason ``StartError``, exit code 127)."""


@dataclass
class ExitInfo:
    exit_code: int
    reason: str
    message: str
    started_at: str
    finished_at: str
    signal: int | None = None

    def state(self, container_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"exitCode": self.exit_code, "reason": self.reason,
                               "startedAt": self.started_at, "finishedAt": self.finished_at,
                               "containerID": container_id}
        if self.signal:
            out["signal"] = self.signal
        if self.message:
            out["message"] = self.message
        return out


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def prepare_argv(argv: list[str], env: dict[str, str], workdir: str, mounts: list[Mount],
                 mode: str) -> tuple[list[str], str | None]:
    """Check the program exists (as the runtime would); map retired Dask commands.

    Returns the argv to run and, when a compatibility mapping was applied, a warning.
    """
    if not argv:
        raise StartError("failed to start container process: no command specified "
                         "(neither command nor args is set)")
    prog = argv[0]

    def found(name: str) -> bool:
        if "/" in name:
            full = name if name.startswith("/") else os.path.join(workdir, name)
            return _executable(resolve_host(os.path.normpath(full), mounts, mode))
        for d in env.get("PATH", "").split(":"):
            if d and _executable(resolve_host(os.path.join(d, name), mounts, mode)):
                return True
        return False

    if found(prog):
        return argv, None
    if prog in COMPAT and found(COMPAT[prog][0]):
        new = [*COMPAT[prog], *argv[1:]]
        return new, (f'command "{prog}" no longer exists in current Dask; running '
                     f'"{" ".join(COMPAT[prog])}" instead')
    raise StartError(f'failed to create containerd task: failed to create shim task: OCI '
                     f'runtime create failed: unable to start container process: exec: "{prog}": '
                     f'executable file not found in $PATH: unknown')


class ContainerProcess:
    """One run of one container: start, log, wait, stop."""

    def __init__(self, *, name: str, argv: list[str], env: dict[str, str], workdir: str,
                 mounts: list[Mount], mode: str, cgroup: Path | None, paths: PodPaths,
                 restart_count: int, memory_limit: int | None, message_policy: str) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.mounts = mounts
        self.mode = mode
        self.cgroup = cgroup
        self.paths = paths
        self.restart_count = restart_count
        self.memory_limit = memory_limit
        self.message_policy = message_policy
        self.proc: subprocess.Popen[bytes] | None = None
        self._exited: asyncio.Future[int] | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self.pid: int | None = None
        self.started_at = ""
        self._oom_base = 0
        self._watchdog_oom = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log = paths.logs(name) / f"{restart_count}.log"
        self._log_fh: Any = None

    @property
    def log_path(self) -> Path:
        return self._log

    def _rotate_logs(self) -> None:
        d = self.paths.logs(self.name)
        d.mkdir(parents=True, exist_ok=True)
        for f in d.iterdir():
            stem = f.name.split(".", 1)[0]
            if stem.isdigit() and int(stem) < self.restart_count - 1:
                with contextlib.suppress(OSError):
                    f.unlink()
        for f in (self._log, self._log.with_name(self._log.name + ".done")):
            with contextlib.suppress(OSError):
                f.unlink()

    async def start(self) -> None:
        self._rotate_logs()
        term = self.paths.termination(self.name)
        term.parent.mkdir(parents=True, exist_ok=True)
        term.write_bytes(b"")
        err = self.paths.start_error(self.name)
        err.parent.mkdir(parents=True, exist_ok=True)
        err.write_bytes(b"")
        self._oom_base = CgroupManager.oom_kills(self.cgroup)
        script = launch_script(self.mounts, self.mode, cgroup=self.cgroup, workdir=self.workdir,
                               error_file=err)
        argv = ["/bin/sh", "-c", script, "dkj-container", *self.argv]
        if self.mode == "namespace":
            argv = ["unshare", "--mount", "--propagation", "private", "--", *argv]
        if shutil.which("setpriv"):
            argv = ["setpriv", "--pdeathsig", "KILL", "--", *argv]
        self._log_fh = self._log.open("ab", buffering=0)
        # Popen + pidfd rather than asyncio's subprocess: asyncio's wait() also waits for the
        # pipes to close, which a daemonised grandchild holding stdout would delay forever.
        try:
            # Forked from the loop thread on purpose: the parent-death signal follows the
            # forking thread, which must live as long as the kubelet.
            self.proc = subprocess.Popen(  # noqa: ASYNC220 - a fork+exec is quick
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True, cwd="/")
        except OSError as exc:
            self._log_fh.close()
            raise StartError(f"failed to start container process: {exc}") from exc
        self.pid = self.proc.pid
        self.started_at = fmt_time()
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        pidfd = os.pidfd_open(self.pid)

        def reap() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            _, status = os.waitpid(self.pid, 0)  # type: ignore[arg-type]
            code = os.waitstatus_to_exitcode(status)
            assert self.proc is not None
            self.proc.returncode = code
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(code)

        loop.add_reader(pidfd, reap)
        assert self.proc.stdout and self.proc.stderr
        streams = []
        for pipe in (self.proc.stdout, self.proc.stderr):
            reader = asyncio.StreamReader(limit=1 << 20)
            transport, _ = await loop.connect_read_pipe(
                lambda r=reader: asyncio.StreamReaderProtocol(r), pipe)  # type: ignore[misc]
            self._transports.append(transport)
            streams.append(reader)
        self._tasks = [asyncio.create_task(self._pump(streams[0], b"stdout")),
                       asyncio.create_task(self._pump(streams[1], b"stderr"))]
        if self.memory_limit and self.cgroup is None:
            self._tasks.append(asyncio.create_task(self._watchdog()))

    async def _pump(self, stream: asyncio.StreamReader, name: bytes) -> None:
        buf = b""
        while True:
            chunk = await stream.read(65536)
            if not chunk:
                break
            buf += chunk
            out = []
            while True:
                nl = buf.find(b"\n")
                if nl == -1:
                    break
                line, buf = buf[:nl], buf[nl + 1:]
                while len(line) > MAX_LINE:
                    out.append(self._line(name, b"P", line[:MAX_LINE]))
                    line = line[MAX_LINE:]
                out.append(self._line(name, b"F", line))
            while len(buf) > MAX_LINE:
                out.append(self._line(name, b"P", buf[:MAX_LINE]))
                buf = buf[MAX_LINE:]
            if out:
                self._log_fh.write(b"".join(out))
        if buf:
            self._log_fh.write(self._line(name, b"F", buf))

    @staticmethod
    def _line(stream: bytes, tag: bytes, text: bytes) -> bytes:
        return cri_timestamp().encode() + b" " + stream + b" " + tag + b" " + text + b"\n"

    async def _watchdog(self) -> None:
        assert self.memory_limit and self.pid
        while True:
            await asyncio.sleep(0.25)
            if await asyncio.to_thread(tree_rss, self.pid) > self.memory_limit:
                self._watchdog_oom = True
                kill_pids(tree_pids(self.pid, None), signal.SIGKILL)
                return

    async def wait(self) -> ExitInfo:
        assert self._exited is not None
        code = await self._exited
        # The program is gone; anything it left in its session or cgroup goes too (a
        # container's processes never outlive it).
        kill_pids(tree_pids(self.pid, self.cgroup), signal.SIGKILL)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._tasks[:2], return_exceptions=True), 5)
        for t in self._tasks:
            t.cancel()
        for tr in self._transports:
            tr.close()
        self._log_fh.close()
        self._log.with_name(self._log.name + ".done").touch()
        finished = fmt_time()
        sig = -code if code < 0 else None
        exit_code = 128 + sig if sig else code
        start_error = self.paths.start_error(self.name)
        err_text = start_error.read_text(errors="replace").strip() if start_error.exists() else ""
        if exit_code == 128 and err_text:
            return ExitInfo(128, "StartError", f"failed to start container process: {err_text}",
                            self.started_at, finished)
        oom = self._watchdog_oom or CgroupManager.oom_kills(self.cgroup) > self._oom_base
        reason = "Completed" if exit_code == 0 else ("OOMKilled" if oom else "Error")
        return ExitInfo(exit_code, reason, self._message(exit_code), self.started_at, finished, sig)

    def _message(self, exit_code: int) -> str:
        try:
            data = self.paths.termination(self.name).read_bytes()[:4096]
        except OSError:
            data = b""
        message = data.decode(errors="replace")
        if not message.strip() and exit_code != 0 and self.message_policy == "FallbackToLogsOnError":
            message = log_tail(self._log, lines=80, limit=2048)
        return message

    def terminate(self) -> None:
        """SIGTERM to the container's process group, as a terminal's Ctrl-C reaches a job."""
        if self.pid and self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL to every process of the container (group, session and cgroup)."""
        kill_pids(tree_pids(self.pid, self.cgroup), signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


def log_tail(path: Path, *, lines: int, limit: int) -> str:
    try:
        raw = path.read_bytes()[-(limit * 4 + lines * 64):]
    except OSError:
        return ""
    texts = []
    for line in raw.splitlines()[-lines:]:
        parts = line.split(b" ", 3)
        if len(parts) == 4:
            texts.append(parts[3].decode(errors="replace") + ("\n" if parts[2] == b"F" else ""))
    return "".join(texts)[-limit:]
