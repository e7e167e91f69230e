"""Kubeconfigs for tests of context selection.

A kubeconfig whose *current* context points at a port where nothing listens, and whose other
context (``PLANE_CONTEXT``) is the local control plane's: code that ignores a ``context=``
it was given talks to nowhere and fails, so a test of context selection can fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PLANE_CONTEXT = "the-plane"
NOWHERE = "https://127.0.0.1:9"  # the discard port: nothing answers there


def two_context_kubeconfig(plane_kubeconfig: str | Path, out: Path, *,
                           namespace: str | None = None) -> Path:
    """Write ``out``: current context ``nowhere``, plus ``PLANE_CONTEXT`` (with ``namespace``
    as its namespace when given) copied from the plane's current context."""
    config: dict[str, Any] = yaml.safe_load(Path(plane_kubeconfig).read_text())
    current = next(c for c in config["contexts"] if c["name"] == config["current-context"])
    plane = {"name": PLANE_CONTEXT, "context": dict(current["context"])}
    if namespace:
        plane["context"]["namespace"] = namespace
    config["clusters"].append({"name": "nowhere", "cluster": {"server": NOWHERE,
                                                             "insecure-skip-tls-verify": True}})
    config["contexts"] = [plane, {"name": "nowhere", "context": {
        "cluster": "nowhere", "user": current["context"]["user"]}}]
    config["current-context"] = "nowhere"
    out.write_text(yaml.safe_dump(config))
    return out
