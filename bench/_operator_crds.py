"""Our CRDs against the ones upstream's chart ships, compared as the API server would see them.

Both operators run against one set of CRDs (ours) in the benchmark, which is fair only if the
two sets describe the same objects; the report says how far apart they are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dask_kube_jobs.crds import load_crds


def _upstream_crd_dir(venv: Path) -> Path | None:
    found = sorted(venv.glob("lib/python*/site-packages/dask_kubernetes/operator/deployment/"
                             "helm/dask-kubernetes-operator/crds"))
    return found[0] if found else None


def _paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    """Every property path of an OpenAPI schema (``spec.worker.replicas``, arrays as ``[]``)."""
    out: set[str] = set()
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        out.add(path)
        out |= _paths(sub, path)
    if isinstance(schema.get("items"), dict):
        out |= _paths(schema["items"], prefix + "[]")
    return out


def _defaults(schema: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every ``default`` an OpenAPI schema declares, by property path."""
    out: dict[str, Any] = {}
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        if "default" in sub:
            out[path] = sub["default"]
        out |= _defaults(sub, path)
    if isinstance(schema.get("items"), dict):
        out |= _defaults(schema["items"], prefix + "[]")
    return out


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0].get("schema", {}).get("openAPIV3Schema", {})


def upstream_crds(venv: Path) -> list[dict[str, Any]]:
    """The CRDs upstream's Helm chart installs, or [] if its package is not there."""
    where = _upstream_crd_dir(venv)
    return [yaml.safe_load(f.read_text()) for f in sorted(where.glob("*.yaml"))] if where else []


def _summary(crd: dict[str, Any]) -> tuple[tuple[str, str, str, tuple[str, ...]], set[str]]:
    spec = crd["spec"]
    names = (spec["group"], spec["names"]["kind"], spec["names"]["plural"],
             tuple(v["name"] for v in spec["versions"]))
    return names, _paths(_schema(crd))


def compare(venv: Path) -> list[str]:
    """One line per kind: identical, or how the schemas differ (property paths only in one)."""
    where = _upstream_crd_dir(venv)
    if where is None:
        return ["upstream CRDs: not found in its virtualenv; not compared"]
    theirs, their_defaults = {}, {}
    for crd in upstream_crds(venv):
        theirs[crd["spec"]["names"]["kind"]] = _summary(crd)
        their_defaults[crd["spec"]["names"]["kind"]] = _defaults(_schema(crd))
    lines = []
    for crd in load_crds():
        kind = crd["spec"]["names"]["kind"]
        ours_defaults = _defaults(_schema(crd))
        for path, value in sorted(their_defaults.get(kind, {}).items()):
            if ours_defaults.get(path, "<none>") != value:
                lines.append(f"{kind}: upstream's schema defaults {path} to {value!r}, ours "
                             f"{'does not' if path not in ours_defaults else repr(ours_defaults[path])}")
        (group, kind, plural, versions), ours = _summary(crd)
        if kind not in theirs:
            lines.append(f"{kind}: not shipped by upstream")
            continue
        (t_group, _, t_plural, t_versions), upstream = theirs[kind]
        if (group, plural, versions) != (t_group, t_plural, t_versions):
            lines.append(f"{kind}: names differ: ours {group}/{versions} {plural}, upstream "
                         f"{t_group}/{t_versions} {t_plural}")
            continue
        only_ours, only_up = sorted(ours - upstream), sorted(upstream - ours)
        if not only_ours and not only_up:
            lines.append(f"{kind}: same group/version/names and the same schema properties")
            continue
        lines.append(f"{kind}: same group/version/names; schema property paths only in ours: "
                     f"{len(only_ours)}, only in upstream's: {len(only_up)}")
    return lines
