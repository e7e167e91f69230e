"""Who a container runs as and what of the machine it may see.

A container of the process kubelet is a host process, so without care it is the kubelet's own
user and can read the kubelet's and the control plane's files (keys, kubeconfigs, other Pods'
tokens). When the kubelet runs as root (namespace mode, see ``volumes.py``) each container:

* **runs as an unprivileged identity** (``Identity``): its ``securityContext.runAsUser`` /
  ``runAsGroup`` (the container's over the Pod's), else a uid of its own Pod. A process
  kubelet has no image whose ``USER`` could name a default, so the default "image user" is a
  per-Pod uid in ``DEFAULT_UIDS`` (a range systemd reserves for container payloads, never a
  real account), derived from the Pod's uid: two Pods share one only by a hash collision in
  2^24 values, so one Pod cannot signal, trace or read ``/proc/<pid>/root`` of another. The group is the uid's own number unless
  ``runAsGroup`` says otherwise; ``fsGroup`` and ``supplementalGroups`` are added as
  supplementary groups. ``runAsNonRoot: true`` is therefore met by the default user. An
  explicit ``runAsUser: 0`` would be the machine's root (nothing like a user namespace makes it
  a container's own), which can read every credential: such a container is refused
  (``CreateContainerConfigError``; with ``runAsNonRoot`` in the real kubelet's words).
* **sees a masked file system** (``mask_lines``): in its private mount namespace, the kubelet's
  state directory is covered by an empty tmpfs in which only the Pod's own directory and the
  Service map are bound back, and every directory the container's uid could not search on the
  way to what it needs (the Python environment, the Pod's directory, its volumes' mount points:
  ``/root`` for a pyenv Python, pytest's 0700 temporary directories) is covered the same way,
  with only those paths bound back. Other Pods' files, the kubelet's serving key and anything
  else in those directories are not in the container's view at all, whatever its uid.

When the kubelet is not root it can neither switch uid nor make mount namespaces: containers
run as the kubelet's user, and isolation between them and from the kubelet reduces to what that
user can read (``docs/local-control-plane.md``, trust model).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .env import ContainerConfigError

#: Default container uids: ``DEFAULT_UIDS.start + (hash of the Pod uid % len)``. Inside
#: systemd's range for container payloads (524288-1879048191), so no real account collides.
DEFAULT_UIDS = range(1_800_000_000, 1_800_000_000 + (1 << 24))
#: The empty directory where a mask is assembled before it is moved into place (in the
#: container's own mount namespace: the host never sees anything mounted there).
MASK_POINT = Path("/run/dask-kube-jobs-mask" if os.path.isdir("/run") else "/tmp/dask-kube-jobs-mask")


@dataclass(frozen=True)
class Identity:
    """The uid, gid and supplementary groups a container's processes run with."""

    uid: int
    gid: int
    groups: tuple[int, ...] = ()
    no_new_privs: bool = False

    def setpriv(self) -> list[str]:
        """The ``setpriv`` argv prefix that drops to this identity (capabilities go with
        root: a non-zero uid keeps none)."""
        groups = ["--groups", ",".join(map(str, self.groups))] if self.groups else \
            ["--clear-groups"]
        nnp = ["--no-new-privs"] if self.no_new_privs else []
        return ["setpriv", "--reuid", str(self.uid), "--regid", str(self.gid), *groups, *nnp,
                "--"]


@dataclass(frozen=True)
class Confinement:
    """What a container of a root kubelet is confined to: its identity (None: the kubelet's
    own, when it cannot switch), the directories it must not see (the kubelet's state) and
    what of them stays visible (its Pod's directory, the Service map)."""

    identity: Identity | None
    hide: tuple[str, ...]
    shown: tuple[str, ...]


def confine(pod: dict[str, Any], container: dict[str, Any], *, switch_user: bool,
            state_dir: Path, shown: list[str]) -> Confinement:
    """The confinement of ``container`` for a kubelet in namespace mode."""
    identity = container_identity(pod, container) if switch_user else None
    return Confinement(identity, (str(state_dir),), tuple(shown))


def can_switch_user() -> bool:
    """Whether this kubelet can run containers as other users (root, with ``setpriv``)."""
    return os.geteuid() == 0 and shutil.which("setpriv") is not None


def default_uid(pod_uid: str) -> int:
    digest = int.from_bytes(hashlib.sha256(pod_uid.encode()).digest()[:8], "big")
    return DEFAULT_UIDS[digest % len(DEFAULT_UIDS)]


def container_identity(pod: dict[str, Any], container: dict[str, Any]) -> Identity:
    """The identity ``container`` of ``pod`` runs as (see the module docstring); a
    ``ContainerConfigError`` for a ``runAsNonRoot`` container that asks for uid 0."""
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    csc = container.get("securityContext") or {}

    def pick(key: str) -> Any:
        return csc[key] if csc.get(key) is not None else psc.get(key)

    explicit = pick("runAsUser")
    uid = int(explicit) if explicit is not None else default_uid(pod["metadata"]["uid"])
    meta = pod["metadata"]
    if uid == 0 and pick("runAsNonRoot"):
        raise ContainerConfigError(
            f'container\'s runAsUser breaks non-root policy (pod: "{meta["name"]}_'
            f'{meta["namespace"]}({meta["uid"]})", container: {container.get("name", "")})')
    if uid == 0:
        raise ContainerConfigError(
            "runAsUser 0 would be this machine's root, not a container's: the process kubelet "
            "runs no container as root (it could read the control plane's credentials); "
            "leave runAsUser unset or choose another uid")
    group = pick("runAsGroup")
    gid = int(group) if group is not None else uid
    extra = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None:
        extra.insert(0, int(psc["fsGroup"]))
    groups = tuple(dict.fromkeys([gid, *extra]))
    return Identity(uid, gid, groups, csc.get("allowPrivilegeEscalation") is False)


def fs_group(pod: dict[str, Any]) -> int | None:
    value = ((pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
    return None if value is None else int(value)


def give_to_group(root: Path, gid: int, *, writable: bool) -> None:
    """``fsGroup`` on a volume: group ownership and group access for everything in it, with
    set-group-id directories so new files join the group (what the kubelet does for emptyDir,
    ConfigMap, Secret, downward API and projected volumes). Only root may give files away:
    a kubelet that is not leaves them as they are (its containers are its own user)."""
    if os.geteuid() != 0:
        return
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        os.chown(path, -1, gid)
        add = stat.S_IRGRP | (stat.S_IWGRP if writable else 0)
        if stat.S_ISDIR(mode):
            add |= stat.S_IXGRP | stat.S_ISGID
        os.chmod(path, stat.S_IMODE(mode) | add)


# -- the masked view ------------------------------------------------------------------------
def _under(path: str, ancestor: str) -> bool:
    return path != ancestor and path.startswith(ancestor.rstrip("/") + "/")


def _unsearchable_ancestors(path: str) -> list[str]:
    """Proper ancestors of ``path`` (not ``/``) that other users cannot search."""
    out = []
    parent = os.path.dirname(path)
    while parent not in ("/", ""):
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                out.append(parent)
        except OSError:
            pass
        parent = os.path.dirname(parent)
    return out


def plan_masks(hide: list[str], keep: list[str], *, searchable: bool) -> list[tuple[str, list[str]]]:
    """Which directories to cover with a tmpfs and what to bind back in each, deepest first.

    ``hide``: directories whose contents the container must not see but for ``keep`` paths
    under them. With ``searchable``, also every ancestor of a ``keep`` path that other users
    cannot search (so an unprivileged uid reaches what it keeps, and nothing else there)."""
    keep = sorted({os.path.realpath(k) for k in keep if k})
    masks = {os.path.realpath(h) for h in hide}
    if searchable:
        for k in keep:
            masks.update(_unsearchable_ancestors(k))
    plan: list[tuple[str, list[str]]] = []
    for mask in sorted(masks, key=lambda m: (-m.count("/"), m)):
        inside = sorted({k for k in [*keep, *(m for m, _ in plan)] if _under(k, mask)})
        plan.append((mask, [k for k in inside if not any(_under(k, o) for o in inside)]))
    return plan


def mask_lines(plan: list[tuple[str, list[str]]], scratch: Path, err: str) -> list[str]:
    """``sh`` lines (run as root in the container's mount namespace) carrying out ``plan``:
    for each directory a tmpfs is built at ``scratch`` (``MASK_POINT``: an empty directory
    outside anything kept, so a recursive bind never copies the tmpfs into itself), the kept
    paths are bound into it at their places, and it is moved over the directory."""
    q = shlex.quote
    s = q(str(scratch))
    lines = []
    for mask, kept in plan:
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m dkj-mask {s} 2>>{err} || exit 128")
        for k in kept:
            spot = q(str(scratch) + k[len(mask.rstrip("/")):])
            make = f"mkdir -p {spot}" if os.path.isdir(k) else \
                f"mkdir -p \"$(dirname {spot})\" && : > {spot}"
            lines.append(f"{make} 2>>{err} && mount --rbind {q(k)} {spot} 2>>{err} || exit 128")
        lines.append(f"mount --move {s} {q(mask)} 2>>{err} || exit 128")
    return lines
