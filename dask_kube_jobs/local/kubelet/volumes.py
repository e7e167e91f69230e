"""Pod volumes: materialised per Pod under the state dir and made visible at their mountPath.

Contents are written the way the kubelet's atomic writer does (a timestamped directory, a
``..data`` symlink swapped atomically, top-level symlinks into it), so ConfigMap, Secret and
downward API volumes can be refreshed while a container runs and readers never see half a file.

How a process sees a volume at its ``mountPath`` without container images:

* **namespace mode** (chosen when ``unshare --mount`` works, i.e. as root on Linux -- true on
  this project's CI): each container runs in its own private mount namespace, and a small
  ``sh`` prologue bind-mounts every volume (and ``subPath``) over its mountPath before
  ``exec``-ing the program. Mounts are invisible to the host and to other Pods, so two Pods can
  mount different things at the same path, like on a real node. The per-container termination
  message file is bound over ``terminationMessagePath`` (``/dev/termination-log`` by default) and
  the ServiceAccount files over ``/var/run/secrets/kubernetes.io/serviceaccount``. Missing mount
  points are created (empty) on the host, as Docker does for bind mounts.
* **symlink mode** (fallback, e.g. not root): the mountPath is created as a symlink to the
  materialised directory, but only when nothing is there or it is already one of our symlinks;
  nothing else on the host is touched. Two Pods mounting the same path differently conflict
  (the last one wins), and the termination message and ServiceAccount files are only reachable
  through ``DKJ_TERMINATION_MESSAGE_PATH`` and ``KUBECONFIG``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import field_ref, format_map
from .resources import format_resource_field
from .sandbox import fs_group, give_to_group

SA_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
Fetch = Callable[[str, str, str], Awaitable["dict[str, Any] | None"]]


class VolumeError(Exception):
    """A volume cannot be set up yet (event ``FailedMount``; retried)."""


@dataclass(frozen=True)
class PodPaths:
    """Where a Pod's files live; logs follow the layout the log server reads."""

    root: Path

    @classmethod
    def of(cls, state_dir: Path, pod: dict[str, Any]) -> PodPaths:
        m = pod["metadata"]
        return cls(state_dir / "pods" / f"{m['namespace']}_{m['name']}_{m['uid']}")

    @property
    def private(self) -> Path:
        return self.root / ".dkj"

    @property
    def volumes(self) -> Path:
        return self.private / "volumes"

    @property
    def home(self) -> Path:
        return self.private / "home"

    @property
    def tmp(self) -> Path:
        """The container's ``TMPDIR``: its own, since the host's ``/tmp`` is shared."""
        return self.private / "tmp"

    @property
    def service_account(self) -> Path:
        return self.private / "serviceaccount"

    @property
    def kubeconfig(self) -> Path:
        return self.private / "kubeconfig"

    @property
    def procs(self) -> Path:
        return self.private / "procs.json"

    def termination(self, container: str) -> Path:
        return self.private / "termination" / container

    def start_error(self, container: str) -> Path:
        return self.private / "start-error" / container

    def logs(self, container: str) -> Path:
        return self.root / container


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool
    is_file: bool


def detect_mode() -> str:
    forced = os.environ.get("DKJ_KUBELET_MOUNT_MODE")
    if forced in ("namespace", "symlink"):
        return forced
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([unshare, "--mount", "--propagation", "private", "true"],
                                  capture_output=True, timeout=10, check=False)
            if done.returncode == 0:
                return "namespace"
    return "symlink"


# -- atomic writer --------------------------------------------------------------------------
def write_atomic(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make ``target`` hold exactly ``files`` (relative path -> (content, mode)), atomically."""
    target.mkdir(parents=True, exist_ok=True)
    data_link = target / "..data"
    if data_link.is_symlink() and _same_content(data_link, files):
        return
    stamp = dt.datetime.now(dt.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
    fresh = target / stamp
    fresh.mkdir()
    for rel, (content, mode) in files.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    old = os.readlink(data_link) if data_link.is_symlink() else None
    tmp_link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    tmp_link.symlink_to(stamp)
    tmp_link.replace(data_link)
    tops = {rel.split("/", 1)[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in tops:
            entry.unlink()
    if old:
        shutil.rmtree(target / old, ignore_errors=True)


def _same_content(data_link: Path, files: dict[str, tuple[bytes, int]]) -> bool:
    current = data_link.resolve()
    existing = {str(p.relative_to(current)) for p in current.rglob("*") if p.is_file()}
    if existing != set(files):
        return False
    for rel, (content, mode) in files.items():
        path = current / rel
        if path.read_bytes() != content or (path.stat().st_mode & 0o7777) != mode:
            return False
    return True


# -- sources --------------------------------------------------------------------------------
def _kv_files(data: dict[str, bytes], items: list[dict[str, Any]] | None, mode: int,
              kind: str, name: str, optional: bool) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    out: dict[str, tuple[bytes, int]] = {}
    for item in items:
        if item["key"] not in data:
            if optional:
                continue
            raise VolumeError(f"configmap references non-existent config key: {item['key']}"
                              if kind == "ConfigMap" else
                              f"references non-existent secret key: {item['key']}")
        out[item.get("path") or item["key"]] = (data[item["key"]], item.get("mode", mode))
    return out


async def _object_files(fetch: Fetch, kind: str, namespace: str, src: dict[str, Any],
                        mode: int) -> dict[str, tuple[bytes, int]]:
    name = src.get("name") or src.get("secretName") or ""
    obj = await fetch("secrets" if kind == "Secret" else "configmaps", namespace, name)
    if obj is None:
        if src.get("optional"):
            return {}
        raise VolumeError(f'{kind.lower()} "{name}" not found')
    data: dict[str, bytes] = {}
    if kind == "Secret":
        for k, v in (obj.get("data") or {}).items():
            data[k] = base64.b64decode(v)
    else:
        data.update({k: str(v).encode() for k, v in (obj.get("data") or {}).items()})
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return _kv_files(data, src.get("items"), mode, kind, name, bool(src.get("optional")))


def _downward_files(pod: dict[str, Any], items: list[dict[str, Any]], mode: int, pod_ip: str,
                    host_ip: str, allocatable: dict[str, str]) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    containers = (pod.get("spec") or {}).get("containers") or []
    for item in items:
        if "fieldRef" in item:
            path = item["fieldRef"]["fieldPath"]
            meta = pod.get("metadata") or {}
            if path in ("metadata.labels", "metadata.annotations"):
                value = format_map(meta.get(path.split(".")[1]) or {})
            else:
                value = field_ref(pod, path, pod_ip, host_ip)
        else:
            ref = item["resourceFieldRef"]
            target = next((c for c in containers if c.get("name") == ref.get("containerName")),
                          containers[0] if containers else {})
            value = format_resource_field(ref["resource"], target, ref.get("divisor"), allocatable)
        out[item["path"]] = (value.encode(), item.get("mode", mode))
    return out


@dataclass
class VolumeContext:
    pod: dict[str, Any]
    paths: PodPaths
    fetch: Fetch
    token: Callable[[int, str], Awaitable[str]]  # (expirationSeconds, audience) -> token
    pod_ip: str
    host_ip: str
    allocatable: dict[str, str]
    ca_pem: bytes | None
    pvc_root: Path


async def materialise(ctx: VolumeContext) -> dict[str, Path]:
    """Write every volume of the Pod; returns volume name -> host path."""
    pod = ctx.pod
    ns = pod["metadata"]["namespace"]
    out: dict[str, Path] = {}
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        name = vol["name"]
        target = ctx.paths.volumes / name
        if "emptyDir" in vol:
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(0o777)
        elif "hostPath" in vol:
            target = _host_path(vol["hostPath"])
        elif "configMap" in vol or "secret" in vol:
            kind = "ConfigMap" if "configMap" in vol else "Secret"
            src = vol["configMap"] if kind == "ConfigMap" else vol["secret"]
            write_atomic(target, await _object_files(ctx.fetch, kind, ns, src,
                                                     src.get("defaultMode", 0o644)))
        elif "downwardAPI" in vol:
            src = vol["downwardAPI"]
            write_atomic(target, _downward_files(pod, src.get("items") or [],
                                                 src.get("defaultMode", 0o644), ctx.pod_ip,
                                                 ctx.host_ip, ctx.allocatable))
        elif "projected" in vol:
            write_atomic(target, await _projected(ctx, vol["projected"]))
        elif "persistentVolumeClaim" in vol:
            # A node-local directory per claim that outlives the Pod, like a local PV.
            target = ctx.pvc_root / ns / vol["persistentVolumeClaim"]["claimName"]
            if not target.exists():  # writable by the Pods' uids, as a fresh local volume
                target.mkdir(parents=True)
                target.chmod(0o777)
        else:
            kinds = [k for k in vol if k != "name"]
            raise VolumeError(f"volume type {kinds} is not supported by the process kubelet")
        group = fs_group(pod)
        if group is not None and "hostPath" not in vol and "persistentVolumeClaim" not in vol:
            give_to_group(target, group, writable="emptyDir" in vol)
        out[name] = target
    return out


def make_home(paths: PodPaths) -> None:
    """The Pod's home and temporary directories, writable by any uid its containers run as
    (only the Pod's own containers can see them: ``sandbox``), sticky as ``/tmp`` is."""
    for d in (paths.home, paths.tmp):
        d.mkdir(parents=True, exist_ok=True)
        d.chmod(0o1777)


async def _projected(ctx: VolumeContext, spec: dict[str, Any]) -> dict[str, tuple[bytes, int]]:
    mode = spec.get("defaultMode", 0o644)
    ns = ctx.pod["metadata"]["namespace"]
    files: dict[str, tuple[bytes, int]] = {}
    for source in spec.get("sources") or []:
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            token = await ctx.token(int(sat.get("expirationSeconds", 3607)), sat.get("audience", ""))
            files[sat["path"]] = (token.encode(), mode)
        elif "configMap" in source:
            files.update(await _object_files(ctx.fetch, "ConfigMap", ns, source["configMap"], mode))
        elif "secret" in source:
            files.update(await _object_files(ctx.fetch, "Secret", ns, source["secret"], mode))
        elif "downwardAPI" in source:
            files.update(_downward_files(ctx.pod, source["downwardAPI"].get("items") or [], mode,
                                         ctx.pod_ip, ctx.host_ip, ctx.allocatable))
    return files


def _host_path(spec: dict[str, Any]) -> Path:
    path = Path(spec["path"])
    kind = spec.get("type") or ""
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    elif kind in ("Directory", "File", "Socket", "CharDevice", "BlockDevice") and not path.exists():
        raise VolumeError(f"hostPath type check failed: {path} is not a {kind}")
    return path


def write_service_account(paths: PodPaths, token: str, ca_pem: bytes | None, namespace: str,
                          server: str) -> None:
    """The standard token/ca.crt/namespace files plus a per-Pod kubeconfig using that token."""
    import yaml

    files = {"token": (token.encode(), 0o644), "namespace": (namespace.encode(), 0o644)}
    if ca_pem:
        files["ca.crt"] = (ca_pem, 0o644)
    write_atomic(paths.service_account, files)
    cluster: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": "pod", "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "local", "user": "pod",
                                                 "namespace": namespace}}],
        "current-context": "pod",
    }
    tmp = paths.kubeconfig.with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.chmod(0o644)  # for the container's uid; no other Pod can see it (``sandbox``)
    tmp.replace(paths.kubeconfig)


# -- mounts ---------------------------------------------------------------------------------
def container_mounts(container: dict[str, Any], volumes: dict[str, Path], paths: PodPaths, *,
                     sa_mounted: bool) -> list[Mount]:
    mounts: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        source = volumes.get(vm["name"])
        if source is None:
            raise VolumeError(f'volume "{vm["name"]}" not found in the Pod spec')
        sub = vm.get("subPath")
        if sub:
            source = source / sub
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(source, vm["mountPath"], bool(vm.get("readOnly")), source.is_file()))
    if sa_mounted and not any(m.target.rstrip("/") == SA_PATH for m in mounts):
        mounts.append(Mount(paths.service_account, SA_PATH, True, False))
    term = container.get("terminationMessagePath") or "/dev/termination-log"
    mounts.append(Mount(paths.termination(container["name"]), term, False, True))
    return sorted(mounts, key=lambda m: len(Path(m.target).parts))


def resolve_host(path: str, mounts: list[Mount], mode: str) -> Path:
    """Where ``path`` as the container sees it lives on the host (for executable checks)."""
    if mode == "namespace":
        for m in sorted(mounts, key=lambda m: -len(m.target)):
            target = m.target.rstrip("/")
            if path == target or path.startswith(target + "/"):
                return Path(str(m.source) + path[len(target):])
    return Path(path)


def link_mounts(mounts: list[Mount], paths: PodPaths) -> list[str]:
    """Symlink mode: create mountPath symlinks where allowed; returns warnings."""
    warnings = []
    state_root = str(paths.root.parent)
    created = []
    for m in mounts:
        if m.target.startswith("/dev/") or m.target.rstrip("/") == SA_PATH:
            continue
        link = Path(m.target)
        if link.is_symlink() and os.readlink(link).startswith(state_root):
            link.unlink()
        if link.exists() or link.is_symlink():
            warnings.append(f"{m.target} exists on this machine; volume not visible there")
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(m.source)
        created.append(str(link))
    if created:
        paths.private.mkdir(parents=True, exist_ok=True)
        with (paths.private / "links").open("a") as fh:
            fh.write("".join(f"{c}\n" for c in created))
    return warnings


def unlink_mounts(paths: PodPaths) -> None:
    """Remove symlinks of symlink mode that still point into this Pod's directory."""
    record = paths.private / "links"
    with contextlib.suppress(OSError):
        for line in record.read_text().splitlines():
            link = Path(line)
            if link.is_symlink() and os.readlink(link).startswith(str(paths.root)):
                link.unlink()


def _relative_under(path: str, ancestor: str) -> str | None:
    """``path`` relative to ``ancestor`` when strictly below it, else None."""
    ancestor = ancestor.rstrip("/") or "/"
    prefix = ancestor if ancestor == "/" else ancestor + "/"
    if path != ancestor and path.startswith(prefix):
        return path[len(prefix):]
    return None


def environment_paths(error_file: Path) -> list[str]:
    """What every container needs whatever it mounts (real paths, sorted): the Python
    environment the Pod's "image" is (prefixes, import path) and the kubelet's state (Pod
    home, kubeconfig, start-error file)."""
    state = next((p.parent for p in error_file.parents if p.name == "pods"), error_file.parent)
    # this package's own tree too: with an editable install it is not on sys.path
    package_home = str(Path(__file__).resolve().parents[3])
    candidates = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(state), package_home}
    candidates.update(p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p))
    return sorted({os.path.realpath(c) for c in candidates})


def kept_paths(error_file: Path) -> list[str]:
    """``environment_paths`` without nested entries: keeping a parent keeps them."""
    out: list[str] = []
    for path in environment_paths(error_file):
        if path != "/" and not any(_relative_under(path, kept) is not None or path == kept
                                   for kept in out):
            out.append(path)
    return out


def launch_script(mounts: list[Mount], mode: str, *, cgroup: Path | None, workdir: str,
                  error_file: Path, masks: Sequence[str] = (), run_as: Sequence[str] = ()) -> str:
    """The ``sh`` prologue that joins the cgroup, mounts, masks what the container must not
    see (``masks``: ``sandbox.mask_lines``), changes directory and execs the program, through
    ``run_as`` (``Identity.setpriv``) when it drops to another user."""
    q = shlex.quote
    err = q(str(error_file))
    lines = []
    if cgroup is not None:
        lines.append(f"echo $$ > {q(str(cgroup / 'cgroup.procs'))} 2>>{err} || exit 128")
    if mode == "namespace":
        kept = kept_paths(error_file)
        for m in mounts:
            t = q(m.target)
            if m.is_file:
                make = f"[ -e {t} ] || {{ mkdir -p \"$(dirname {t})\" && : > {t}; }}"
            else:
                make = f"[ -d {t} ] || mkdir -p {t}"
                # A volume mounted above the Python environment or the kubelet's own files
                # (an emptyDir on /tmp, say) would hide what the container runs on: carry them
                # into the volume first, so the recursive bind below keeps them at their paths.
                for keep in kept:
                    inside = _relative_under(keep, m.target)
                    if inside is None or _relative_under(keep, str(m.source)) is not None:
                        continue
                    spot = q(str(m.source / inside))
                    lines.append(f"mkdir -p {spot} 2>>{err} && mount --rbind {q(keep)} {spot} "
                                 f"2>>{err} || exit 128")
            lines.append(f"{make} 2>>{err} || exit 128")
            bind = "--bind" if m.is_file else "--rbind"
            lines.append(f"mount {bind} {q(str(m.source))} {t} 2>>{err} || exit 128")
        for m in mounts:
            if m.read_only:
                lines.append(f"mount -o remount,bind,ro {q(m.target)} 2>>{err} || exit 128")
        lines.extend(masks)
    lines.append(f"mkdir -p {q(workdir)} 2>>{err} && cd {q(workdir)} 2>>{err} || exit 128")
    lines.append(" ".join(["exec", *map(q, run_as), '"$@"']))
    return "\n".join(lines)
