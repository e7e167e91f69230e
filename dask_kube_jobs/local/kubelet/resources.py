"""What this machine offers (Node capacity) and how a container's memory limit is enforced.

Capacity is measured, never invented: ``nvidia.com/gpu`` appears only when GPUs really exist, so
a Pod that asks for one stays Pending here exactly as on a GPU-less cluster.

Memory limits use a cgroup v1 memory controller when we can write to it (root on most Linux
machines): each container gets a child cgroup of the kubelet's own memory cgroup, its processes
are placed into it by the launcher before the program starts, ``memory.limit_in_bytes`` is the
container's limit and the kernel's ``oom_kill`` counter tells us afterwards whether the kernel
killed something for exceeding it -- the same signal containerd turns into ``OOMKilled``. The
cgroup also lists *every* process of the container, including ones that called ``setsid``, so
it is the most reliable way to stop a whole process tree. Where cgroups cannot be written
(not root, cgroup v2 without delegation), a watchdog polls the RSS of the container's process
tree and kills it with the same ``OOMKilled`` outcome; ``RLIMIT_AS`` is not used because it
breaks Python with numpy (address space is not memory).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import platform
import shutil
import signal
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import psutil

from ...contract.quantity import parse_quantity

log = logging.getLogger(__name__)

def container_limits(container: dict[str, Any]) -> dict[str, Any]:
    return ((container.get("resources") or {}).get("limits")) or {}


def memory_limit_bytes(container: dict[str, Any]) -> int | None:
    value = container_limits(container).get("memory")
    if value is None:
        return None
    return int(parse_quantity(value))


# -- Node capacity -------------------------------------------------------------------------------
def _meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts:
                out[key] = int(parts[0])  # kB
    return out


def gpu_count() -> int:
    """GPUs really present: device nodes first, then ``nvidia-smi -L``."""
    devices = [p for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit()]
    if devices:
        return len(devices)
    smi = shutil.which("nvidia-smi")
    if smi:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10,
                                 check=False)
            if out.returncode == 0:
                return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))
    return 0


def node_capacity(state_dir: Path) -> dict[str, str]:
    mem_kib = _meminfo().get("MemTotal", 0)
    disk = shutil.disk_usage(state_dir)
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{mem_kib}Ki",
        "pods": "110",
        "ephemeral-storage": f"{disk.total // 1024}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
    }
    gpus = gpu_count()
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    return capacity


def pressure(state_dir: Path) -> dict[str, bool]:
    """Memory, disk and PID pressure with eviction thresholds like the kubelet's defaults."""
    info = _meminfo()
    mem = info.get("MemAvailable", 1 << 30) < 100 * 1024  # 100Mi
    disk_usage = shutil.disk_usage(state_dir)
    disk = disk_usage.free < disk_usage.total * 0.10
    pid_max = 32768
    with contextlib.suppress(OSError, ValueError):
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    procs = sum(1 for p in os.listdir("/proc") if p.isdigit())
    return {"MemoryPressure": mem, "DiskPressure": disk, "PIDPressure": procs > pid_max * 0.9}


def node_info() -> dict[str, str]:
    os_image = platform.platform()
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                os_image = line.split("=", 1)[1].strip().strip('"')
    machine_id = ""
    with contextlib.suppress(OSError):
        machine_id = Path("/etc/machine-id").read_text().strip()
    boot_id = ""
    with contextlib.suppress(OSError):
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return {
        "machineID": machine_id, "systemUUID": machine_id, "bootID": boot_id,
        "kernelVersion": platform.release(), "osImage": os_image,
        "containerRuntimeVersion": "dask-kube-jobs-process://0.1",
        "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
        "operatingSystem": "linux", "architecture": arch,
    }


# -- cgroups --------------------------------------------------------------------------------------
def _own_memory_cgroup() -> Path | None:
    base = Path("/sys/fs/cgroup/memory")
    if not (base / "cgroup.procs").exists():
        return None
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            if "memory" in controllers.split(","):
                return base / path.lstrip("/")
    return None


class CgroupManager:
    """Per-container memory cgroups under ``<own cgroup>/dkj-<id>/``; ``None`` paths when off.

    ``scope`` names this kubelet (node name and state directory), so two kubelets on one
    machine (two test sessions) never take each other's cgroups for leftovers.
    """

    def __init__(self, scope: str) -> None:
        self.root: Path | None = None
        own = _own_memory_cgroup()
        if own is None or os.environ.get("DKJ_KUBELET_NO_CGROUPS"):
            return
        root = own / f"dkj-{scope}"
        try:
            root.mkdir(exist_ok=True)
            probe = root / "probe"
            probe.mkdir(exist_ok=True)
            (probe / "memory.limit_in_bytes").write_text(str(1 << 40))
            probe.rmdir()
        except OSError as exc:
            log.info("memory cgroups unavailable (%s); using the RSS watchdog", exc)
            return
        self.root = root

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def path(self, pod_uid: str, container: str) -> Path | None:
        return None if self.root is None else self.root / pod_uid / container

    def create(self, pod_uid: str, container: str, limit: int | None) -> Path | None:
        path = self.path(pod_uid, container)
        if path is None:
            return None
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / "memory.limit_in_bytes").write_text(str(limit if limit else -1))
        except OSError as exc:
            log.warning("cannot prepare cgroup %s: %s", path, exc)
            return None
        return path

    @staticmethod
    def oom_kills(path: Path | None) -> int:
        if path is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (path / "memory.oom_control").read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
        return 0

    @staticmethod
    def pids(path: Path | None) -> list[int]:
        if path is None:
            return []
        pids: list[int] = []
        with contextlib.suppress(OSError):
            for sub in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
                with contextlib.suppress(OSError, ValueError):
                    pids += [int(x) for x in (sub / "cgroup.procs").read_text().split()]
        return pids

    def remove(self, pod_uid: str) -> None:
        if self.root is None:
            return
        pod_dir = self.root / pod_uid
        for sub in sorted((p for p in pod_dir.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                sub.rmdir()
        with contextlib.suppress(OSError):
            pod_dir.rmdir()

    def close(self) -> None:
        """Remove the (empty) cgroups of Pods that are gone and this kubelet's own root."""
        if self.root is None:
            return
        for uid in self.all_pod_uids():
            self.remove(uid)
        with contextlib.suppress(OSError):
            self.root.rmdir()

    def all_pod_uids(self) -> list[str]:
        if self.root is None:
            return []
        with contextlib.suppress(OSError):
            return [p.name for p in self.root.iterdir() if p.is_dir()]
        return []


def cgroup_scope(node_name: str, state_dir: Path) -> str:
    digest = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:8]
    return f"{node_name}-{digest}"


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (the watchdog's measure)."""
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def cpu_quantity_to_cores(value: Any) -> float:
    return float(parse_quantity(value))


def format_resource_field(resource: str, container: dict[str, Any], divisor: Any,
                          allocatable: dict[str, str]) -> str:
    """``resourceFieldRef``: limits default to the node's allocatable, rounded up like Kubernetes."""
    kind, _, name = resource.partition(".")
    values = ((container.get("resources") or {}).get(kind)) or {}
    raw = values.get(name)
    if raw is None and kind == "limits":
        raw = allocatable.get(name)
    if raw is None and kind == "requests":
        raw = "0"
    div = parse_quantity(divisor if divisor not in (None, "") else "1")
    if div == 0:
        div = Decimal(1)
    return str(math.ceil(parse_quantity(raw) / div))


# -- process trees ------------------------------------------------------------------------
def session_pids(sid: int) -> list[int]:
    out = []
    for proc in psutil.process_iter(["pid"]):
        with contextlib.suppress(psutil.Error, OSError):
            if proc.pid != os.getpid() and os.getsid(proc.pid) == sid:
                out.append(proc.pid)
    return out


def kill_pids(pids: list[int], sig: int) -> None:
    me = os.getpid()
    for pid in set(pids):
        if pid > 1 and pid != me:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)


def tree_pids(pid: int | None, cgroup: Path | None) -> list[int]:
    pids = CgroupManager.pids(cgroup)
    if pid:
        pids += session_pids(pid)
        with contextlib.suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(pid).children(recursive=True)]
    return sorted(set(pids))


def record_process(record: Path, name: str, pid: int | None, cgroup: Path | None,
                   **container: Any) -> None:
    """Remember a container's session, cgroup and monitor (``container``: what a restarted
    kubelet needs to adopt it) so a restarted kubelet can adopt it or kill what it left."""
    data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(record.read_text())
    data[name] = {"pid": pid, "cgroup": str(cgroup) if cgroup else None, "started": time.time(),
                  **container}
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(record)


def read_records(record: Path) -> dict[str, dict[str, Any]]:
    """The containers ``record_process`` remembered for one Pod, by name."""
    try:
        return dict(json.loads(record.read_text()))
    except (OSError, ValueError):
        return {}


def monitored(rec: dict[str, Any]) -> bool:
    """Whether a recorded container's monitor still runs (the container can be adopted)."""
    shim = int(rec.get("shim") or 0)
    try:
        cmdline = Path(f"/proc/{shim}/cmdline").read_bytes() if shim else b""
    except OSError:
        return False
    return b"conmon.py" in cmdline and str(rec.get("runDir") or "").encode() in cmdline


def kill_leftovers(state_dir: Path, cgroups: CgroupManager, *, keep_monitored: bool = False) -> int:
    """Kill every process a previous kubelet left behind (recorded sessions and cgroups).

    With ``keep_monitored`` (a kubelet starting again), containers whose monitor still runs are
    kept, with their Pod's cgroups, for the new kubelet to adopt."""
    pids: list[int] = []
    kept: set[str] = set()
    for procs in (state_dir / "pods").glob("*/.dkj/procs.json"):
        with contextlib.suppress(OSError, ValueError):
            for rec in json.loads(procs.read_text()).values():
                if keep_monitored and monitored(rec):
                    kept.add(procs.parent.parent.name.rsplit("_", 1)[-1])
                    continue
                pids += [int(rec["shim"])] if rec.get("shim") and monitored(rec) else []
                pid = int(rec.get("pid") or 0)
                started = float(rec.get("started") or 0)
                for p in session_pids(pid) if pid else []:
                    with contextlib.suppress(psutil.Error):
                        if psutil.Process(p).create_time() >= started - 1:
                            pids.append(p)
                pids += CgroupManager.pids(Path(rec["cgroup"]) if rec.get("cgroup") else None)
    for uid in cgroups.all_pod_uids():
        assert cgroups.root is not None
        if uid not in kept:
            pids += CgroupManager.pids(cgroups.root / uid)
    kill_pids(pids, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and not _zombie(p) for p in pids):
        time.sleep(0.05)
    for uid in cgroups.all_pod_uids():
        if uid not in kept:
            cgroups.remove(uid)
    return len(set(pids))


def _zombie(pid: int) -> bool:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    return True




def cleanup_node(state_dir: Path, node_name: str = "dkj-local-node") -> int:
    """Kill every process of a kubelet's Pods, e.g. from a supervisor after the kubelet died
    (``local down`` after a SIGKILLed kubelet). Returns how many processes were signalled."""
    cgroups = CgroupManager(cgroup_scope(node_name, state_dir))
    killed = kill_leftovers(Path(state_dir), cgroups)
    cgroups.close()
    return killed
