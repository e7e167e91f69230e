"""Field selectors, parsed and matched the way kube-apiserver does it.

``kubectl get --field-selector``, the kubelet's watch of its own Pods (``spec.nodeName=...``)
and the Event lookups of ``kubectl describe`` rely on the server to filter. The grammar, the
escaping and the error messages follow ``k8s.io/apimachinery``'s ``fields`` package, and only
the fields a real apiserver supports for each resource are accepted (``field label not
supported: spec.foo`` otherwise, a 400 ``BadRequest``). Label selectors are ``selectors``'.
Everything here is pure: no I/O, no state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import errors

#: Fields kube-apiserver accepts in a field selector, per (group, plural). Kinds not listed
#: accept ``metadata.name`` and ``metadata.namespace`` (see :func:`supported_fields`).
SUPPORTED_FIELDS: dict[tuple[str, str], set[str]] = {
    ("", "pods"): {
        "metadata.name", "metadata.namespace", "spec.nodeName", "spec.restartPolicy",
        "spec.schedulerName", "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
        "status.podIP", "status.nominatedNodeName",
    },
    ("", "events"): {
        "metadata.name", "metadata.namespace", "involvedObject.kind",
        "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
        "involvedObject.apiVersion", "involvedObject.resourceVersion",
        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type",
    },
    ("events.k8s.io", "events"): {
        "metadata.name", "metadata.namespace", "regarding.kind", "regarding.namespace",
        "regarding.name", "regarding.uid", "regarding.apiVersion", "regarding.resourceVersion",
        "regarding.fieldPath", "reason", "reportingController", "type",
    },
    ("", "nodes"): {"metadata.name", "spec.unschedulable"},
    ("", "namespaces"): {"metadata.name", "status.phase"},
    ("", "secrets"): {"metadata.name", "metadata.namespace", "type"},
    ("", "services"): {"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"},
    ("", "replicationcontrollers"): {"metadata.name", "metadata.namespace", "status.replicas"},
    ("apps", "replicasets"): {"metadata.name", "metadata.namespace", "status.replicas"},
    ("batch", "jobs"): {"metadata.name", "metadata.namespace", "status.successful"},
    ("certificates.k8s.io", "certificatesigningrequests"): {"metadata.name", "spec.signerName"},
}
_DEFAULT_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

#: Old or alternative spellings the apiserver rewrites before matching.
_FIELD_ALIASES: dict[tuple[str, str], dict[str, str]] = {
    ("", "pods"): {"spec.host": "spec.nodeName"},
}

#: Values for fields that are not a plain path into the object, or whose default is not "".
_Extractor = Callable[[Mapping[str, Any]], Any]


def _path(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


def _first(*getters: _Extractor) -> _Extractor:
    def get(obj: Mapping[str, Any]) -> Any:
        for g in getters:
            v = g(obj)
            if v not in (None, ""):
                return v
        return None
    return get


def _p(dotted: str) -> _Extractor:
    return lambda obj: _path(obj, dotted)


def _pod_ip(obj: Mapping[str, Any]) -> Any:
    ips = _path(obj, "status.podIPs")
    if isinstance(ips, list) and ips and isinstance(ips[0], Mapping):
        return ips[0].get("ip")
    return _path(obj, "status.podIP")


def _event_fields(new_api: bool) -> dict[str, _Extractor]:
    """Events are selectable by the same fields in both APIs; read either shape of object."""
    out: dict[str, _Extractor] = {}
    for sub in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
        getter = _first(_p(f"involvedObject.{sub}"), _p(f"regarding.{sub}"))
        out[f"{'regarding' if new_api else 'involvedObject'}.{sub}"] = getter
    controller = _first(_p("reportingComponent"), _p("reportingController"))
    out["reportingController" if new_api else "reportingComponent"] = controller
    out["source"] = _first(_p("source.component"), _p("deprecatedSource.component"), controller)
    return out


_EXTRACTORS: dict[tuple[str, str], dict[str, _Extractor]] = {
    ("", "pods"): {
        "status.podIP": _pod_ip,
        "spec.hostNetwork": lambda o: bool(_path(o, "spec.hostNetwork")),
    },
    ("", "nodes"): {"spec.unschedulable": lambda o: bool(_path(o, "spec.unschedulable"))},
    ("", "events"): _event_fields(new_api=False),
    ("events.k8s.io", "events"): _event_fields(new_api=True),
    ("apps", "replicasets"): {"status.replicas": lambda o: int(_path(o, "status.replicas") or 0)},
    ("", "replicationcontrollers"): {
        "status.replicas": lambda o: int(_path(o, "status.replicas") or 0)},
    ("batch", "jobs"): {"status.successful": lambda o: int(_path(o, "status.succeeded") or 0)},
}


def supported_fields(group: str, plural: str) -> frozenset[str]:
    return frozenset(SUPPORTED_FIELDS.get((group, plural), _DEFAULT_FIELDS))


def _as_field_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return ""
    return str(value)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=", "==" or "!="
    value: str

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")
        return f"{self.field}{'!=' if self.operator == '!=' else '='}{escaped}"


@dataclass(frozen=True)
class FieldSelector:
    """ANDed ``field=value`` / ``field!=value`` terms. Fields resolve through the kind's
    extractors when it has them, else as dotted paths; a missing field reads as ``""``."""

    requirements: tuple[FieldRequirement, ...] = ()
    extractors: Mapping[str, _Extractor] = field(default_factory=dict, compare=False, repr=False)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def value_of(self, obj: Mapping[str, Any], name: str) -> str:
        getter = self.extractors.get(name)
        return _as_field_string(getter(obj) if getter else _path(obj, name))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for r in self.requirements:
            equal = self.value_of(obj, r.field) == r.value
            if equal == (r.operator == "!="):
                return False
        return True

    def exact(self, name: str) -> str | None:
        """The value ``name`` must equal, if the selector pins it (``metadata.name=x``)."""
        for r in self.requirements:
            if r.field == name and r.operator != "!=":
                return r.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split_terms(s: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for i, c in enumerate(s):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def _unescape(value: str) -> str:
    out, escaped = [], False
    for c in value:
        if escaped:
            if c not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            raise ValueError(f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if escaped:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(s: str | None, *, group: str | None = None, plural: str | None = None,
                         extra_fields: Iterable[str] = ()) -> FieldSelector:
    """Parse a ``fieldSelector`` query value.

    With ``group``/``plural`` the fields are checked against what kube-apiserver supports for
    that resource (plus ``extra_fields``, e.g. a CRD's ``selectableFields``), answering 400
    ``field label not supported: <field>`` otherwise; without them any dotted path is accepted.
    """
    if not s:
        return FieldSelector()
    reqs: list[FieldRequirement] = []
    try:
        for part in sorted(_split_terms(s)):
            if not part:
                continue
            split = _split_term(part)
            if split is None:
                raise ValueError(f"invalid selector: '{s}'; can't understand '{part}'")
            lhs, op, rhs = split
            reqs.append(FieldRequirement(lhs, op, _unescape(rhs)))
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None
    if group is None or plural is None:
        return FieldSelector(tuple(reqs))
    key = (group, plural)
    aliases = _FIELD_ALIASES.get(key, {})
    allowed = supported_fields(group, plural) | set(extra_fields)
    checked = []
    for r in reqs:
        name = aliases.get(r.field, r.field)
        if name not in allowed:
            raise errors.bad_request(f"field label not supported: {r.field}")
        checked.append(FieldRequirement(name, r.operator, r.value))
    return FieldSelector(tuple(checked), _EXTRACTORS.get(key, {}))
