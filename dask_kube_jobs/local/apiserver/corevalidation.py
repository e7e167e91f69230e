"""Validation of Services, ConfigMaps, Secrets and RBAC objects, as kube-apiserver 1.32 does it
(``pkg/apis/core/validation`` and ``pkg/apis/rbac/validation``), with its paths and messages.

These are the kinds the project's chart, its operator and its users write besides Pods (which
are ``podvalidation``'s). Each function is one kind's rules and is registered in ``builtins``'
``VALIDATORS`` table; names are ObjectMeta's and are checked by ``objectmeta`` for every kind.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import TYPE_CHECKING, Any

from .errors import Cause
from .fielderrors import duplicate, invalid, not_supported, required, too_long
from .objectmeta import is_dns1123_label, is_dns1123_subdomain, regex_error, validate_labels
from .podvalidation import port_name_errors, port_number_errors

if TYPE_CHECKING:
    from .builtins import Context

Obj = dict[str, Any]

#: The most a ConfigMap's or Secret's data may hold (``MaxSecretSize``).
MAX_DATA_SIZE = 1024 * 1024
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
RBAC_GROUP = "rbac.authorization.k8s.io"
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]


def _go_strings(values: list[Any]) -> str:
    """Go's ``%#v`` of a ``[]string`` (how list values appear in field errors)."""
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


# -- Service ----------------------------------------------------------------------------------

def _service_port(p: Obj, path: str, multiple: bool, names: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    name = p.get("name")
    if multiple and not name:
        errs.append(required(f"{path}.name"))
    elif name:
        errs += [invalid(f"{path}.name", name, m) for m in is_dns1123_label(str(name))]
        if name in names:
            errs.append(duplicate(f"{path}.name", name))
        names.add(name)
    errs += port_number_errors(f"{path}.port", p.get("port"))
    if p.get("protocol") not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", p.get("protocol"), PROTOCOLS))
    target = p.get("targetPort")
    if isinstance(target, str):
        errs += [invalid(f"{path}.targetPort", target, m) for m in port_name_errors(target)]
    elif target is not None:
        errs += port_number_errors(f"{path}.targetPort", target)
    return errs


def validate_service(obj: Obj, ctx: Context) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    stype = spec.get("type")
    if stype not in SERVICE_TYPES:
        causes.append(not_supported("spec.type", stype, SERVICE_TYPES))
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(required("spec.ports"))
    names: set[str] = set()
    for i, p in enumerate(ports):
        causes += _service_port(p, f"spec.ports[{i}]", len(ports) > 1, names)
    causes += validate_labels(spec.get("selector"), "spec.selector")
    if ctx.old is not None:
        old_ip = (ctx.old.get("spec") or {}).get("clusterIP")
        if old_ip and spec.get("clusterIP") != old_ip:
            causes.append(invalid("spec.clusterIP", spec.get("clusterIP") or "",
                                  "field is immutable"))
    return causes


# -- ConfigMap and Secret ---------------------------------------------------------------------

def config_key_errors(key: str) -> list[str]:
    """``IsConfigMapKey``: keys of ConfigMaps and Secrets become file names in volumes."""
    errs = ["must be no more than 253 characters"] if len(key) > 253 else []
    if not re.fullmatch(CONFIG_KEY_FMT, key):
        errs.append(regex_error("a valid config key must consist of alphanumeric characters, "
                                 "'-', '_' or '.'", CONFIG_KEY_FMT, "key.name", "KEY_NAME",
                                 "key-name"))
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def _data_keys(data: Any, field: str) -> list[Cause]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [invalid(field, data, "must be a map of strings", "FieldValueTypeInvalid")]
    errs: list[Cause] = []
    for k, v in data.items():
        errs += [invalid(f"{field}[{k}]", k, m) for m in config_key_errors(k)]
        if not isinstance(v, str):
            errs.append(invalid(f"{field}[{k}]", v, "must be a string", "FieldValueTypeInvalid"))
    return errs


def _size(data: Any, decode: bool) -> int:
    """Bytes of keys and values; base64 fields count their decoded bytes."""
    if not isinstance(data, dict):
        return 0
    return sum(len(k.encode()) + (_decoded_size(v) if decode else len(v.encode()))
               for k, v in data.items() if isinstance(v, str))


def validate_configmap(obj: Obj, ctx: Context) -> list[Cause]:
    causes = _data_keys(obj.get("data"), "data") + _data_keys(obj.get("binaryData"), "binaryData")
    for k in sorted(set(obj.get("data") or {}) & set(obj.get("binaryData") or {})):
        causes.append(invalid(f"binaryData[{k}]", k, "duplicate of key present in data"))
    if _size(obj.get("data"), False) + _size(obj.get("binaryData"), True) > MAX_DATA_SIZE:
        causes.append(too_long("", MAX_DATA_SIZE))
    return causes


def _decoded_size(value: str) -> int:
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value)


def validate_secret(obj: Obj, ctx: Context) -> list[Cause]:
    causes = _data_keys(obj.get("data"), "data")
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    if _size(data, True) > MAX_DATA_SIZE:
        causes.append(too_long("data", MAX_DATA_SIZE))
    if obj.get("type") == "kubernetes.io/tls":
        causes += [required(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data]
    if ctx.old is not None and ctx.old.get("type") != obj.get("type"):
        causes.append(invalid("type", obj.get("type") or "", "field is immutable"))
    return causes


# -- RBAC -------------------------------------------------------------------------------------

def _rules(rules: Any, namespaced: bool) -> list[Cause]:
    errs: list[Cause] = []
    for i, rule in enumerate(rules or []):
        path = f"rules[{i}]"
        if not isinstance(rule, dict):
            continue
        if not rule.get("verbs"):
            errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs") or []
        if urls:
            shown = _go_strings(urls)
            if namespaced:
                errs.append(Cause(f"{path}.nonResourceURLs", f"Invalid value: {shown}: "
                                  "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(Cause(f"{path}.nonResourceURLs", f"Invalid value: {shown}: rules "
                                  "cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            errs.append(required(f"{path}.apiGroups",
                                 "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(required(f"{path}.resources",
                                 "resource rules must supply at least one resource"))
    return errs


def validate_role(obj: Obj, ctx: Context) -> list[Cause]:
    return _rules(obj.get("rules"), namespaced=True)


def validate_cluster_role(obj: Obj, ctx: Context) -> list[Cause]:
    if obj.get("aggregationRule"):
        return []  # the aggregation controller writes the rules
    return _rules(obj.get("rules"), namespaced=False)


def _subject(s: Obj, path: str, namespaced: bool) -> list[Cause]:
    errs: list[Cause] = []
    name, kind, group = s.get("name") or "", s.get("kind"), s.get("apiGroup") or ""
    if not name:
        errs.append(required(f"{path}.name"))
    if kind == "ServiceAccount":
        if name:
            errs += [invalid(f"{path}.name", name, m) for m in is_dns1123_subdomain(name)]
        if group:
            errs.append(not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not s.get("namespace"):
            errs.append(required(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            errs.append(not_supported(f"{path}.apiGroup", group, [RBAC_GROUP]))
    else:
        errs.append(not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return errs


def _binding(obj: Obj, ctx: Context, kinds: list[str], namespaced: bool) -> list[Cause]:
    ref = obj.get("roleRef") or {}
    errs: list[Cause] = []
    if ref.get("apiGroup") != RBAC_GROUP:
        errs.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [RBAC_GROUP]))
    if ref.get("kind") not in kinds:
        errs.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    if not ref.get("name"):
        errs.append(required("roleRef.name"))
    for i, s in enumerate(obj.get("subjects") or []):
        if isinstance(s, dict):
            errs += _subject(s, f"subjects[{i}]", namespaced)
    if ctx.old is not None and (ctx.old.get("roleRef") or {}) != ref:
        shown = (f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", '
                 f'Kind:"{ref.get("kind", "")}", Name:"{ref.get("name", "")}"}}')
        errs.append(Cause("roleRef", f"Invalid value: {shown}: cannot change roleRef"))
    return errs


def validate_role_binding(obj: Obj, ctx: Context) -> list[Cause]:
    return _binding(obj, ctx, ["Role", "ClusterRole"], namespaced=True)


def validate_cluster_role_binding(obj: Obj, ctx: Context) -> list[Cause]:
    return _binding(obj, ctx, ["ClusterRole"], namespaced=False)
