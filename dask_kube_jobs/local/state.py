"""Where a local control plane keeps its files.

One directory per control plane, named after its kubeconfig, so several can run side by side
(each test session, each user) and ``local down --kubeconfig X`` finds the one ``up`` started.
It holds the API server's objects (``objects.db``, so ``local down`` + ``local up`` keeps
them), the token-signing key (so ``local kubeconfig --user`` can mint identities offline), the
CA and certificates, the endpoint record of the running process, what ``local up`` added to
the user's kubeconfig, component logs and the kubelet's per-Pod directories. Keeping the key, the CA and the port across restarts is what
keeps minted kubeconfigs working; ``local down --purge`` removes the whole directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from . import kubeconfig


def default_state_root() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "dask-kube-jobs"


def state_dir_for(kubeconfig: Path) -> Path:
    digest = hashlib.sha256(str(kubeconfig.expanduser().resolve()).encode()).hexdigest()[:12]
    return default_state_root() / f"local-{digest}"


@dataclass(frozen=True)
class StateDir:
    root: Path

    @property
    def key(self) -> Path:
        return self.root / "token-signing.key"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def endpoint(self) -> Path:
        return self.root / "endpoint.json"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def kubectl_context(self) -> Path:
        """What ``local up`` added to the user's kubeconfig, for ``local down`` to remove
        (``kubectl_context.py``)."""
        return self.root / "kubectl-context.json"

    @property
    def objects(self) -> Path:
        """The API server's SQLite file (``apiserver.sqlite_backend``)."""
        return self.root / "objects.db"

    def previous_port(self) -> int | None:
        """The port the API server last served on, read from the admin kubeconfig it wrote."""
        try:
            return urlsplit(kubeconfig.server_of(kubeconfig.read(self.admin_kubeconfig))).port
        except (OSError, ValueError, KeyError, IndexError, TypeError, StopIteration,
                yaml.YAMLError):
            return None

    def purge(self) -> bool:
        """Remove everything the control plane kept (objects, keys, CA, logs); True if any."""
        if not self.root.exists():
            return False
        shutil.rmtree(self.root)
        return True

    @property
    def node_kubeconfig(self) -> Path:
        """The kubelet's credentials: a node identity, never admin."""
        return self.root / "node.kubeconfig"

    def prepare(self) -> None:
        for d in (self.root, self.pki, self.logs, self.kubelet):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)

    def write_endpoint(self, record: dict[str, Any]) -> None:
        tmp = self.endpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.endpoint)

    def read_endpoint(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.endpoint.read_text())  # type: ignore[no-any-return]
        except (FileNotFoundError, ValueError):
            return None

    def clear_endpoint(self) -> None:
        self.endpoint.unlink(missing_ok=True)
