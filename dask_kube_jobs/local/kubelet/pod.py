"""One Pod on this node: its sandbox, its containers' lifecycle, and its status reports.

:class:`PodWorker` is the per-Pod supervisor the kubelet (``agent.py``) starts for every Pod bound
to its Node. It sets up the sandbox (a loopback address, the ServiceAccount token, the volumes),
runs init containers then app containers with the restart policy and CrashLoopBackOff, drives
lifecycle hooks and probes, reports ``pods/status``, and carries out graceful deletion. The
processes themselves are ``container.py``; the phase and condition rules are ``status.py``.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import logging
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from ...contract.times import fmt_time
from ...kube import Conflict, NotFound
from .container import ContainerProcess, ExitInfo, StartError, prepare_argv
from .env import ContainerConfigError, command_line, container_env, process_env
from .imageref import invalid_image_message
from .probes import ProbeLoop, Target, run_handler
from .resources import (
    kill_pids,
    memory_limit_bytes,
    monitored,
    read_records,
    record_process,
    tree_pids,
)
from .sandbox import Confinement, confine
from .status import Container, condition, go_duration, pod_phase
from .volumes import (
    PodPaths,
    VolumeContext,
    VolumeError,
    container_mounts,
    link_mounts,
    make_home,
    materialise,
    unlink_mounts,
    write_service_account,
)

log = logging.getLogger(__name__)


def _matches(record: dict[str, Any] | None, c: Container) -> bool:
    """Whether a container record is the run the API last showed (same id, same restart)."""
    return bool(record and record.get("shim") and record.get("containerID") == c.container_id
                and record.get("restartCount") == c.restart_count)


def backoff_base() -> float:
    return float(os.environ.get("DKJ_KUBELET_BACKOFF_BASE", "10"))


class PodWorker:
    """Runs one Pod: sandbox (address, volumes, token), init then app containers with restarts
    and back-off, probes, status reports, and graceful termination. One task per Pod; every
    change (process exit, probe result, Pod update) sets ``wake`` and the loop reconciles."""

    def __init__(self, kubelet: Any, pod: dict[str, Any]) -> None:
        self.k = kubelet
        self.pod = pod
        meta = pod["metadata"]
        self.uid = meta["uid"]
        self.key = f"{meta['namespace']}/{meta['name']}"
        self.paths = PodPaths.of(kubelet.state_dir, pod)
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.gone = False
        self.pod_ip = ""
        self.sandbox_ready = False
        self.volumes: dict[str, Path] = {}
        self.sa_mounted = False
        self.init_failed = False
        self.final_phase: str | None = None
        self.reason: str | None = None
        self.message: str | None = None
        self.published: dict[str, Any] | None = None
        self.start_time = (pod.get("status") or {}).get("startTime") or fmt_time()
        spec = pod.get("spec") or {}
        self.init = [Container(c, True) for c in spec.get("initContainers") or []]
        self.apps = [Container(c, False) for c in spec.get("containers") or []]
        self._refresh_at = 0.0
        self._adopt(pod.get("status") or {})

    # -- inputs -------------------------------------------------------------------------------
    def update(self, pod: dict[str, Any]) -> None:
        if pod["metadata"].get("labels") != self.pod["metadata"].get("labels") or \
                pod["metadata"].get("annotations") != self.pod["metadata"].get("annotations"):
            self._refresh_at = 0.0
        self.pod = pod
        self.wake.set()

    def removed(self) -> None:
        self.gone = True
        self.wake.set()

    @property
    def deleting(self) -> bool:
        return self.gone or bool(self.pod["metadata"].get("deletionTimestamp"))

    @property
    def containers(self) -> list[Container]:
        return [*self.init, *self.apps]

    def _adopt(self, status: dict[str, Any]) -> None:
        """Take over what a previous kubelet reported. A container it reported running whose
        monitor still runs (or left its exit status) is adopted by ``run``; one whose record is
        gone is reported as killed when the kubelet restarted."""
        records = read_records(self.paths.procs)
        #: containers a previous kubelet started that are not the run the API shows (it died
        #: before reporting them): they go, and the containers start as the Pod says
        self._orphans = [r for r in records.values() if monitored(r)]
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            self.final_phase = phase
            self.reason, self.message = status.get("reason"), status.get("message")
        reported = {(False, s["name"]): s for s in status.get("containerStatuses") or []}
        reported.update({(True, s["name"]): s for s in status.get("initContainerStatuses") or []})
        for c in self.containers:
            st = reported.get((c.init, c.name))
            if not st:
                continue
            c.restart_count = int(st.get("restartCount") or 0)
            c.container_id = st.get("containerID") or ""
            c.last_state = st.get("lastState") or {}
            state = st.get("state") or {}
            if "terminated" in state:
                t = state["terminated"]
                c.state = state
                c.exit = ExitInfo(int(t.get("exitCode", 0)), t.get("reason", ""),
                                  t.get("message", ""), t.get("startedAt", ""),
                                  t.get("finishedAt", ""))
                c.done = self.final_phase is not None or (c.init and c.exit.exit_code == 0)
            elif "running" in state and _matches(records.get(c.name), c):
                c.adoptable = records[c.name]
                c.state = state
                if c.adoptable in self._orphans:
                    self._orphans.remove(c.adoptable)
            elif "running" in state or c.last_state.get("terminated"):
                c.exit = ExitInfo(137, "Error", "the container was stopped when the kubelet "
                                  "restarted", (state.get("running") or {}).get("startedAt", ""),
                                  fmt_time(), signal.SIGKILL)
                c.state = {"terminated": c.exit.state(c.container_id)}
                c.done = self.final_phase is not None

    # -- main loop ----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            self._adopt_running()
            if self.final_phase is None and not self.deleting:
                await self._setup()
            while not self.deleting:
                deadline = None
                if self.final_phase is None and self.sandbox_ready:
                    deadline = await self._reconcile()
                if not await self._publish():
                    deadline = time.monotonic() + 1
                await self._sleep(deadline)
            await self._terminate()
        finally:
            await self._cleanup(final=self.deleting)

    def _adopt_running(self) -> None:
        """Watch again the containers a previous kubelet started (see ``_adopt``): their
        processes, logs, restart counts and start times go on as they were."""
        for rec in self._orphans:
            kill_pids([int(rec["shim"]), *tree_pids(int(rec.get("pid") or 0) or None,
                                                    Path(rec["cgroup"]) if rec.get("cgroup")
                                                    else None)], signal.SIGKILL)
        self._orphans = []
        for c in self.containers:
            rec, c.adoptable = c.adoptable, None
            if rec is None:
                continue
            try:
                confinement = self._confinement(c)
            except ContainerConfigError:  # started by a kubelet that allowed it: as it is
                confinement = None
            proc = ContainerProcess(
                name=c.name, argv=[], env=dict(rec.get("env") or {}),
                workdir=str(rec.get("workdir") or "/"), mounts=[], mode=self.k.mount_mode,
                cgroup=Path(rec["cgroup"]) if rec.get("cgroup") else None, paths=self.paths,
                restart_count=c.restart_count, memory_limit=memory_limit_bytes(c.spec),
                message_policy=c.spec.get("terminationMessagePolicy") or "File",
                confinement=confinement)
            started_at = str((c.state.get("running") or {}).get("startedAt") or "")
            if not proc.adopt(int(rec["shim"]), int(rec["pid"]), started_at):
                c.exit = ExitInfo(137, "Error", "the container was stopped when the kubelet "
                                  "restarted", started_at, fmt_time(), signal.SIGKILL)
                c.state = {"terminated": c.exit.state(c.container_id)}
                continue
            log.info("pod %s: adopted container %s (pid %s)", self.key, c.name, proc.pid)
            c.proc, c.env, c.workdir = proc, proc.env, proc.workdir
            c.waiter = asyncio.create_task(self._wait(c, proc))
            c.started = True
            self._after_startup(c)

    async def _sleep(self, deadline: float | None) -> None:
        now = time.monotonic()
        timeout = 30.0 if deadline is None else max(0.0, min(deadline - now, 30.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    async def _setup(self) -> None:
        """The sandbox: an address, the ServiceAccount token and the volumes (retried)."""
        k, pod = self.k, self.pod
        self.pod_ip = k.network.allocate(self.uid)
        make_home(self.paths)
        spec = pod.get("spec") or {}
        token_tries = 0
        while not self.deleting:
            try:
                if spec.get("automountServiceAccountToken", True) and not self.sa_mounted:
                    await self._write_token()
                    self.sa_mounted = True
                self.volumes = await materialise(self._volume_context())
                self.sandbox_ready = True
                self._refresh_at = time.monotonic() + 60
                return
            except VolumeError as exc:
                k.event(pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {exc}")
            except Exception as exc:  # noqa: BLE001 - the token request failed
                token_tries += 1
                if token_tries >= 10:
                    k.event(pod, "Warning", "FailedMount", "no ServiceAccount token for this "
                            f"Pod ({exc}); running without kube-api-access")
                    spec = {**spec, "automountServiceAccountToken": False}
                    continue
            await self._publish()
            await self._sleep(time.monotonic() + (0.5 if token_tries else 2.0))

    async def _write_token(self) -> None:
        k = self.k
        write_service_account(self.paths, await k.token(self.pod), k.ca_pem,
                              self.pod["metadata"]["namespace"], k.api_server)

    def _volume_context(self) -> VolumeContext:
        k = self.k

        async def token(expiration: int, audience: str) -> str:
            return str(await k.token(self.pod, expiration, audience))

        return VolumeContext(self.pod, self.paths, k.fetch, token, self.pod_ip, k.host_ip,
                             k.allocatable, k.ca_pem, k.state_dir / "pvc")

    async def _reconcile(self) -> float | None:
        now = time.monotonic()
        if self._refresh_at and now >= self._refresh_at or self._refresh_at == 0.0:
            with contextlib.suppress(Exception):  # tokens are renewed at 80 % of their life
                if self.sa_mounted:
                    await self._write_token()
                await materialise(self._volume_context())
            self._refresh_at = now + 60
        ads = (self.pod.get("spec") or {}).get("activeDeadlineSeconds")
        if ads is not None and self._age() > float(ads):
            self.k.event(self.pod, "Normal", "DeadlineExceeded",
                         "Pod was active on the node longer than the specified deadline")
            await self._stop_all(float(self._grace()))
            self.final_phase, self.reason = "Failed", "DeadlineExceeded"
            self.message = "Pod was active on the node longer than the specified deadline."
            return None
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for c in self.init:
            if c.done:
                continue
            if c.proc is not None:
                return None
            if c.exit is not None and policy == "Never":
                self.init_failed = True
                return None
            return await self._maybe_start(c, now)
        deadlines = []
        for c in self.apps:
            if c.done or c.proc is not None:
                continue
            if c.exit is not None and not (
                    policy == "Always" or (policy == "OnFailure" and c.exit.exit_code != 0)):
                c.done = True
                continue
            d = await self._maybe_start(c, now)
            if d is not None:
                deadlines.append(d)
        if ads is not None:
            deadlines.append(now + max(0.0, float(ads) - self._age()) + 0.05)
        return min(deadlines) if deadlines else None

    def _age(self) -> float:
        return time.time() - calendar.timegm(time.strptime(self.start_time, "%Y-%m-%dT%H:%M:%SZ"))

    async def _maybe_start(self, c: Container, now: float) -> float | None:
        if c.retry_at > now:
            return c.retry_at
        if c.exit is not None:
            base = backoff_base()
            cap = min(300.0, base * 30)
            if c.backoff is not None and now - c.backoff_updated > 2 * cap:
                c.backoff = None
            if c.backoff is not None and now - c.exited_at < c.backoff:
                c.retry_at = c.exited_at + c.backoff
                m = self.pod["metadata"]
                c.last_state = {"terminated": c.exit.state(c.container_id)}
                c.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                    f"back-off {go_duration(c.backoff)} restarting failed container={c.name} "
                    f"pod={m['name']}_{m['namespace']}({self.uid})")}}
                self.k.event(self.pod, "Warning", "BackOff",
                             f"Back-off restarting failed container {c.name} in pod "
                             f"{m['name']}_{m['namespace']}({self.uid})", c.field_path)
                return c.retry_at
            c.backoff = base if c.backoff is None else min(c.backoff * 2, cap)
            c.backoff_updated = now
        await self._start(c)
        return c.retry_at if c.retry_at > time.monotonic() else None

    # -- containers ---------------------------------------------------------------------------
    async def _start(self, c: Container) -> None:
        k, pod = self.k, self.pod
        ns = pod["metadata"]["namespace"]
        bad_image = invalid_image_message(str(c.spec.get("image", "")))
        if bad_image:  # as a real kubelet: the container waits, the Pod stays Pending
            c.state = {"waiting": {"reason": "InvalidImageName", "message": bad_image}}
            k.event(pod, "Warning", "InspectFailed", bad_image, c.field_path)
            k.event(pod, "Warning", "Failed", "Error: InvalidImageName", c.field_path)
            c.retry_at = time.monotonic() + 10
            return
        try:
            vars_ = await container_env(pod, c.spec, pod_ip=self.pod_ip, host_ip=k.host_ip,
                                        allocatable=k.allocatable, fetch=k.fetch,
                                        services=await k.services(ns))
            mounts = container_mounts(c.spec, self.volumes, self.paths,
                                      sa_mounted=self.sa_mounted and k.mount_mode == "namespace")
            confinement = self._confinement(c)
        except (ContainerConfigError, VolumeError) as exc:
            c.state = {"waiting": {"reason": "CreateContainerConfigError", "message": str(exc)}}
            k.event(pod, "Warning", "Failed", f"Error: {exc}", c.field_path)
            c.retry_at = time.monotonic() + 2
            return
        if c.exit is not None:
            c.last_state = {"terminated": c.exit.state(c.container_id)}
            c.restart_count += 1
        c.exit = None
        extra = {"DKJ_TERMINATION_MESSAGE_PATH": str(self.paths.termination(c.name))}
        if self.sa_mounted:
            extra["KUBECONFIG"] = str(self.paths.kubeconfig)
        extra.update(k.network.process_env(self.pod_ip, ns))
        from .network import with_shim

        extra = with_shim(extra)
        spec = pod.get("spec") or {}
        hostname = spec.get("hostname") or pod["metadata"]["name"]
        c.env = process_env(vars_, hostname=hostname, home=str(self.paths.home),
                            tmpdir=str(self.paths.tmp), extra=extra)
        c.workdir = c.spec.get("workingDir") or str(self.paths.home)
        image = c.spec.get("image", "")
        k.event(pod, "Normal", "Pulled",
                f'Container image "{image}" already present on machine', c.field_path)
        try:
            argv, warning = prepare_argv(command_line(c.spec, vars_), c.env, c.workdir, mounts,
                                         k.mount_mode)
            if warning:
                k.event(pod, "Warning", "DeprecatedCommand", warning, c.field_path)
            if k.mount_mode == "symlink":
                for w in link_mounts(mounts, self.paths):
                    k.event(pod, "Warning", "FailedMount", w, c.field_path)
            limit = memory_limit_bytes(c.spec)
            proc = ContainerProcess(
                name=c.name, argv=argv, env=c.env, workdir=c.workdir, mounts=mounts,
                mode=k.mount_mode, cgroup=k.cgroups.create(self.uid, c.name, limit),
                paths=self.paths, restart_count=c.restart_count, memory_limit=limit,
                message_policy=c.spec.get("terminationMessagePolicy") or "File",
                confinement=confinement)
            k.event(pod, "Normal", "Created", f"Created container: {c.name}", c.field_path)
            await proc.start()
        except StartError as exc:
            stamp = fmt_time()
            k.event(pod, "Warning", "Failed", f"Error: {exc}", c.field_path)
            self._on_exit(c, ExitInfo(127, "StartError", str(exc), stamp, stamp))
            return
        c.proc = proc
        c.container_id = f"process://{proc.pid}"
        record_process(self.paths.procs, c.name, proc.pid, proc.cgroup, shim=proc.shim_pid,
                       runDir=str(proc.run_dir), containerID=c.container_id,
                       restartCount=c.restart_count, env=c.env, workdir=c.workdir)
        c.state = {"running": {"startedAt": proc.started_at}}
        k.event(pod, "Normal", "Started", f"Started container {c.name}", c.field_path)
        c.waiter = asyncio.create_task(self._wait(c, proc))
        hook = (c.spec.get("lifecycle") or {}).get("postStart")
        if hook:
            ok, msg = await run_handler(hook, self._target(c), float(self._grace()))
            if not ok:
                k.event(pod, "Warning", "FailedPostStartHook", msg, c.field_path)
                proc.kill()
                return
        startup = c.spec.get("startupProbe")
        c.started = startup is None
        c.ready = startup is None and c.spec.get("readinessProbe") is None and not c.init
        if startup:
            self._probe(c, "startup", startup)
        else:
            self._after_startup(c)

    async def _wait(self, c: Container, proc: ContainerProcess) -> None:
        info = await proc.wait()
        if c.proc is proc:
            self._on_exit(c, info)

    def _on_exit(self, c: Container, info: ExitInfo) -> None:
        c.cancel_tasks()
        c.proc = None
        c.exit = info
        c.exited_at = time.monotonic()
        c.state = {"terminated": info.state(c.container_id)}
        c.started = c.ready = False
        if c.init and info.exit_code == 0:
            c.done = True
            c.ready = True
        self.wake.set()

    def _target(self, c: Container) -> Target:
        return Target(self.pod_ip, c.spec, c.env, c.proc.pid if c.proc else None, c.workdir,
                      self.k.mount_mode == "namespace", c.proc.run_as if c.proc else [])

    def _confinement(self, c: Container) -> Confinement | None:
        """Who ``c`` runs as and what it may see (``sandbox``); namespace mode only."""
        if self.k.mount_mode != "namespace":
            return None
        return confine(self.pod, c.spec, switch_user=self.k.switch_user,
                       state_dir=self.k.state_dir,
                       shown=[str(self.paths.root), str(self.k.network.dir)])

    def _probe(self, c: Container, kind: str, spec: dict[str, Any]) -> None:
        def on_result(kind: str, ok: bool) -> None:
            self._probe_result(c, kind, ok)

        def on_failure(kind: str, message: str) -> None:
            self.k.event(self.pod, "Warning", "Unhealthy",
                         f"{kind.capitalize()} probe failed: {message}", c.field_path)

        loop = ProbeLoop(kind, spec, lambda: self._target(c), on_result, on_failure)
        c.tasks.append(asyncio.create_task(loop.run()))

    def _after_startup(self, c: Container) -> None:
        c.started = True
        if c.spec.get("livenessProbe"):
            self._probe(c, "liveness", c.spec["livenessProbe"])
        if c.spec.get("readinessProbe") and not c.init:
            self._probe(c, "readiness", c.spec["readinessProbe"])
        elif not c.init:
            c.ready = True
        self.wake.set()

    def _probe_result(self, c: Container, kind: str, ok: bool) -> None:
        if c.proc is None:
            return
        if kind == "startup" and ok:
            self._after_startup(c)
        elif kind == "readiness":
            c.ready = ok
        elif kind in ("liveness", "startup") and not ok:
            self.k.event(self.pod, "Normal", "Killing", f"Container {c.name} failed {kind} probe, "
                         "will be restarted", c.field_path)
            spec = c.spec.get(f"{kind}Probe") or {}
            grace = spec.get("terminationGracePeriodSeconds", self._grace())
            c.tasks.append(asyncio.create_task(self._stop(c, float(grace), pre_stop=True)))
        self.wake.set()

    def _grace(self) -> int:
        meta, spec = self.pod["metadata"], self.pod.get("spec") or {}
        if meta.get("deletionGracePeriodSeconds") is not None:
            return int(meta["deletionGracePeriodSeconds"])
        return int(spec.get("terminationGracePeriodSeconds", 30))

    async def _stop(self, c: Container, grace: float, *, pre_stop: bool) -> None:
        """preStop hook, SIGTERM to the process group, SIGKILL to the tree after ``grace``."""
        proc, waiter = c.proc, c.waiter
        if proc is None or waiter is None:
            return
        deadline = time.monotonic() + grace
        hook = (c.spec.get("lifecycle") or {}).get("preStop")
        if pre_stop and hook and grace > 0:
            ok, msg = await run_handler(hook, self._target(c), grace)
            if not ok:
                self.k.event(self.pod, "Warning", "FailedPreStopHook", msg, c.field_path)
        proc.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(waiter), max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            proc.kill()
            await asyncio.shield(waiter)

    async def _stop_all(self, grace: float, *, events: bool = True) -> None:
        running = [c for c in self.containers if c.proc is not None]
        for c in running:
            c.cancel_tasks()
            if events:
                self.k.event(self.pod, "Normal", "Killing", f"Stopping container {c.name}",
                             c.field_path)
        await asyncio.gather(*(self._stop(c, grace, pre_stop=True) for c in running))
        for c in self.containers:
            c.done = True

    async def _terminate(self) -> None:
        """Graceful deletion: stop everything, report a terminal phase, then remove the Pod."""
        await self._stop_all(float(self._grace()), events=not self.gone)
        if self.gone:
            return
        if self.final_phase is None:
            ok = all(c.exit is not None and c.exit.exit_code == 0 for c in self.apps)
            self.final_phase = "Succeeded" if ok and self.apps else "Failed"
        with contextlib.suppress(Exception):
            await self._publish()
        await self.k.delete_pod(self.pod)

    async def shutdown(self, grace_cap: float) -> None:
        """The kubelet stops: stop the processes, keep the Pod (a new kubelet takes over)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self._stop_all(min(float(self._grace()), grace_cap), events=False)

    async def _cleanup(self, *, final: bool) -> None:
        for c in self.containers:
            c.cancel_tasks()
            if c.proc is not None and final:
                c.proc.kill()
        if not final:
            return
        k = self.k
        k.network.release(self.uid)
        unlink_mounts(self.paths)
        await asyncio.sleep(0)
        k.cgroups.remove(self.uid)
        shutil.rmtree(self.paths.root, ignore_errors=True)

    # -- status -------------------------------------------------------------------------------
    def _status(self) -> dict[str, Any]:
        spec = self.pod.get("spec") or {}
        old = (self.pod.get("status") or {}).get("conditions") or []
        apps = [self._cstatus(c) for c in self.apps]
        inits = [self._cstatus(c) for c in self.init]
        init_done = all(c.done and c.exit is not None and c.exit.exit_code == 0 for c in self.init)
        phase = self.final_phase or pod_phase(spec.get("restartPolicy", "Always"), init_done,
                                              self.init_failed, apps)
        terminal = phase in ("Succeeded", "Failed")
        unready = [c.name for c in self.apps if not c.ready]
        if terminal:
            ready_reason, ready_msg = "PodCompleted", None
        else:
            ready_reason = "ContainersNotReady" if unready else None
            ready_msg = f"containers with unready status: [{' '.join(unready)}]" if unready else None
        pending_init = [c.name for c in self.init if not c.done]
        conditions = [
            condition("PodReadyToStartContainers", self.sandbox_ready, old),
            condition("Initialized", init_done or (terminal and not self.init_failed), old,
                      "PodCompleted" if terminal and init_done and self.init else
                      (None if init_done else "ContainersNotInitialized"),
                      None if init_done else
                      f"containers with incomplete status: [{' '.join(pending_init)}]"),
            condition("Ready", not unready and not terminal, old, ready_reason, ready_msg),
            condition("ContainersReady", not unready and not terminal, old, ready_reason,
                      ready_msg),
        ]
        managed = {c["type"] for c in conditions}
        conditions += [c for c in old if c.get("type") not in managed]
        if not any(c["type"] == "PodScheduled" for c in conditions):
            conditions.append(condition("PodScheduled", True, old))
        host = self.k.host_ip
        status: dict[str, Any] = {
            "phase": phase, "conditions": conditions, "hostIP": host, "hostIPs": [{"ip": host}],
            "startTime": self.start_time, "containerStatuses": apps,
            "reason": self.reason, "message": self.message}
        if self.pod_ip:
            status.update(podIP=self.pod_ip, podIPs=[{"ip": self.pod_ip}])
        if inits:
            status["initContainerStatuses"] = inits
        return status

    def _cstatus(self, c: Container) -> dict[str, Any]:
        if not c.state:
            reason = "PodInitializing" if self.init and (c.init or not all(
                i.done for i in self.init)) else "ContainerCreating"
            c.state = {"waiting": {"reason": reason}}
        return c.status()

    async def _publish(self) -> bool:
        status = self._status()
        if status == self.published:
            return True
        try:
            await self.k.patch_status(self.pod, status)
        except Exception as exc:  # noqa: BLE001 - retried by the loop
            answered = isinstance(exc, NotFound | Conflict)  # gone, or another Pod of that name
            self.gone = self.gone or isinstance(exc, NotFound)
            log.debug("status of %s not reported: %s", self.key, exc)
            return answered
        self.published = status
        return True
