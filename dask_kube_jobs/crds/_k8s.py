"""Kubernetes object schemas turned into the structural schemas a CRD may embed.

The CRDs embed whole PodSpecs and a ServiceSpec. Hand-written copies go stale (upstream's were
frozen at Kubernetes 1.21 and pruned ``resizePolicy``, ``resourceClaims``, ``schedulingGates``,
sidecar ``restartPolicy``...), so we derive them from the JSON-schema ``$defs`` that
``kubernetes-validate`` ships for one release (see ``dask_kube_jobs.crds.k8s_schemas``).

Those ``$defs`` are JSON Schema, not the OpenAPI subset an apiextensions/v1 schema must be, so
each node is rewritten on the way (``structural_schema``):

* ``$ref`` is inlined recursively (a CRD schema cannot hold references); a definition that refers
  back to itself becomes ``x-kubernetes-preserve-unknown-fields`` instead of an endless tree.
* ``type: [x, "null"]`` becomes ``type: x`` plus ``nullable: true`` on object properties, so a
  manifest that says ``env:`` with no value is kept as Kubernetes keeps it rather than rejected.
  Array items and list-map keys are never nullable (the apiserver forbids it).
* ``IntOrString`` becomes ``x-kubernetes-int-or-string``. ``Quantity`` accepts strings *and*
  numbers in a Pod (``cpu: 0.5``), which no structural type expresses (int-or-string would reject
  ``0.5``), so it is left untyped with ``x-kubernetes-preserve-unknown-fields``; the Pod API
  checks the value when the operator creates the Pod.
* ``ObjectMeta`` inside a Pod (ephemeral volume claim templates) is reduced to the labels and
  annotations Kubernetes allows there; objects with no declared fields keep unknown fields.
* Descriptions are dropped (three PodSpecs with them would not fit in the 256 KiB
  ``last-applied-configuration`` annotation of ``kubectl apply``); only formats the apiserver
  knows are kept; strategic-merge and union extensions, which CRDs do not support, are dropped.
* ``x-kubernetes-list-type: map`` needs every key required or defaulted: keys that Kubernetes
  defaults (``protocol: TCP``, an empty image-pull-secret ``name``) get that default, and a
  list whose keys cannot be satisfied loses its map type rather than making the CRD invalid.
"""

from __future__ import annotations

import copy
from typing import Any

from .k8s_schemas import KUBERNETES_VERSION, definitions

Schema = dict[str, Any]

__all__ = ["KUBERNETES_VERSION", "object_meta_subset", "structural_schema"]

_REF_PREFIX = "#/$defs/"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

# Formats kube-apiserver validates or tolerates silently; anything else is left out so that a
# newer schema cannot introduce a format that an older apiserver warns about.
_KEPT_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "duration",
                 "uuid", "email", "hostname", "ipv4", "ipv6", "cidr", "mac", "uri", "password"}

# Extensions apiextensions/v1 understands (others are unknown fields of JSONSchemaProps).
_KEPT_EXTENSIONS = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys",
                    "x-kubernetes-map-type", "x-kubernetes-preserve-unknown-fields",
                    "x-kubernetes-int-or-string", "x-kubernetes-embedded-resource")

# Defaults Kubernetes itself applies to list-map keys that are not required. A list-map key
# must be required or defaulted in a CRD; these are the values the Pod/Service API would fill in.
_LIST_KEY_DEFAULTS: dict[tuple[str, str], Any] = {
    ("io.k8s.api.core.v1.ContainerPort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.ServicePort", "protocol"): "TCP",
    ("io.k8s.api.core.v1.LocalObjectReference", "name"): "",
}

_PRESERVE: Schema = {"x-kubernetes-preserve-unknown-fields": True}


def object_meta_subset() -> Schema:
    """The metadata a template may carry: labels and annotations, nothing system-managed."""
    string_map = {"type": "object", "additionalProperties": {"type": "string"}}
    return {
        "type": "object",
        "properties": {"labels": copy.deepcopy(string_map),
                       "annotations": copy.deepcopy(string_map)},
    }


def structural_schema(name: str) -> Schema:
    """The structural schema of the definition ``name`` (e.g. ``io.k8s.api.core.v1.PodSpec``).

    >>> structural_schema("io.k8s.api.core.v1.PodSpec")["required"]
    ['containers']
    """
    schema, _ = _definition(name, ())
    return schema


def _ref_name(node: Schema) -> str | None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
        return ref[len(_REF_PREFIX):]
    return None


def _definition(name: str, stack: tuple[str, ...]) -> tuple[Schema, bool]:
    """(schema, nullable) of a named definition; ``stack`` holds the definitions being
    expanded, to cut recursion."""
    if name == _QUANTITY:
        return dict(_PRESERVE), True
    if name == _INT_OR_STRING:
        return {"x-kubernetes-int-or-string": True}, True
    if name == _OBJECT_META:
        return object_meta_subset(), True
    if name in stack:
        return {"type": "object", **_PRESERVE}, True
    return _convert(definitions()[name], stack + (name,))


def _split_type(node: Schema) -> tuple[str | None, bool]:
    t = node.get("type")
    if isinstance(t, list):
        concrete = [x for x in t if x != "null"]
        if len(concrete) != 1:
            raise ValueError(f"cannot express type {t!r} in a structural schema")
        return concrete[0], "null" in t
    return t, False


def _convert(node: Schema, stack: tuple[str, ...]) -> tuple[Schema, bool]:
    """One JSON-schema node to (structural schema, whether null is allowed)."""
    ref = _ref_name(node)
    if ref is not None:
        return _definition(ref, stack)
    t, nullable = _split_type(node)
    out: Schema = {}
    if t is not None:
        out["type"] = t
    fmt = node.get("format")
    if fmt in _KEPT_FORMATS:
        out["format"] = fmt
    for key in ("enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
                "maxItems"):
        if key in node:
            out[key] = copy.deepcopy(node[key])
    for ext in _KEPT_EXTENSIONS:
        if ext in node:
            out[ext] = copy.deepcopy(node[ext])
    if isinstance(node.get("items"), dict):
        out["items"], _ = _convert(node["items"], stack)  # items are never nullable
    props = node.get("properties") or {}
    if props:
        out["properties"] = {}
        for key in sorted(props):
            sub, sub_nullable = _convert(props[key], stack)
            if sub_nullable:
                sub["nullable"] = True
            out["properties"][key] = sub
        required = [k for k in node.get("required") or [] if k in props]
        if required:
            out["required"] = required
    addl = node.get("additionalProperties")
    if isinstance(addl, dict):
        out["additionalProperties"], _ = _convert(addl, stack)
    if t == "object" and not props and not isinstance(addl, dict):
        out.update(_PRESERVE)
    if out.get("x-kubernetes-list-type") == "map":
        _fix_list_map(out, node, stack)
    return out, nullable


def _fix_list_map(out: Schema, node: Schema, stack: tuple[str, ...]) -> None:
    """Make a ``list-type: map`` valid for a CRD, or demote it to an atomic list."""
    items = out.get("items") or {}
    item_def = _ref_name(node.get("items") or {})
    keys = out.get("x-kubernetes-list-map-keys") or []
    required = set(items.get("required") or [])
    for key in keys:
        prop = (items.get("properties") or {}).get(key)
        if prop is None:
            break
        prop.pop("nullable", None)
        if key in required or "default" in prop:
            continue
        default = _LIST_KEY_DEFAULTS.get((item_def or "", key))
        if default is None:
            break
        prop["default"] = default
    else:
        if keys:
            return
    out.pop("x-kubernetes-list-map-keys", None)
    out["x-kubernetes-list-type"] = "atomic"
