"""Writing kubeconfig files for the local control plane.

A kubeconfig is the only thing a client needs to find and trust the local API server, exactly
as for a real cluster, so kubectl, kr8s, kopf, Helm and the official client all start from one.
Files are written atomically and readable only by their owner (unless asked otherwise): they
hold bearer tokens.

A kubeconfig that others share (the user's ``~/.kube/config``) is never rewritten whole:
:func:`merge` adds or replaces the entries of one name and :func:`remove` takes them out
again, keeping every other cluster, user and context, as kind and minikube do. Both hold
``<file>.lock`` while they read and write, the lock file client-go (``kubectl config``) takes,
so neither loses a change kubectl makes at the same moment.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

DEFAULT_KUBECONFIG = Path("~/.kube/dask-kube-jobs-local.yaml")
CLUSTER_NAME = "dask-kube-jobs-local"


def build(server: str, token: str, *, ca_pem: bytes | None, user: str = "admin",
          namespace: str = "default", context: str = CLUSTER_NAME) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is not None:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": context, "context": {"cluster": CLUSTER_NAME, "user": user,
                                                    "namespace": namespace}}],
        "current-context": context,
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any], *, mode: int = 0o600) -> Path:
    """Write ``config`` to ``path`` at once (a reader never sees half a file) with ``mode``.

    A symbolic link (a dotfiles repository's ``~/.kube/config``) is written through, not
    replaced by a file."""
    path = path.expanduser()
    if path.is_symlink():
        path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, mode)  # exactly ``mode``, whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yaml.safe_dump(config, fh, sort_keys=False)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read(path: Path) -> dict[str, Any]:
    with path.expanduser().open("r", encoding="utf-8") as fh:
        return yaml.safe_load(fh) or {}


def server_of(config: dict[str, Any]) -> str:
    current = config.get("current-context")
    ctx = next((c["context"] for c in config.get("contexts", []) if c["name"] == current), None)
    name = ctx["cluster"] if ctx else config["clusters"][0]["name"]
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == name)
    return str(cluster["server"])


def kubectl_kubeconfig(environ: Mapping[str, str] = os.environ) -> Path:
    """The file kubectl adds a new context to: with ``$KUBECONFIG``, its first file that exists
    (else its first file); without, ``~/.kube/config`` (client-go's ``GetDefaultFilename``)."""
    files = [f for f in environ.get("KUBECONFIG", "").split(os.pathsep) if f]
    if not files:
        return Path("~/.kube/config").expanduser()
    for f in files:
        if Path(f).expanduser().exists():
            return Path(f).expanduser()
    return Path(files[0]).expanduser()


class KubeconfigLocked(RuntimeError):
    """Another program holds the kubeconfig's lock file for longer than we wait."""


@contextlib.contextmanager
def locked(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Hold ``<path>.lock`` (created exclusively, as client-go's ``lockFile`` does)."""
    lock = Path(f"{path}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise KubeconfigLocked(
                    f"{lock} exists: another program is changing {path}, or one that crashed "
                    "left the lock behind (remove it if no kubectl runs)") from None
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _read_shared(path: Path) -> dict[str, Any]:
    try:
        config = read(path)
    except FileNotFoundError:
        return {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a kubeconfig (not a YAML mapping); nothing was changed")
    return config


def _named(config: dict[str, Any], section: str, name: str) -> dict[str, Any] | None:
    return next((e for e in config.get(section) or [] if e.get("name") == name), None)


def _entry(config: dict[str, Any], section: str, name: str) -> dict[str, Any]:
    found = _named(config, section, name)
    if found is None:
        raise ValueError(f"the kubeconfig has no {section[:-1]} named {name!r}")
    return found


def merge(path: Path, source: dict[str, Any], *, name: str, switch: bool) -> str:
    """Add the cluster, user and context that ``source`` uses (a kubeconfig :func:`build`
    made) to the kubeconfig at ``path``, all three named ``name``, replacing entries of that
    name and keeping every other; make it the current context if ``switch``. Returns the
    current context before (empty if none)."""
    current = source["current-context"]
    context = dict(_entry(source, "contexts", current)["context"])
    cluster = _entry(source, "clusters", context["cluster"])["cluster"]
    user = _entry(source, "users", context["user"])["user"]
    context.update(cluster=name, user=name)
    path = path.expanduser()
    with locked(path):
        config = _read_shared(path)
        previous = str(config.get("current-context") or "")
        config.setdefault("apiVersion", "v1")
        config.setdefault("kind", "Config")
        for section, body in (("clusters", cluster), ("users", user), ("contexts", context)):
            key = section[:-1]
            entries = [e for e in config.get(section) or [] if e.get("name") != name]
            config[section] = [*entries, {"name": name, key: body}]
        if switch or not previous:
            config["current-context"] = name
        write(path, config, mode=_mode_of(path))
    return previous


def remove(path: Path, *, name: str, server: str, restore: str = "",
           remove_empty: bool = False) -> str | None:
    """Take the cluster, user and context ``name`` out of the kubeconfig at ``path``, if its
    cluster still points at ``server`` (else another control plane has taken the name since:
    leave it). A current context of ``name`` becomes ``restore`` if that context is still there,
    else none. ``remove_empty`` deletes a file left with no entries at all. Returns the current
    context after (None: nothing was ours to remove)."""
    path = path.expanduser()
    with locked(path):
        config = _read_shared(path)
        cluster = _named(config, "clusters", name)
        if cluster is None or (cluster.get("cluster") or {}).get("server") != server:
            return None
        for section in ("clusters", "users", "contexts"):
            config[section] = [e for e in config.get(section) or [] if e.get("name") != name]
        if config.get("current-context") == name:
            config["current-context"] = restore if _named(config, "contexts", restore) else ""
        if remove_empty and not any(config.get(s) for s in ("clusters", "users", "contexts")):
            path.unlink()
        else:
            write(path, config, mode=_mode_of(path))
        return str(config.get("current-context") or "")


def _mode_of(path: Path) -> int:
    """The permission bits of the file at ``path`` (0600 for a new one), kept when rewritten."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        return 0o600
