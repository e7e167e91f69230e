"""The chart under test, rendered and linted by the real Helm engine (helm-python-sdk).

``helm_python`` binds Helm 4's Go SDK through its C ABI, so rendering, schema validation and lint
here are exactly what ``helm template`` / ``helm lint`` / ``helm install`` do, with no helm binary.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "dask-kube-jobs"
PACKAGE_CRDS = ROOT / "dask_kube_jobs" / "crds"
RELEASE = "dkj"
RELEASE_NAMESPACE = "dask-operator"
FULLNAME = f"{RELEASE}-dask-kube-jobs"
#: libyaml's parser when PyYAML has it (its wheels do): the same documents, many times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

#: The two RBAC modes, as values; ids read in test names.
MODES: dict[str, dict[str, Any]] = {
    "cluster": {"rbac": {"scope": "cluster"}},
    "namespaced": {"rbac": {"scope": "namespaced"}, "watchNamespaces": ["team-a", "team-b"]},
}

#: Kinds whose objects are cluster-scoped (what a Role can never grant).
CLUSTER_SCOPED_RESOURCES = {
    "namespaces", "nodes", "persistentvolumes", "customresourcedefinitions", "clusterroles",
    "clusterrolebindings", "storageclasses", "priorityclasses", "clusterkopfpeerings",
    "mutatingwebhookconfigurations", "validatingwebhookconfigurations", "apiservices",
    "certificatesigningrequests", "csidrivers", "csinodes", "runtimeclasses", "volumeattachments",
    "ingressclasses", "tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews",
    "componentstatuses",
}


def helm() -> Any:
    import helm_python

    return helm_python


def render(values: dict[str, Any] | None = None, *,
           namespace: str = RELEASE_NAMESPACE) -> dict[str, str]:
    """Template path -> rendered text (``helm template``), schema-checked like an install."""
    chart = helm().Chart.load(str(CHART_DIR))
    try:
        return dict(chart.render(values or {}, name=RELEASE, namespace=namespace, is_install=True))
    finally:
        chart.close()


def objects(values: dict[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
    """Every Kubernetes object the templates render (NOTES.txt left out)."""
    out = []
    for path, text in sorted(render(values, **kw).items()):
        if path.endswith("NOTES.txt"):
            continue
        out += [doc for doc in yaml.safe_load_all(text) if doc]
    return out


def notes(values: dict[str, Any] | None = None) -> str:
    return next(t for p, t in render(values).items() if p.endswith("NOTES.txt"))


def notes_submit_command(text: str) -> str:
    """The NOTES' "submit a job" command: ``kubectl ... apply -f - <<'EOF'``, the manifest, ``EOF``."""
    start = text.index("kubectl --namespace <namespace> apply -f - <<'EOF'\n")
    end = text.index("\nEOF\n", start) + len("\nEOF\n")
    return text[start:end]


@functools.cache
def crd_objects() -> tuple[dict[str, Any], ...]:
    """The chart's CRDs, parsed once per session (1.4 MB of YAML: seconds per parse, which
    every test that read them paid again). Shared between tests: read them, never change them."""
    return tuple(doc for path in sorted((CHART_DIR / "crds").glob("*.yaml"))
                 for doc in yaml.load_all(path.read_text(), Loader=_LOADER) if doc)


def of_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {[o['metadata']['name'] for o in found]}"
    return found[0]
