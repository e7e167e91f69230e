"""One container as a process tree of the current Python environment: start, adopt, wait, stop.

Each container runs under its own monitor (``conmon.py``, as containerd runs a shim per
container), which the kubelet starts in a session of its own: the monitor starts the container,
writes its pid, copies its output into CRI-format log files that the log server reads, and
records its exit status in a file. The container's program starts through a short ``sh``
prologue (see ``volumes.launch_script``): it joins the container's memory cgroup, sets up its
mounts in a private mount namespace, masks what the container must not see, changes to
``workingDir`` and ``exec``-s the program as the container's user (``sandbox.py``), so the
container's pid is the program's pid.

Nothing ties a container to the kubelet's life: a kubelet killed by SIGKILL leaves its
containers running and logging, and the next one re-adopts them (``ContainerProcess.adopt``)
from the record the Pod keeps in ``procs.json``, watching the monitor through a pidfd and
reading the exit status from its file, as a real kubelet finds its containers again through
the container runtime. Every container is a session leader, so a signal can reach the whole
tree; stragglers that left the session are still in the cgroup. What a container means to its
Pod (restarts, back-off, probes, status) is ``pod.py``'s business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...contract.times import fmt_time
from .._processes import pid_alive
from .resources import CgroupManager, kill_pids, tree_pids, tree_rss
from .sandbox import MASK_POINT, Confinement, mask_lines, plan_masks
from .volumes import Mount, PodPaths, environment_paths, launch_script, resolve_host

CONMON = Path(__file__).resolve().parent / "conmon.py"
COMPAT = {"dask-scheduler": ["dask", "scheduler"], "dask-worker": ["dask", "worker"]}


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


def enter_argv(command: list[str], *, pid: int | None, workdir: str, namespace_mode: bool,
               cgroup: Path | None = None, run_as: Sequence[str] = ()) -> list[str]:
    """The argv that runs ``command`` beside a running container's program, in its context.

    Why: ``kubectl exec`` and ``exec`` probes and hooks must see what the container sees, as
    a runtime's exec joins the container: its mount namespace (``nsenter`` into the program's,
    when the kubelet gives containers one), its working directory and, for ``kubectl exec``,
    its memory cgroup, so the command counts against the container's limit and goes with it,
    and its user (``run_as``, the ``Identity.setpriv`` prefix ``sandbox`` gives a confined
    container), so a command entering a container never has more rights than its program.
    The caller passes the container's environment. Whatever else a container's launch sets up
    for its program belongs here too, so every way into a container stays the same.
    """
    q = shlex.quote
    lines = []
    if cgroup is not None:
        lines.append(f"echo $$ > {q(str(cgroup / 'cgroup.procs'))} || exit 126")
    lines.append(f"cd {q(workdir)} 2>/dev/null; exec \"$@\"")
    argv = ["/bin/sh", "-c", "\n".join(lines), "dkj-exec", *run_as, *command]
    if namespace_mode and pid and shutil.which("nsenter"):
        argv = ["nsenter", "--target", str(pid), "--mount", "--", *argv]
    return argv


class ContainerProcess:
    """One run of one container: start, log, wait, stop."""

    def __init__(self, *, name: str, argv: list[str], env: dict[str, str], workdir: str,
                 mounts: list[Mount], mode: str, cgroup: Path | None, paths: PodPaths,
                 restart_count: int, memory_limit: int | None, message_policy: str,
                 confinement: Confinement | None = None) -> None:
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
        self.confinement = confinement
        self.pid: int | None = None
        self.shim_pid: int | None = None
        self.started_at = ""
        self._exited: asyncio.Future[int] | None = None
        self._oom_base = 0
        self._watchdog_oom = False
        self._tasks: list[asyncio.Task[None]] = []
        self._log = paths.logs(name) / f"{restart_count}.log"
        self.run_dir = paths.private / "conmon" / name

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
        term.chmod(0o666)  # written by the container's uid; seen by its Pod only
        err = self.paths.start_error(self.name)
        err.parent.mkdir(parents=True, exist_ok=True)
        err.write_bytes(b"")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for f in ("pid", "exit"):
            (self.run_dir / f).unlink(missing_ok=True)
        self._oom_base = CgroupManager.oom_kills(self.cgroup)
        masks, run_as = self._confine(err)
        script = launch_script(self.mounts, self.mode, cgroup=self.cgroup, workdir=self.workdir,
                               error_file=err, masks=masks, run_as=run_as)
        argv = ["/bin/sh", "-c", script, "dkj-container", *self.argv]
        if self.mode == "namespace":
            argv = ["unshare", "--mount", "--propagation", "private", "--", *argv]
        argv = [sys.executable, "-I", str(CONMON), str(self.run_dir), str(self._log),
                str(self.cgroup or ""), "--", *argv]
        try:
            shim = subprocess.Popen(  # noqa: ASYNC220 - a fork+exec is quick
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True, cwd="/")
        except OSError as exc:
            raise StartError(f"failed to start container process: {exc}") from exc
        self.shim_pid = shim.pid
        self._watch_shim(child=True)
        deadline = time.monotonic() + 30
        pid_file = self.run_dir / "pid"
        while not pid_file.exists():
            if self._exited is not None and self._exited.done() or time.monotonic() > deadline:
                error = self._exit_record().get("error") or "the container monitor ended early"
                raise StartError(f"failed to start container process: {error}")
            await asyncio.sleep(0.01)
        self.pid = int(pid_file.read_text())
        self.started_at = fmt_time()
        self._start_watchdog()

    def _confine(self, err: Path) -> tuple[list[str], list[str]]:
        """The prologue's masks and the identity switch (``sandbox``), in namespace mode."""
        conf = self.confinement
        if conf is None or self.mode != "namespace":
            return [], []
        keep = [*conf.shown, *environment_paths(err), *(m.target for m in self.mounts),
                self.workdir]
        unprivileged = conf.identity is not None and conf.identity.uid != 0
        plan = plan_masks(list(conf.hide), keep, searchable=unprivileged)
        MASK_POINT.mkdir(mode=0o700, exist_ok=True)
        run_as = conf.identity.setpriv() if conf.identity is not None else []
        return mask_lines(plan, MASK_POINT, shlex.quote(str(err))), run_as

    @property
    def run_as(self) -> list[str]:
        """The argv prefix that runs a command as this container's user (exec probes)."""
        conf = self.confinement
        if conf is None or conf.identity is None or self.mode != "namespace":
            return []
        return conf.identity.setpriv()

    def adopt(self, shim_pid: int, pid: int, started_at: str) -> bool:
        """Take over a container a previous kubelet started (its monitor and program may
        still run, or may have ended meanwhile: the exit file says how). False when there is
        nothing to adopt (no record of how it ended either)."""
        self.shim_pid, self.pid, self.started_at = shim_pid, pid, started_at
        alive = _is_monitor(shim_pid, self.run_dir)
        if not alive and not (self.run_dir / "exit").exists():
            if not pid_alive(pid):
                return False
        self._oom_base = CgroupManager.oom_kills(self.cgroup)
        self._watch_shim(child=False)
        self._start_watchdog()
        return True

    def _exit_record(self) -> dict[str, Any]:
        try:
            return dict(json.loads((self.run_dir / "exit").read_text()))
        except (OSError, ValueError):
            return {}

    def _watch_shim(self, *, child: bool) -> None:
        """Resolve ``_exited`` with the container's status once its monitor has ended."""
        loop = asyncio.get_running_loop()
        self._exited = loop.create_future()
        assert self.shim_pid is not None

        def ended() -> None:
            if child:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.shim_pid, 0)  # type: ignore[arg-type]
            code = self._exit_record().get("code")
            if code is None:  # the monitor was killed: its container went with it or will
                kill_pids(tree_pids(self.pid, self.cgroup), signal.SIGKILL)
                code = -signal.SIGKILL
            if self._exited is not None and not self._exited.done():
                self._exited.set_result(int(code))

        try:
            pidfd = os.pidfd_open(self.shim_pid)
        except ProcessLookupError:
            loop.call_soon(ended)
            return

        def readable() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            ended()

        loop.add_reader(pidfd, readable)

    def _start_watchdog(self) -> None:
        if self.memory_limit and self.cgroup is None:
            self._tasks.append(asyncio.create_task(self._watchdog()))

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
        for t in self._tasks:
            t.cancel()
        self._log.parent.mkdir(parents=True, exist_ok=True)
        self._log.with_name(self._log.name + ".done").touch()
        finished = self._exit_record().get("finishedAt") or fmt_time()
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
        return self._exited is not None and not self._exited.done()

    def exec_argv(self, command: list[str]) -> list[str]:
        """``command`` run inside this container (``kubectl exec``), see ``enter_argv``."""
        return enter_argv(command, pid=self.pid, workdir=self.workdir,
                          namespace_mode=self.mode == "namespace", cgroup=self.cgroup,
                          run_as=self.run_as)


def _is_monitor(pid: int, run_dir: Path) -> bool:
    """Whether ``pid`` is still the monitor of ``run_dir`` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(CONMON).encode() in cmdline and str(run_dir).encode() in cmdline


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
