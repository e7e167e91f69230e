"""Which resources the API server serves, and how each behaves.

A ``ResourceType`` is everything the generic REST handlers need to know about one resource:
its names for discovery, its scope, its subresources and, for custom resources, the schema and
printer columns of each served version. Built-in types are declared here once; custom resources
are added and removed as their CustomResourceDefinitions are established and deleted, so a CRD
serves its resource as soon as it is created, as on a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
SUBRESOURCE_VERBS = ("get", "patch", "update")


@dataclass(frozen=True)
class ScaleSpec:
    """Where the scale subresource reads and writes its numbers (JSON paths like ``.spec.replicas``)."""

    spec_replicas_path: str = ".spec.replicas"
    status_replicas_path: str = ".status.replicas"
    label_selector_path: str | None = None


@dataclass(frozen=True)
class VersionInfo:
    """One served version of a resource. ``schema`` is an OpenAPI v3 schema (custom resources)."""

    name: str
    served: bool = True
    storage: bool = True
    schema: dict[str, Any] | None = None
    printer_columns: tuple[dict[str, Any], ...] = ()
    status: bool = False
    scale: ScaleSpec | None = None
    deprecated: bool = False


@dataclass(frozen=True)
class ResourceType:
    group: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    versions: tuple[VersionInfo, ...]
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    #: extra subresources beyond status/scale, e.g. {"log": ("get",), "binding": ("create",)}
    extra_subresources: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: the CRD that defines this type, None for built-ins
    crd_name: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Storage identity: one store per (group, plural), whatever version a client speaks."""
        return (self.group, self.plural)

    @property
    def builtin(self) -> bool:
        return self.crd_name is None

    @property
    def storage_version(self) -> str:
        for v in self.versions:
            if v.storage:
                return v.name
        return self.versions[0].name

    @property
    def preferred_version(self) -> str:
        """The first served version, as the apiserver's discovery orders CRD versions."""
        served = [v for v in self.versions if v.served]
        return (served or list(self.versions))[0].name

    def version(self, name: str) -> VersionInfo | None:
        for v in self.versions:
            if v.name == name and v.served:
                return v
        return None

    def api_version(self, version: str | None = None) -> str:
        version = version or self.storage_version
        return f"{self.group}/{version}" if self.group else version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def has_status(self, version: str | None = None) -> bool:
        v = self.version(version or self.storage_version)
        return bool(v and v.status)

    def scale(self, version: str | None = None) -> ScaleSpec | None:
        v = self.version(version or self.storage_version)
        return v.scale if v else None

    def subresources(self, version: str | None = None) -> dict[str, tuple[str, ...]]:
        subs: dict[str, tuple[str, ...]] = {}
        if self.has_status(version):
            subs["status"] = SUBRESOURCE_VERBS
        if self.scale(version) is not None:
            subs["scale"] = SUBRESOURCE_VERBS
        subs.update(self.extra_subresources)
        return subs

    def matches_name(self, name: str) -> bool:
        name = name.lower()
        return name in (self.plural, self.singular, self.kind.lower(), *self.short_names)


def _builtin(group: str, version: str, plural: str, kind: str, *, namespaced: bool = True,
             short: Iterable[str] = (), categories: Iterable[str] = (), status: bool = False,
             scale: ScaleSpec | None = None, verbs: Iterable[str] = STANDARD_VERBS,
             extra: dict[str, tuple[str, ...]] | None = None, singular: str | None = None,
             ) -> ResourceType:
    return ResourceType(
        group=group, plural=plural, singular=singular or kind.lower(), kind=kind,
        namespaced=namespaced,
        versions=(VersionInfo(version, status=status, scale=scale),),
        short_names=tuple(short), categories=tuple(categories), verbs=tuple(verbs),
        extra_subresources=dict(extra or {}),
    )


# Deployments and ReplicaSets report their Scale selector from spec.selector (a LabelSelector).
_REPLICAS = ScaleSpec(".spec.replicas", ".status.replicas", ".spec.selector")

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    _builtin("", "v1", "bindings", "Binding", verbs=("create",)),
    _builtin("", "v1", "configmaps", "ConfigMap", short=["cm"]),
    _builtin("", "v1", "endpoints", "Endpoints", short=["ep"], singular="endpoints"),
    _builtin("", "v1", "events", "Event", short=["ev"]),
    _builtin("", "v1", "namespaces", "Namespace", namespaced=False, short=["ns"], status=True,
             verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
             extra={"finalize": ("update",)}),
    _builtin("", "v1", "nodes", "Node", namespaced=False, short=["no"], status=True),
    _builtin("", "v1", "pods", "Pod", short=["po"], categories=["all"], status=True,
             extra={"binding": ("create",), "log": ("get",), "portforward": ("create", "get"),
                    "exec": ("create", "get"), "eviction": ("create",)}),
    _builtin("", "v1", "secrets", "Secret"),
    _builtin("", "v1", "serviceaccounts", "ServiceAccount", short=["sa"],
             extra={"token": ("create",)}),
    _builtin("", "v1", "services", "Service", short=["svc"], categories=["all"], status=True,
             extra={"proxy": ("create", "delete", "get", "patch", "update")}),
    _builtin("apps", "v1", "deployments", "Deployment", short=["deploy"], categories=["all"],
             status=True, scale=_REPLICAS),
    _builtin("apps", "v1", "replicasets", "ReplicaSet", short=["rs"], categories=["all"],
             status=True, scale=_REPLICAS),
    _builtin("coordination.k8s.io", "v1", "leases", "Lease"),
    _builtin("events.k8s.io", "v1", "events", "Event", short=["ev"]),
    _builtin("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
    _builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions",
             "CustomResourceDefinition", namespaced=False, short=["crd", "crds"],
             categories=["api-extensions"], status=True),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding",
             namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    _builtin("authorization.k8s.io", "v1", "selfsubjectaccessreviews",
             "SelfSubjectAccessReview", namespaced=False, verbs=("create",)),
    _builtin("authorization.k8s.io", "v1", "selfsubjectrulesreviews",
             "SelfSubjectRulesReview", namespaced=False, verbs=("create",)),
    _builtin("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
             namespaced=False, verbs=("create",)),
    _builtin("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview",
             namespaced=False, verbs=("create",)),
    _builtin("autoscaling", "v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler",
             short=["hpa"], categories=["all"], status=True),
    _builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", short=["pdb"],
             status=True),
)

#: Resources whose objects are never stored: a create computes an answer and returns it.
VIRTUAL_RESOURCES = {
    ("", "bindings"),
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
}

#: Group order in discovery: kube-apiserver lists the legacy-free groups in a fixed priority.
GROUP_ORDER = (
    "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling",
    "coordination.k8s.io", "policy", "rbac.authorization.k8s.io", "apiextensions.k8s.io",
    "discovery.k8s.io",
)


def type_from_crd(crd: dict[str, Any]) -> ResourceType:
    """The ResourceType a (validated) CustomResourceDefinition declares."""
    spec = crd["spec"]
    names = spec["names"]
    versions = []
    for v in spec["versions"]:
        subs = v.get("subresources") or {}
        scale = None
        if "scale" in subs and subs["scale"] is not None:
            s = subs["scale"]
            scale = ScaleSpec(
                s.get("specReplicasPath", ".spec.replicas"),
                s.get("statusReplicasPath", ".status.replicas"),
                s.get("labelSelectorPath"),
            )
        versions.append(VersionInfo(
            name=v["name"], served=v.get("served", True), storage=v.get("storage", False),
            schema=(v.get("schema") or {}).get("openAPIV3Schema"),
            printer_columns=tuple(v.get("additionalPrinterColumns") or ()),
            status="status" in subs, scale=scale, deprecated=bool(v.get("deprecated")),
        ))
    return ResourceType(
        group=spec["group"], plural=names["plural"],
        singular=names.get("singular") or names["kind"].lower(), kind=names["kind"],
        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
        versions=tuple(versions), short_names=tuple(names.get("shortNames") or ()),
        categories=tuple(names.get("categories") or ()), crd_name=crd["metadata"]["name"],
    )


class Registry:
    """The live set of served resource types; listeners hear of every change (OpenAPI caches)."""

    def __init__(self, types: Iterable[ResourceType] = BUILTIN_TYPES) -> None:
        self._types: dict[tuple[str, str], ResourceType] = {}
        self._listeners: list[Callable[[], None]] = []
        for t in types:
            self._types[t.key] = t

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def add(self, rtype: ResourceType) -> None:
        self._types[rtype.key] = rtype
        self._changed()

    def remove(self, group: str, plural: str) -> None:
        if self._types.pop((group, plural), None) is not None:
            self._changed()

    def get(self, group: str, plural: str) -> ResourceType | None:
        return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """The type served at ``/apis/<group>/<version>/<plural>``, if that version is served."""
        t = self._types.get((group, plural))
        if t is None or t.version(version) is None:
            return None
        return t

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for t in self._types.values():
            if t.group == group and t.kind == kind:
                return t
        return None

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> list[str]:
        """Served group names (core ``""`` excluded) in discovery order."""
        names = {t.group for t in self._types.values() if t.group}
        ordered = [g for g in GROUP_ORDER if g in names]
        return ordered + sorted(names - set(ordered))

    def group_versions(self, group: str) -> list[str]:
        """Versions served in a group, preferred first."""
        out: list[str] = []
        types = [t for t in self._types.values() if t.group == group]
        for t in types:
            if t.preferred_version not in out:
                out.append(t.preferred_version)
        for t in types:
            for v in t.versions:
                if v.served and v.name not in out:
                    out.append(v.name)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return sorted(
            (t for t in self._types.values() if t.group == group and t.version(version)),
            key=lambda t: t.plural,
        )
