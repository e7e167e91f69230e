"""CustomResourceDefinitions and their structural schemas, the way kube-apiserver treats them.

kubectl, kopf and Helm react to what the apiserver answers, so this module reproduces the
apiextensions behaviour rather than generic JSON-schema: a CRD is checked with the field paths and
messages Kubernetes prints (``spec.versions[0].schema.openAPIV3Schema.properties[spec].type:
Required value: must not be empty for specified object fields``), and a custom object is
defaulted, pruned and validated with the semantics of a *structural* schema:

* ``apply_defaults`` first drops ``null`` values of non-nullable fields without a default, then
  fills in ``default`` values top-down (defaults apply to properties of objects that exist, to
  array items, and to ``null`` values of non-nullable fields).
* ``prune`` drops every field the schema does not declare, except below
  ``x-kubernetes-preserve-unknown-fields: true``; ``apiVersion``/``kind``/``metadata`` survive at
  the resource root and in ``x-kubernetes-embedded-resource`` objects (metadata is left alone:
  ObjectMeta is validated by ``validate_object_meta``, not by the schema).
  kube-apiserver defaults and then prunes; a CRD that passes ``validate_crd`` has pruned defaults,
  so either order gives the same object. ``normalize`` does both in the apiserver's order.
* ``validate`` reports errors as kube-openapi words them and the apiserver wraps them: the field
  is the JSON path of the value (map keys joined with dots, list indices in brackets) and the
  message repeats it, e.g. ``Invalid value: "string": spec.replicas in body must be of type
  integer: "string"``. ``x-kubernetes-validations`` (CEL rules) are ``celrules``' to
  evaluate; ``x-kubernetes-list-type`` set/map duplicates are reported like the apiserver's
  list-type validation, and embedded resources must carry ``apiVersion`` and ``kind``.

Object-meta checks (DNS-1123 names, label keys/values, annotation size, owner references,
finalizers) are ``objectmeta``'s, and the message helpers ``fielderrors``'. Checking and
defaulting a CustomResourceDefinition itself is ``crd_validation``'s, which builds on this module
(never the other way round); the JSON paths of scale subresources and printer columns are
``jsonpath``'s (re-exported here).
Every function is pure: inputs are never modified, results are new objects.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import math
import re
from collections.abc import Callable
from typing import Any

from .errors import Cause
from .fielderrors import (
    duplicate,
    go_number,
    invalid,
    not_supported,
    required,
    too_long,
    too_many,
)
from .jsonpath import evaluate_jsonpath, find_all, get_path, set_path  # noqa: F401 (re-exported)
from .objectmeta import is_dns1035_label, path_segment_name, validate_object_meta

Schema = dict[str, Any]


# ---------------------------------------------------------------- defaulting and pruning

_META_FIELDS = ("apiVersion", "kind", "metadata")


def _props(s: Schema | None) -> dict[str, Schema]:
    return (s or {}).get("properties") or {}


def _addl(s: Schema | None) -> Schema | bool | None:
    """additionalProperties: a schema, True (values unchecked), or None (absent / false)."""
    a = (s or {}).get("additionalProperties")
    return None if a is False else a


def _sub(s: Schema | None, key: str) -> Schema | None:
    """The schema of ``key`` in an object: its property, else the additionalProperties schema."""
    if key in _props(s):
        return _props(s)[key]
    a = _addl(s)
    return a if isinstance(a, dict) else None


def _drop_null_fields(x: Any, s: Schema | None) -> None:
    """Non-nullable fields set to null and without a default are removed before defaulting."""
    if s is None:
        return
    if isinstance(x, dict):
        for k in list(x):
            sub = _sub(s, k)
            if sub is None:
                continue
            if x[k] is None and "default" not in sub and not sub.get("nullable"):
                del x[k]
            else:
                _drop_null_fields(x[k], sub)
    elif isinstance(x, list):
        for v in x:
            _drop_null_fields(v, s.get("items"))


def _default(x: Any, s: Schema | None) -> None:
    if s is None:
        return
    if isinstance(x, dict):
        for k, prop in _props(s).items():
            if "default" in prop and (k not in x or (x[k] is None and not prop.get("nullable"))):
                x[k] = copy.deepcopy(prop["default"])
        for k in x:
            sub = _sub(s, k)
            if sub is not None and k not in _props(s) and x[k] is None and "default" in sub \
                    and not sub.get("nullable"):
                x[k] = copy.deepcopy(sub["default"])
            _default(x[k], sub)
    elif isinstance(x, list):
        items = s.get("items")
        for i, v in enumerate(x):
            if v is None and items and "default" in items and not items.get("nullable"):
                x[i] = copy.deepcopy(items["default"])
            _default(x[i], items)


def apply_defaults(obj: Any, schema: Schema | None) -> Any:
    """A copy of ``obj`` with the schema's defaults applied (and non-nullable nulls dropped)."""
    out = copy.deepcopy(obj)
    _drop_null_fields(out, schema)
    _default(out, schema)
    return out


def _prune(x: Any, s: Schema | None, resource: bool) -> Any:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
        return _skip_prune(x, s, resource)
    if isinstance(x, dict):
        if s is None:
            return {}
        resource = resource or bool(s.get("x-kubernetes-embedded-resource"))
        out: dict[str, Any] = {}
        for k, v in x.items():
            if resource and _keeps_meta(k, v):
                out[k] = v
            elif k in _props(s):
                out[k] = _prune(v, _props(s)[k], False)
            elif _addl(s) is not None:
                out[k] = _prune(v, _sub(s, k), False)
        return out
    if isinstance(x, list):
        return [_prune(v, (s or {}).get("items"), False) for v in x]
    return x


def _skip_prune(x: Any, s: Schema, resource: bool) -> Any:
    if isinstance(x, dict):
        resource = resource or bool(s.get("x-kubernetes-embedded-resource"))
        out: dict[str, Any] = {}
        for k, v in x.items():
            if resource and _keeps_meta(k, v):
                out[k] = v
            elif k in _props(s) or _addl(s) is not None:
                out[k] = _prune(v, _sub(s, k), False)
            else:
                out[k] = v
        return out
    if isinstance(x, list) and s.get("items") is not None:
        return [_skip_prune(v, s["items"], False) for v in x]
    return x


def _keeps_meta(key: str, value: Any) -> bool:
    if key == "metadata":
        return isinstance(value, dict)
    return key in _META_FIELDS and isinstance(value, str)


def prune(obj: Any, schema: Schema | None) -> Any:
    """A copy of ``obj`` without the fields ``schema`` does not declare (resource root rules).
    Without a schema nothing is pruned."""
    if schema is None:
        return copy.deepcopy(obj)
    return _prune(copy.deepcopy(obj), schema, True)


def normalize(obj: Any, schema: Schema | None) -> Any:
    """What the apiserver does to a custom object body before validation: default, then prune."""
    return prune(apply_defaults(obj, schema), schema)


# ---------------------------------------------------------------- validating custom objects

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object",
               list: "array"}


def _json_type(v: Any) -> str:
    return "null" if v is None else _JSON_TYPES.get(type(v), type(v).__name__)


def _type_ok(v: Any, types: list[str]) -> bool:
    t = _json_type(v)
    return t in types or (t == "integer" and "number" in types) or (
        t == "number" and "integer" in types and math.isfinite(v) and float(v).is_integer())


def _canon(v: Any) -> str:
    """A JSON identity for equality where 1 != true (Python compares them equal)."""
    return json.dumps(v, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=512)
def _pattern(p: str) -> re.Pattern[str] | None:
    try:
        return re.compile(p)
    except re.error:
        return None


def _valid_base64(v: str) -> bool:
    try:
        base64.b64decode(v, validate=True)
        return True
    except ValueError:
        return False


_DATE = r"\d{4}-\d{2}-\d{2}"
_FORMATS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: bool(re.fullmatch(
        _DATE + r"[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?", v)),
    "date": lambda v: bool(re.fullmatch(_DATE, v)),
    "byte": _valid_base64,
    "uuid": lambda v: bool(re.fullmatch(r"(?i)[0-9a-f]{8}-?([0-9a-f]{4}-?){3}[0-9a-f]{12}", v)),
    "ipv4": lambda v: bool(re.fullmatch(r"((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}"
                                        r"(25[0-5]|2[0-4]\d|1?\d?\d)", v)),
    "ipv6": lambda v: ":" in v and bool(re.fullmatch(r"[0-9A-Fa-f:.]+", v)),
    "cidr": lambda v: bool(re.fullmatch(r"[0-9A-Fa-f:.]+/\d{1,3}", v)),
    "mac": lambda v: bool(re.fullmatch(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}", v)),
    "hostname": lambda v: len(v) <= 255 and bool(re.fullmatch(
        r"[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}"
        r"[A-Za-z0-9])?)*\.?", v)),
    "email": lambda v: bool(re.fullmatch(r"[^@\s]+@[^@\s]+", v)),
    "duration": lambda v: bool(re.fullmatch(r"\s*(-?\d+(\.\d+)?\s*[A-Za-zµ]+\s*)+", v)),
}
_FORMATS["datetime"] = _FORMATS["date-time"]
_FORMATS.update({k: _FORMATS["uuid"] for k in ("uuid3", "uuid4", "uuid5")})


class _Errors:
    def __init__(self, field_prefix: str = "") -> None:
        self.prefix = field_prefix
        self.schema: list[Cause] = []
        self.meta: list[Cause] = []
        self.lists: list[Cause] = []

    def at(self, name: str) -> str:
        """Field of a kube-openapi error: the value's name under the error-list prefix."""
        return f"{self.prefix}.{name}" if self.prefix and name else (self.prefix or name)

    def body(self, name: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> None:
        self.schema.append(invalid(self.at(name), value, f"{name} in body {detail}", reason))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check(v: Any, s: Schema, name: str, fp: str, out: _Errors, root: bool = False) -> None:
    """One value against one schema node; ``name`` is the kube-openapi path, ``fp`` the
    field.Path of the same value (they differ for map keys: ``a.k`` versus ``a[k]``)."""
    types = ["integer", "string"] if s.get("x-kubernetes-int-or-string") else (
        [s["type"]] if s.get("type") else [])
    if v is None:
        if types and not s.get("nullable"):
            out.body(name, "null", f'must be of type {",".join(types)}: "null"',
                     "FieldValueTypeInvalid")
        return
    if types and not _type_ok(v, types):
        t = _json_type(v)
        out.body(name, t, f'must be of type {",".join(types)}: "{t}"', "FieldValueTypeInvalid")
        return
    _check_junctors(v, s, name, fp, out)
    if isinstance(v, str):
        _check_string(v, s, name, out)
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        _check_number(v, s, name, out)
    if isinstance(v, list):
        _check_array(v, s, name, fp, out)
    if "enum" in s and _canon(v) not in {_canon(e) for e in s["enum"]}:
        supported = [e if isinstance(e, str) else _canon(e) for e in s["enum"]]
        out.schema.append(not_supported(out.at(name), v, supported))
    if isinstance(v, dict):
        _check_object(v, s, name, fp, out, root)


def _check_junctors(v: Any, s: Schema, name: str, fp: str, out: _Errors) -> None:
    def run(sub: Schema) -> _Errors:
        tmp = _Errors(out.prefix)
        _check(v, sub, name, fp, tmp)
        return tmp

    for sub in s.get("allOf") or []:
        out.schema += run(sub).schema
    if s.get("anyOf"):
        results = [run(sub) for sub in s["anyOf"]]
        if all(r.schema for r in results):
            out.body(name, "", "must validate at least one schema (anyOf)")
            out.schema += results[0].schema
    if s.get("oneOf"):
        passing = sum(not run(sub).schema for sub in s["oneOf"])
        if passing != 1:
            out.body(name, "", "must validate one and only one schema (oneOf)")
    if isinstance(s.get("not"), dict) and not run(s["not"]).schema:
        out.body(name, "", "must not validate the schema (not)")


def _check_string(v: str, s: Schema, name: str, out: _Errors) -> None:
    if "maxLength" in s and len(v) > s["maxLength"]:
        out.schema.append(too_long(out.at(name), s["maxLength"]))
    if "minLength" in s and len(v) < s["minLength"]:
        out.body(name, v, f"should be at least {s['minLength']} chars long")
    pattern = _pattern(s["pattern"]) if "pattern" in s else None
    if pattern is not None and not pattern.search(v):
        out.body(name, v, f"should match '{s['pattern']}'")
    check = _FORMATS.get(s.get("format") or "")
    if check is not None and not check(v):
        out.body(name, v, f'must be of type {s["format"]}: {json.dumps(v)}',
                 "FieldValueTypeInvalid")


def _check_number(v: float, s: Schema, name: str, out: _Errors) -> None:
    m = s.get("multipleOf")
    if m and not float(v / m).is_integer():
        out.body(name, v, f"should be a multiple of {go_number(float(m))}")
    if "maximum" in s:
        limit, excl = s["maximum"], s.get("exclusiveMaximum")
        if v > limit or (excl and v == limit):
            word = "less than" if excl else "less than or equal to"
            out.body(name, v, f"should be {word} {go_number(float(limit))}")
    if "minimum" in s:
        limit, excl = s["minimum"], s.get("exclusiveMinimum")
        if v < limit or (excl and v == limit):
            word = "greater than" if excl else "greater than or equal to"
            out.body(name, v, f"should be {word} {go_number(float(limit))}")


def _check_array(v: list[Any], s: Schema, name: str, fp: str, out: _Errors) -> None:
    if "minItems" in s and len(v) < s["minItems"]:
        out.body(name, len(v), f"should have at least {s['minItems']} items")
    if "maxItems" in s and len(v) > s["maxItems"]:
        out.schema.append(too_many(out.at(name), len(v), s["maxItems"]))
    if s.get("uniqueItems") and len({_canon(x) for x in v}) != len(v):
        out.body(name, "", "shouldn't contain duplicates")
    items = s.get("items")
    if isinstance(items, dict):
        for i, x in enumerate(v):
            _check(x, items, f"{name}[{i}]", f"{fp}[{i}]", out)
    list_type = s.get("x-kubernetes-list-type")
    keys = s.get("x-kubernetes-list-map-keys") or []
    seen: set[str] = set()
    for i, x in enumerate(v):
        if list_type == "map" and isinstance(x, dict):
            ident: Any = {k: x.get(k) for k in keys}
        elif list_type == "set":
            ident = x
        else:
            continue
        c = _canon(ident)
        if c in seen:
            out.lists.append(duplicate(out.at(f"{fp}[{i}]"), ident))
        seen.add(c)


def _check_object(v: dict[str, Any], s: Schema, name: str, fp: str, out: _Errors,
                  root: bool) -> None:
    if "maxProperties" in s and len(v) > s["maxProperties"]:
        out.schema.append(too_many(out.at(name), len(v), s["maxProperties"]))
    if "minProperties" in s and len(v) < s["minProperties"]:
        out.body(name, len(v), f"should have at least {s['minProperties']} properties")
    for k in s.get("required") or []:
        if k not in v:
            out.schema.append(required(out.at(_join(name, k))))
    props, addl = _props(s), s.get("additionalProperties")
    for k, x in v.items():
        if k in props:
            _check(x, props[k], _join(name, k), _join(fp, k), out)
        elif isinstance(addl, dict):
            _check(x, addl, _join(name, k), f"{fp}[{k}]", out)
        elif addl is False and not (root and k in _META_FIELDS):
            out.schema.append(invalid(out.at(name), k, f"{_join(name, k)} in body is a "
                                      "forbidden property"))
    if s.get("x-kubernetes-embedded-resource") and not root:
        out.meta += _check_embedded(v, out.at(fp))


def _check_embedded(v: dict[str, Any], fp: str) -> list[Cause]:
    errs = [required(_join(fp, k)) for k in ("apiVersion", "kind") if k not in v]
    kind = v.get("kind")
    if "kind" in v and not isinstance(kind, str):
        errs.append(invalid(_join(fp, "kind"), kind, "must be a string"))
    elif isinstance(kind, str):
        msgs = ["must not be empty"] if not kind else [
            "may have mixed case, but should otherwise match: " + ",".join(m)
            for m in [is_dns1035_label(kind.lower())] if m]
        errs += [invalid(_join(fp, "kind"), kind, m) for m in msgs]
    api_version = v.get("apiVersion")
    if "apiVersion" in v and (not isinstance(api_version, str) or not api_version):
        errs.append(invalid(_join(fp, "apiVersion"), api_version,
                            "must be a string" if not isinstance(api_version, str)
                            else "must not be empty"))
    meta = v.get("metadata")
    if isinstance(meta, dict):
        meta = {**meta, "name": meta.get("name") or "fakename"}
        errs += validate_object_meta(meta, namespaced=bool(meta.get("namespace")),
                                     name_check=path_segment_name, field=_join(fp, "metadata"))
    return errs


def validate(obj: Any, schema: Schema | None, *, field_prefix: str = "") -> list[Cause]:
    """Errors of a (defaulted, pruned) custom object against its version's openAPIV3Schema:
    schema errors, then embedded-resource metadata, then list-type duplicates. CEL rules
    (``x-kubernetes-validations``) are ``celrules``'."""
    if not schema:
        return []
    out = _Errors(field_prefix)
    _check(obj, schema, "", "", out, root=not field_prefix)
    return out.schema + out.meta + out.lists

