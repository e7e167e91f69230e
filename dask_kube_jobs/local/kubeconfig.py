"""Writing kubeconfig files for the local control plane.

A kubeconfig is the only thing a client needs to find and trust the local API server, exactly
as for a real cluster, so kubectl, kr8s, kopf, Helm and the official client all start from one.
Files are written atomically and readable only by their owner: they hold bearer tokens.
"""

from __future__ import annotations

import base64
import os
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


def write(path: Path, config: dict[str, Any]) -> Path:
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    tmp.replace(path)
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
