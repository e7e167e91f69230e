"""Discovery documents, computed from the resource registry.

Clients learn what a server serves before they talk to it: kubectl builds its REST mapper from
discovery (``kubectl get deploy`` only works because ``/apis/apps/v1`` says ``deployments`` has
the short name ``deploy``), kr8s looks kinds up the same way and kopf scans it for CRDs. These
documents are therefore a contract, and every function here is a pure function of the
``Registry`` so that a CRD appears in discovery the moment it is registered.

Two formats exist. The legacy one is a tree of small documents (``/api``, ``/apis``,
``/api/v1``, ``/apis/<g>/<v>``). The aggregated one (``apidiscovery.k8s.io/v2``, which kubectl
1.32 asks for first through the ``Accept`` header) answers ``/api`` and ``/apis`` with every
resource of every group in one document. Both carry the same facts; the shapes below follow
what a kube-apiserver 1.32 sends, field names included.

Ordering is stable: core first (it has its own root), then the groups in the registry's
order, resources sorted by name. kubectl resolves an ambiguous name (``events``) to the first
group that serves it, so core names are never shadowed by another group.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from ...crds.k8s_schemas import KUBERNETES_VERSION
from .registry import Registry, ResourceType

#: Media type parameters of aggregated discovery, and the versions of it we can serve.
DISCOVERY_GROUP = "apidiscovery.k8s.io"
DISCOVERY_KIND = "APIGroupDiscoveryList"
DISCOVERY_VERSIONS = ("v2", "v2beta1")

#: The response kind of subresources that do not answer with the parent's kind.
#: (group, version, kind); version ``None`` means "the version being served".
_SUBRESOURCE_KINDS: dict[str, tuple[str, str | None, str]] = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "binding": ("", "v1", "Binding"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"),
    "portforward": ("", "v1", "PodPortForwardOptions"),
}
_PROXY_KINDS = {"pods": "PodProxyOptions", "services": "ServiceProxyOptions",
                "nodes": "NodeProxyOptions"}


def version_info() -> dict[str, Any]:
    """``GET /version``: the release whose schemas we serve (kubectl warns beyond +-1 minor)."""
    major, minor, _patch = KUBERNETES_VERSION.split(".")
    return {
        "major": major,
        "minor": minor,
        "gitVersion": f"v{KUBERNETES_VERSION}",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str = "127.0.0.1:6443") -> dict[str, Any]:
    """``GET /api`` (legacy format): the core group only has ``v1``."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address},
        ],
    }


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


def _group_entry(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = registry.group_versions(group)
    if not versions:
        return None
    entries = [{"groupVersion": _group_version(group, v), "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": dict(entries[0])}


def api_group_list(registry: Registry) -> dict[str, Any]:
    """``GET /apis`` (legacy format): every named group, preferred version first."""
    groups = [g for g in (_group_entry(registry, name) for name in registry.groups()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    """``GET /apis/<group>``, or None when the group is not served (a 404)."""
    if not group:
        return None
    entry = _group_entry(registry, group)
    if entry is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **entry}


def storage_version_hash(rtype: ResourceType) -> str:
    """A stable digest of where objects are stored, as kube-apiserver publishes it (8 bytes)."""
    ident = f"{rtype.group}/{rtype.storage_version}/{rtype.kind}".encode()
    return base64.b64encode(hashlib.sha256(ident).digest()[:8]).decode()


def subresource_kind(rtype: ResourceType, sub: str, version: str) -> tuple[str, str, str]:
    """(group, version, kind) a subresource of ``rtype`` answers with."""
    if sub == "proxy" and rtype.plural in _PROXY_KINDS:
        return ("", "v1", _PROXY_KINDS[rtype.plural])
    if sub in _SUBRESOURCE_KINDS:
        group, sub_version, kind = _SUBRESOURCE_KINDS[sub]
        return (group, sub_version or version, kind)
    return (rtype.group, version, rtype.kind)


def _sorted_subresources(rtype: ResourceType, version: str) -> list[tuple[str, tuple[str, ...]]]:
    return sorted(rtype.subresources(version).items())


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """``GET /api/v1`` or ``/apis/<g>/<v>``; None when that group-version is not served."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for t in types:
        entry: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            entry["shortNames"] = list(t.short_names)
        if t.categories:
            entry["categories"] = list(t.categories)
        entry["storageVersionHash"] = storage_version_hash(t)
        resources.append(entry)
        for sub, verbs in _sorted_subresources(t, version):
            sub_group, sub_version, sub_kind = subresource_kind(t, sub, version)
            sub_entry: dict[str, Any] = {
                "name": f"{t.plural}/{sub}",
                "singularName": "",
                "namespaced": t.namespaced,
            }
            # kube-apiserver names group/version only when they differ from the list's own.
            if (sub_group, sub_version) != (group, version):
                sub_entry["group"] = sub_group
                sub_entry["version"] = sub_version
            sub_entry["kind"] = sub_kind
            sub_entry["verbs"] = list(verbs)
            resources.append(sub_entry)
    document: dict[str, Any] = {"kind": "APIResourceList"}
    if group:
        document["apiVersion"] = "v1"
    document["groupVersion"] = _group_version(group, version)
    document["resources"] = resources
    return document


# -- aggregated discovery ------------------------------------------------------------------


def negotiate_discovery(accept_header: str | None) -> str | None:
    """The aggregated discovery version the client asked for first, or None for legacy.

    ``Accept`` lists media types in preference order; an aggregated one names
    ``g=apidiscovery.k8s.io;v=<version>;as=APIGroupDiscoveryList``. A plain ``application/json``
    earlier in the list means the client prefers the legacy documents.
    """
    if not accept_header:
        return None
    for media_range in accept_header.split(","):
        parts = [p.strip() for p in media_range.split(";")]
        mime = parts[0].lower()
        params: dict[str, str] = {}
        for p in parts[1:]:
            key, _, value = p.partition("=")
            params[key.strip().lower()] = value.strip().strip('"')
        if mime not in ("application/json", "application/*", "*/*"):
            continue
        if params.get("g") == DISCOVERY_GROUP and params.get("as") == DISCOVERY_KIND:
            if params.get("v") in DISCOVERY_VERSIONS:
                return params["v"]
            continue
        if "as" not in params and "g" not in params:
            return None
    return None


def discovery_content_type(version: str = "v2") -> str:
    """The Content-Type an aggregated answer must carry; clients look at it to parse the body."""
    return f"application/json;g={DISCOVERY_GROUP};v={version};as={DISCOVERY_KIND}"


def _aggregated_resource(rtype: ResourceType, version: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": rtype.plural,
        "responseKind": {"group": rtype.group, "version": version, "kind": rtype.kind},
        "scope": "Namespaced" if rtype.namespaced else "Cluster",
        "singularResource": rtype.singular,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.categories:
        entry["categories"] = list(rtype.categories)
    subresources = []
    for sub, verbs in _sorted_subresources(rtype, version):
        sub_group, sub_version, sub_kind = subresource_kind(rtype, sub, version)
        subresources.append({
            "subresource": sub,
            "responseKind": {"group": sub_group, "version": sub_version, "kind": sub_kind},
            "verbs": list(verbs),
        })
    if subresources:
        entry["subresources"] = subresources
    return entry


def _aggregated_group(registry: Registry, group: str) -> dict[str, Any] | None:
    versions = []
    for version in registry.group_versions(group):
        resources = [_aggregated_resource(t, version)
                     for t in registry.in_group_version(group, version)]
        if resources:
            versions.append({"version": version, "resources": resources, "freshness": "Current"})
    if not versions:
        return None
    metadata: dict[str, Any] = {"creationTimestamp": None}
    if group:
        metadata["name"] = group
    return {"metadata": metadata, "versions": versions}


def aggregated_discovery(registry: Registry, *, legacy: bool,
                         version: str = "v2") -> dict[str, Any]:
    """``APIGroupDiscoveryList`` for ``/api`` (``legacy=True``: the core group) or ``/apis``.

    ``version`` is the one :func:`negotiate_discovery` picked; v2beta1 has the same fields.
    Versions inside a group come preferred first, which is how clients read the preference.
    """
    groups = [""] if legacy else registry.groups()
    items = [g for g in (_aggregated_group(registry, name) for name in groups) if g]
    return {
        "kind": DISCOVERY_KIND,
        "apiVersion": f"{DISCOVERY_GROUP}/{version}",
        "metadata": {},
        "items": items,
    }
