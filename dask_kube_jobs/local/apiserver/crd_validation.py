"""Validation and defaulting of CustomResourceDefinitions (apiextensions.k8s.io/v1).

It builds on ``structural`` (a CRD's defaults must prune and validate against its own schema),
and the API server calls it for CRDs through the built-in defaulters and validators. The checks
follow kube-apiserver's own in the order it runs them, so a CRD that Helm or kubectl would see
rejected by a real cluster is rejected here with the same paths and words: spec and names first,
then each version (OpenAPI checks of its schema, structural-schema invariants sorted by message
as the apiserver sorts them, then defaults, which must be pruned and must validate),
subresources and printer columns. CEL rules in ``x-kubernetes-validations`` must be present
and compile (``celrules``).
"""

from __future__ import annotations

import copy
from typing import Any

from . import celrules
from .errors import Cause
from .fielderrors import forbidden, invalid, not_supported, required
from .objectmeta import is_dns1035_label, is_dns1123_subdomain
from .structural import _META_FIELDS, Schema, _addl, _canon, _pattern, _props, _prune, validate

OPENAPI_TYPES = ["array", "boolean", "integer", "number", "object", "string"]
PRINTER_COLUMN_TYPES = "boolean,date,integer,number,string"
PRINTER_COLUMN_FORMATS = "byte,date,date-time,double,float,int32,int64,password"
_ROOT_WITH_STATUS = {  # JSON name -> Go field name, as the apiserver lists them
    "description": "Description", "type": "Type", "format": "Format", "title": "Title",
    "maximum": "Maximum", "exclusiveMaximum": "ExclusiveMaximum", "minimum": "Minimum",
    "exclusiveMinimum": "ExclusiveMinimum", "maxLength": "MaxLength", "minLength": "MinLength",
    "pattern": "Pattern", "maxItems": "MaxItems", "minItems": "MinItems",
    "uniqueItems": "UniqueItems", "multipleOf": "MultipleOf", "required": "Required",
    "items": "Items", "properties": "Properties", "externalDocs": "ExternalDocs",
    "example": "Example", "x-kubernetes-preserve-unknown-fields": "XPreserveUnknownFields",
    "x-kubernetes-validations": "XValidations",
}
_UNSUPPORTED = (("id", "id"), ("additionalItems", "additionalItems"),
                ("patternProperties", "patternProperties"), ("definitions", "definitions"),
                ("dependencies", "dependencies"), ("$ref", "$ref"))
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_NESTED_FORBIDDEN = (  # generics and extensions a value validation (anyOf...) must not set
    ("type", "must be empty to be structural"),
    ("additionalProperties", "must be undefined to be structural"),
    ("default", "must be undefined to be structural"),
    ("title", "must be empty to be structural"),
    ("description", "must be empty to be structural"),
    ("nullable", "must be false to be structural"),
    ("x-kubernetes-preserve-unknown-fields", "must be false to be structural"),
    ("x-kubernetes-embedded-resource", "must be false to be structural"),
    ("x-kubernetes-int-or-string", "must be false to be structural"),
    ("x-kubernetes-list-map-keys", "must be empty to be structural"),
    ("x-kubernetes-list-type", "must be undefined to be structural"),
)
_JUNCTORS = ("anyOf", "allOf", "oneOf")


def default_crd(crd: dict[str, Any]) -> dict[str, Any]:
    """A copy with the v1 defaults: names.singular, names.listKind, conversion strategy None,
    webhook service port 443, and explicit served/storage booleans (Go's false when absent)."""
    out = copy.deepcopy(crd)
    spec = out.setdefault("spec", {})
    names = spec.setdefault("names", {})
    kind = names.get("kind")
    if kind and not names.get("singular"):
        names["singular"] = kind.lower()
    if kind and not names.get("listKind"):
        names["listKind"] = f"{kind}List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    service = ((spec["conversion"].get("webhook") or {}).get("clientConfig") or {}).get("service")
    if isinstance(service, dict):
        service.setdefault("port", 443)
    for version in spec.get("versions") or []:
        version.setdefault("served", False)
        version.setdefault("storage", False)
    return out


def validate_crd(crd: dict[str, Any]) -> list[Cause]:
    """Errors of a (defaulted) apiextensions.k8s.io/v1 CustomResourceDefinition, except the
    generic ObjectMeta ones (``validate_object_meta(meta, namespaced=False)`` reports those)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    wanted = f"{names.get('plural') or ''}.{spec.get('group') or ''}"
    name = (crd.get("metadata") or {}).get("name") or ""
    errs: list[Cause] = []
    if name and name != wanted:  # the DNS-subdomain part is validate_object_meta's
        errs.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    errs += _crd_spec(spec)
    accepted = (crd.get("status") or {}).get("acceptedNames")
    if isinstance(accepted, dict):
        errs += _crd_names(accepted, "status.acceptedNames")
    return errs


def _crd_spec(spec: dict[str, Any]) -> list[Cause]:
    errs: list[Cause] = []
    group = spec.get("group") or ""
    if not group:
        errs.append(required("spec.group"))
    elif msgs := is_dns1123_subdomain(group):
        errs.append(invalid("spec.group", group, ",".join(msgs)))
    elif "." not in group:
        errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope") or ""
    if not scope:
        errs.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        errs.append(not_supported("spec.scope", scope, ["Cluster", "Namespaced"]))
    versions = spec.get("versions") or []
    for i, v in enumerate(versions):
        if not isinstance((v.get("schema") or {}).get("openAPIV3Schema"), dict):
            errs.append(required(f"spec.versions[{i}].schema.openAPIV3Schema",
                                 "schemas are required"))
    for i, v in enumerate(versions):
        name = v.get("name") or ""
        if msgs := is_dns1035_label(name):
            errs.append(invalid(f"spec.versions[{i}].name", name, ",".join(msgs)))
        errs += _crd_version(v, f"spec.versions[{i}]")
    if len({v.get("name") for v in versions}) != len(versions):
        errs.append(invalid("spec.versions", versions, "must contain unique version names"))
    if sum(bool(v.get("storage")) for v in versions) != 1:
        errs.append(invalid("spec.versions", versions,
                            "must have exactly one version marked as storage version"))
    names = spec.get("names") or {}
    errs += [required(f"spec.names.{k}") for k in ("plural", "singular", "kind", "listKind")
             if not names.get(k)]
    errs += _crd_names(names, "spec.names")
    errs += _crd_conversion(spec.get("conversion"), "spec.conversion")
    if spec.get("preserveUnknownFields"):
        errs.append(invalid("spec.preserveUnknownFields", True, "cannot set to true, set "
                            "x-preserve-unknown-fields to true in spec.versions[*].schema instead"))
    return errs


def _crd_names(names: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for key in ("plural", "singular"):
        if names.get(key) and (msgs := is_dns1035_label(names[key])):
            errs.append(invalid(f"{path}.{key}", names[key], ",".join(msgs)))
    for key in ("kind", "listKind"):
        if names.get(key) and (msgs := is_dns1035_label(names[key].lower())):
            detail = "may have mixed case, but should otherwise match: " + ",".join(msgs)
            errs.append(invalid(f"{path}.{key}", names[key], detail))
    for key in ("shortNames", "categories"):
        for i, value in enumerate(names.get(key) or []):
            if msgs := is_dns1035_label(value):
                errs.append(invalid(f"{path}.{key}[{i}]", value, ",".join(msgs)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        errs.append(invalid(f"{path}.listKind", names["listKind"],
                            "kind and listKind may not be the same"))
    return errs


def _crd_conversion(conv: dict[str, Any] | None, path: str) -> list[Cause]:
    if conv is None:
        return []
    errs: list[Cause] = []
    strategy = conv.get("strategy") or ""
    webhook = conv.get("webhook") or {}
    config, review = webhook.get("clientConfig"), webhook.get("conversionReviewVersions") or []
    if not strategy:
        errs.append(required(f"{path}.strategy"))
    elif strategy not in ("None", "Webhook"):
        errs.append(not_supported(f"{path}.strategy", strategy, ["None", "Webhook"]))
    if strategy != "Webhook":
        detail = "should not be set when strategy is not set to Webhook"
        errs += [forbidden(f"{path}.webhookClientConfig", detail)] if config else []
        errs += [forbidden(f"{path}.conversionReviewVersions", detail)] if review else []
        return errs
    if not config:
        errs.append(required(f"{path}.webhookClientConfig", "required when strategy is set to "
                             "Webhook"))
    elif bool(config.get("url")) == bool(config.get("service")):
        errs.append(required(f"{path}.webhookClientConfig",
                             "exactly one of url or service is required"))
    if not review:
        errs.append(required(f"{path}.conversionReviewVersions"))
    for i, v in enumerate(review):
        if v in review[:i]:
            errs.append(invalid(f"{path}.conversionReviewVersions[{i}]", v, "duplicate version"))
    if review and not {"v1", "v1beta1"} & set(review):
        errs.append(invalid(f"{path}.conversionReviewVersions", review,
                            "must include at least one of v1, v1beta1"))
    return errs


def _crd_version(v: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    warning = v.get("deprecationWarning")
    if warning is not None and not v.get("deprecated"):
        errs.append(invalid(f"{path}.deprecationWarning", warning,
                            "can only be set for deprecated versions"))
    elif isinstance(warning, str) and not 0 < len(warning) <= 256:
        errs.append(invalid(f"{path}.deprecationWarning", warning, "must not be an empty string"
                            if not warning else "must be <= 256 characters long"))
    subresources = v.get("subresources") or {}
    schema = (v.get("schema") or {}).get("openAPIV3Schema")
    if isinstance(schema, dict):
        errs += _crd_schema(schema, f"{path}.schema.openAPIV3Schema",
                            subresources.get("status") is not None)
    scale = subresources.get("scale")
    if scale is not None:
        errs += _crd_scale(scale, f"{path}.subresources.scale")
    for i, col in enumerate(v.get("additionalPrinterColumns") or []):
        errs += _crd_column(col, f"{path}.additionalPrinterColumns[{i}]")
    return errs


def _simple_jsonpath(value: str, path: str) -> list[Cause]:
    if not value:
        return [invalid(path, value, "must not be empty")]
    if not value.startswith("."):
        return [invalid(path, value, "must be a simple json path starting with .")]
    return []


def _crd_scale(scale: dict[str, Any], path: str) -> list[Cause]:
    errs: list[Cause] = []
    for key, prefixes, where in (("specReplicasPath", (".spec.",), ".spec"),
                                 ("statusReplicasPath", (".status.",), ".status"),
                                 ("labelSelectorPath", (".spec.", ".status."),
                                  "either .spec or .status")):
        value = scale.get(key) or ""
        if not value:
            errs += [required(f"{path}.{key}")] if key != "labelSelectorPath" else []
        elif bad := _simple_jsonpath(value, f"{path}.{key}"):
            errs += bad
        elif not value.startswith(prefixes):
            errs.append(invalid(f"{path}.{key}", value, f"should be a json path under {where}"))
    return errs


def _crd_column(col: dict[str, Any], path: str) -> list[Cause]:
    errs = [] if col.get("name") else [required(f"{path}.name")]
    kind, fmt, jsonpath = col.get("type") or "", col.get("format"), col.get("jsonPath") or ""
    if not kind:
        errs.append(required(f"{path}.type", f"must be one of {PRINTER_COLUMN_TYPES}"))
    elif kind not in PRINTER_COLUMN_TYPES.split(","):
        errs.append(invalid(f"{path}.type", kind, f"must be one of {PRINTER_COLUMN_TYPES}"))
    if fmt and fmt not in PRINTER_COLUMN_FORMATS.split(","):
        errs.append(invalid(f"{path}.format", fmt, f"must be one of {PRINTER_COLUMN_FORMATS}"))
    # The apiserver validates its internal type, whose field is spelled JSONPath.
    if not jsonpath:
        errs.append(required(f"{path}.JSONPath"))
    errs += _simple_jsonpath(jsonpath, f"{path}.JSONPath") if jsonpath else []
    return errs


def _crd_schema(schema: Schema, path: str, status: bool) -> list[Cause]:
    errs: list[Cause] = []
    if status:
        extra = [k for k, val in schema.items() if k not in _ROOT_WITH_STATUS
                 and val not in (None, False, "", [], {})]
        if schema.get("type") not in (None, "", "object"):
            errs.append(invalid(f"{path}.type", schema["type"], 'only "object" is allowed as the '
                                "type at the root of the schema if the status subresource is "
                                "enabled"))
        elif extra:
            allowed = " ".join(_ROOT_WITH_STATUS.values())
            errs.append(invalid(path, schema, f"only [{allowed}] fields are allowed at the root "
                                "of the schema if the status subresource is enabled"))
    if schema.get("nullable"):
        errs.append(forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    errs += _openapi(schema, path, root=True, no_default=None, in_meta=False)
    structural: list[Cause] = []
    _structural(schema, "root", path, structural)
    _completeness(schema, path, structural)
    structural.sort(key=lambda c: f"{c.field}: {c.message}")
    if structural:
        return errs + structural
    return errs + _defaults(schema, path, in_meta=False, root=True)


def _openapi(s: Schema, p: str, *, root: bool, no_default: str | None,
             in_meta: bool) -> list[Cause]:
    """OpenAPI-level checks of one schema node and its children (``no_default``: why a
    default is forbidden here, None when it is allowed)."""
    errs: list[Cause] = []
    t = s.get("type")
    if t and t not in OPENAPI_TYPES:
        errs.append(not_supported(f"{p}.type", t, OPENAPI_TYPES))
    if "default" in s and no_default is not None:
        errs.append(forbidden(f"{p}.default", " ".join(filter(None, ["must not be set",
                                                                      no_default]))))
    errs += [forbidden(f"{p}.{k}", f"{label} is not supported")
             for k, label in _UNSUPPORTED if s.get(k)]
    if t == "null":
        errs.append(forbidden(f"{p}.type", "type cannot be set to null, use nullable as an "
                              "alternative"))
    if isinstance(s.get("items"), list):
        errs.append(forbidden(f"{p}.items", "items must be a schema object and not an array"))
    if in_meta and s.get("x-kubernetes-embedded-resource"):
        errs.append(forbidden(f"{p}.x-kubernetes-embedded-resource",
                              "must not be used inside of resource meta"))
    if s.get("uniqueItems") is True:
        errs.append(forbidden(f"{p}.uniqueItems", "uniqueItems cannot be set to true since the "
                              "runtime complexity becomes quadratic"))
    addl = s.get("additionalProperties")
    if _props(s) and (addl is False or isinstance(addl, dict)):
        errs.append(forbidden(f"{p}.additionalProperties",
                              "additionalProperties and properties are mutual exclusive"))
    children: list[tuple[Schema, str, str | None, bool]] = []
    if isinstance(addl, dict):
        why = "inside additionalProperties applying to object metadata" if in_meta else no_default
        children.append((addl, f"{p}.additionalProperties", why, in_meta))
    for k, sub in _props(s).items():
        meta = (root or bool(s.get("x-kubernetes-embedded-resource"))) and k in _META_FIELDS
        why = f"in top-level {k}" if root and meta else no_default
        children.append((sub, f"{p}.properties[{k}]", why, in_meta or meta))
    if isinstance(s.get("not"), dict):
        children.append((s["not"], f"{p}.not", no_default, in_meta))
    for j in ("allOf", "oneOf", "anyOf"):
        children += [(sub, f"{p}.{j}[{i}]", no_default, in_meta)
                     for i, sub in enumerate(s.get(j) or [])]
    if isinstance(s.get("items"), dict):
        children.append((s["items"], f"{p}.items", no_default, in_meta))
    for sub, sp, why, meta in children:
        errs += _openapi(sub, sp, root=False, no_default=why, in_meta=meta)
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        errs.append(invalid(f"{p}.x-kubernetes-preserve-unknown-fields", False,
                            "must be true or undefined"))
    return errs + _openapi_extensions(s, p)


def _openapi_extensions(s: Schema, p: str) -> list[Cause]:
    errs: list[Cause] = []
    t, map_type = s.get("type"), s.get("x-kubernetes-map-type")
    list_type, keys = s.get("x-kubernetes-list-type"), s.get("x-kubernetes-list-map-keys") or []
    items = s.get("items") if isinstance(s.get("items"), dict) else None
    for ext, value, want in (("map", map_type, "object"), ("list", list_type, "array")):
        if value is not None and t != want:
            msg = f"must be {want} if x-kubernetes-{ext}-type is specified"
            errs.append(invalid(f"{p}.type", t, msg) if t else required(f"{p}.type", msg))
    if map_type is not None and map_type not in ("atomic", "granular"):
        errs.append(not_supported(f"{p}.x-kubernetes-map-type", map_type, ["atomic", "granular"]))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        errs.append(not_supported(f"{p}.x-kubernetes-list-type", list_type,
                                  ["atomic", "set", "map"]))
    if keys and list_type != "map":
        msg = "must be map if x-kubernetes-list-map-keys is non-empty"
        errs.append(required(f"{p}.x-kubernetes-list-type", msg) if list_type is None
                    else invalid(f"{p}.x-kubernetes-list-type", list_type, msg))
    if list_type == "map":
        if not keys:
            errs.append(required(f"{p}.x-kubernetes-list-map-keys",
                                 "must not be empty if x-kubernetes-list-type is map"))
        if items is None:
            errs.append(required(f"{p}.items", "must have a schema if x-kubernetes-list-type is "
                                 "map"))
        elif items.get("type") != "object":
            errs.append(invalid(f"{p}.items.type", items.get("type") or "", "must be object if "
                                "parent array's x-kubernetes-list-type is map"))
        else:
            for k in keys:
                prop = _props(items).get(k)
                kp = f"{p}.items.properties[{k}]"
                if prop is None:
                    errs.append(invalid(f"{p}.x-kubernetes-list-map-keys", keys,
                                        "entries must all be names of item properties"))
                    continue
                if prop.get("type") in ("array", "object"):
                    errs.append(invalid(f"{kp}.type", items.get("type"), "must be a scalar type "
                                        "if parent array's x-kubernetes-list-type is map"))
                if k not in (items.get("required") or []) and "default" not in prop:
                    errs.append(required(f"{kp}.default", "this property is in x-kubernetes-list-"
                                         "map-keys, so it must have a default or be a required "
                                         "property"))
                if prop.get("nullable"):
                    errs.append(forbidden(f"{kp}.nullable", "this property is in x-kubernetes-"
                                          "list-map-keys, so it cannot be nullable"))
            if len(set(keys)) != len(keys):
                errs.append(invalid(f"{p}.x-kubernetes-list-map-keys", keys,
                                    "must not contain duplicate entries"))
    if list_type in ("set", "map") and items and items.get("nullable"):
        errs.append(forbidden(f"{p}.items.nullable",
                              f"cannot be nullable when x-kubernetes-list-type is {list_type}"))
    for i, rule in enumerate(s.get("x-kubernetes-validations") or []):
        if not str(rule.get("rule") or "").strip():
            errs.append(required(f"{p}.x-kubernetes-validations[{i}].rule",
                                 "rule is not specified"))
    return errs + celrules.compile_errors(s.get("x-kubernetes-validations") or [], p)


def _structural(s: Schema, lvl: str, p: str, errs: list[Cause]) -> None:
    """The invariants that make a schema structural (type everywhere, nothing hidden in
    anyOf/allOf/oneOf/not, metadata restricted to name and generateName)."""
    t, items = s.get("type") or "", s.get("items")
    preserve, embedded = s.get("x-kubernetes-preserve-unknown-fields"), s.get(
        "x-kubernetes-embedded-resource")
    int_or_string = s.get("x-kubernetes-int-or-string")
    if t == "array" and items is None:
        errs.append(required(f"{p}.items", "must be specified"))
    if isinstance(items, dict):
        _structural(items, "item", f"{p}.items", errs)
    for k, sub in _props(s).items():
        _structural(sub, "field", f"{p}.properties[{k}]", errs)
    addl = s.get("additionalProperties")
    if addl is not None and lvl == "root":
        errs.append(forbidden(f"{p}.additionalProperties", "must not be used at the root"))
    if isinstance(addl, dict):
        _structural(addl, "field", f"{p}.additionalProperties", errs)
    if int_or_string and preserve:
        errs.append(invalid(f"{p}.x-kubernetes-preserve-unknown-fields", True,
                            "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        errs.append(invalid(f"{p}.x-kubernetes-embedded-resource", True,
                            "must be false if x-kubernetes-int-or-string is true"))
    skip_any = s.get("anyOf") == _INT_OR_STRING_ANY_OF
    all_of = s.get("allOf") or []
    skip_first = bool(all_of) and all_of[0].get("anyOf") == _INT_OR_STRING_ANY_OF
    _value_validation(s, p, skip_any, skip_first, errs, nested=False)
    if embedded and t != "object":
        msg = "must be object if x-kubernetes-embedded-resource is true"
        errs.append(invalid(f"{p}.type", t, msg) if t else required(f"{p}.type", msg))
    elif not t and not int_or_string and not preserve:
        where = {"root": "at the root", "item": "for specified array items",
                 "field": "for specified object fields"}[lvl]
        errs.append(required(f"{p}.type", f"must not be empty {where}"))
    if embedded and addl is not None:
        errs.append(forbidden(f"{p}.additionalProperties",
                              "must not be used if x-kubernetes-embedded-resource is set"))
    if lvl == "root" and t and t != "object":
        errs.append(invalid(f"{p}.type", t, "must be object at the root"))
    props = _props(s)
    if lvl == "root" or embedded:
        for k, want in (("kind", "string"), ("apiVersion", "string"), ("metadata", "object")):
            if k in props and props[k].get("type") != want:
                errs.append(invalid(f"{p}.properties[{k}].type", props[k].get("type") or "",
                                    f"must be {want}"))
    if lvl == "root" and "metadata" in props and not _plain_metadata(props["metadata"]):
        errs.append(forbidden(f"{p}.properties[metadata]", "must not specify anything other "
                              "than name and generateName, but metadata is implicitly specified"))
    if embedded and not preserve and not props:
        errs.append(required(f"{p}.properties", "must not be empty if x-kubernetes-embedded-"
                             "resource is true without x-kubernetes-preserve-unknown-fields"))


def _plain_metadata(meta: Schema) -> bool:
    rest = {k: v for k, v in meta.items() if k not in ("type", "default") and v not in (None,
                                                                                      False)}
    props = rest.pop("properties", None) or {}
    return not rest and set(props) <= {"name", "generateName"}


def _value_validation(s: Schema, p: str, skip_any: bool, skip_first: bool, errs: list[Cause],
                      nested: bool) -> None:
    for j in _JUNCTORS:
        for i, sub in enumerate(s.get(j) or []):
            if (j == "anyOf" and skip_any) or not isinstance(sub, dict):
                continue
            _nested(sub, f"{p}.{j}[{i}]", j == "allOf" and i == 0 and skip_first, errs)
    if isinstance(s.get("not"), dict):
        _nested(s["not"], f"{p}.not", False, errs)
    if "pattern" in s and _pattern(s["pattern"]) is None:
        errs.append(invalid(f"{p}.pattern", s["pattern"],
                            "must be a valid regular expression, but isn't"))


def _nested(v: Schema, p: str, skip_any: bool, errs: list[Cause]) -> None:
    _value_validation(v, p, skip_any, False, errs, nested=True)
    if isinstance(v.get("items"), dict):
        _nested(v["items"], f"{p}.items", False, errs)
    for k, sub in _props(v).items():
        _nested(sub, f"{p}.properties[{k}]", False, errs)
    errs += [forbidden(f"{p}.{k}", msg) for k, msg in _NESTED_FORBIDDEN
             if v.get(k) not in (None, False, "", [])]
    if "metadata" in _props(v):
        errs.append(forbidden(f"{p}.properties[metadata]", "must not be specified in a nested "
                              "context"))


def _completeness(s: Schema, p: str, errs: list[Cause]) -> None:
    """Everything a value validation mentions must also be specified structurally."""
    for j in _JUNCTORS:
        for i, v in enumerate(s.get(j) or []):
            _complete(v, s, p, f"{p}.{j}[{i}]", errs)
    if isinstance(s.get("not"), dict):
        _complete(s["not"], s, p, f"{p}.not", errs)
    if isinstance(s.get("items"), dict):
        _completeness(s["items"], f"{p}.items", errs)
    for k, sub in _props(s).items():
        _completeness(sub, f"{p}.properties[{k}]", errs)
    if isinstance(s.get("additionalProperties"), dict):
        _completeness(s["additionalProperties"], f"{p}.additionalProperties", errs)


def _complete(v: Any, s: Schema | None, sp: str, vp: str, errs: list[Cause]) -> None:
    if not isinstance(v, dict):
        return
    if s is None:
        errs.append(required(sp, f"because it is defined in {vp}"))
        return
    for j in _JUNCTORS:
        for i, sub in enumerate(v.get(j) or []):
            _complete(sub, s, sp, f"{vp}.{j}[{i}]", errs)
    if "not" in v:
        _complete(v["not"], s, sp, f"{vp}.not", errs)
    if "items" in v:
        items = s.get("items")
        _complete(v["items"], items if isinstance(items, dict) else None, f"{sp}.items",
                  f"{vp}.items", errs)
    for k, sub in _props(v).items():
        kp = f"{vp}.properties[{k}]"
        if k in _props(s):
            _complete(sub, _props(s)[k], f"{sp}.properties[{k}]", kp, errs)
        elif isinstance(_addl(s), dict):
            _complete(sub, _addl(s), f"{sp}.additionalProperties", kp, errs)
        else:
            errs.append(required(f"{sp}.properties[{k}]", f"because it is defined in {kp}"))


def _defaults(s: Schema, p: str, *, in_meta: bool, root: bool) -> list[Cause]:
    """Defaults must be pruned and must validate against the schema they sit in."""
    errs: list[Cause] = []
    if "default" in s and not in_meta:
        value = s["default"]
        if _canon(_prune(copy.deepcopy(value), s, bool(s.get("x-kubernetes-embedded-resource")))) \
                != _canon(value):
            errs.append(invalid(f"{p}.default", value, "must not have unknown fields"))
        errs += validate(value, s, field_prefix=f"{p}.default")
    if isinstance(s.get("items"), dict):
        errs += _defaults(s["items"], f"{p}.items", in_meta=in_meta, root=False)
    resource = root or bool(s.get("x-kubernetes-embedded-resource"))
    for k, sub in _props(s).items():
        errs += _defaults(sub, f"{p}.properties[{k}]", root=False,
                          in_meta=in_meta or (resource and k in _META_FIELDS))
    return errs
