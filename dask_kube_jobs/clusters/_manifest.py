"""Reading a DaskCluster manifest: from a dict, a YAML/JSON file, or YAML text.

One loader for everything that takes a cluster manifest from a user (the cluster API,
``KubeCluster(custom_cluster_spec=...)``, the Airflow provider's ``manifest=``), so a manifest
one of them accepts the others accept too. Mistakes are ``ValueError`` naming the argument.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..contract.names import API_VERSION

__all__ = ["load_cluster_manifest"]

_SUFFIXES = (".yaml", ".yml", ".json")


def _read(source: str | os.PathLike[str], argument: str) -> Any:
    path = Path(source).expanduser()
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{argument}: cannot read {str(path)!r}: "
                         f"{exc.strerror or exc}") from exc


def load_cluster_manifest(source: Any, *, argument: str = "manifest",
                          require_name: bool = False) -> dict[str, Any]:
    """A deep copy of a DaskCluster manifest, with ``apiVersion``, ``kind`` and ``metadata``.

    ``source`` is a mapping, a path (``os.PathLike``, or a one-line string ending in
    ``.yaml``/``.yml``/``.json``), or YAML text. ``argument`` is the name errors give it;
    ``require_name`` refuses a manifest without ``metadata.name``.

    >>> load_cluster_manifest({"metadata": {"name": "c"}, "spec": {}})["kind"]
    'DaskCluster'
    >>> load_cluster_manifest({"kind": "DaskJob", "spec": {}})
    Traceback (most recent call last):
    ...
    ValueError: manifest: must be a DaskCluster (got 'DaskJob')
    """
    if isinstance(source, Mapping):
        manifest: Any = copy.deepcopy(dict(source))
    elif isinstance(source, os.PathLike):
        manifest = _read(source, argument)
    elif isinstance(source, str):
        one_line = "\n" not in source and source.strip().endswith(_SUFFIXES)
        manifest = _read(source.strip(), argument) if one_line else yaml.safe_load(source)
    else:
        raise ValueError(f"{argument}: must be a DaskCluster dict, YAML text or a file path "
                         f"(got {type(source).__name__})")
    if not isinstance(manifest, dict) or manifest.get("kind", "DaskCluster") != "DaskCluster":
        kind = manifest.get("kind") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{argument}: must be a DaskCluster (got {kind!r})")
    if not isinstance(manifest.get("spec"), dict):
        raise ValueError(f"{argument}: a 'spec' with 'scheduler' and 'worker' is required")
    manifest.setdefault("apiVersion", API_VERSION)
    manifest.setdefault("kind", "DaskCluster")
    manifest["metadata"] = dict(manifest.get("metadata") or {})
    name = manifest["metadata"].get("name")
    if require_name and (not isinstance(name, str) or not name):
        raise ValueError(f"{argument}: metadata.name is required")
    return manifest
