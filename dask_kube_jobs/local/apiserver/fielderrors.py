"""``field.Error`` rendering: validation causes worded exactly as kube-apiserver words them.

Clients (kubectl, kopf, Helm) show these messages to people, and tests compare them with what a
real cluster answers, so the wording follows ``k8s.io/apimachinery/pkg/util/validation/field``:
``Invalid value: "x": <detail>``, ``Required value``, ``Unsupported value: ...; supported values:
...``, with bad values printed as Go prints them (``%v`` for scalars, ``%#v`` for maps and
lists). Used by ObjectMeta checks (``objectmeta.py``), custom-object validation
(``structural.py``) and CRD validation (``crd_validation.py``).
"""

from __future__ import annotations

import json
from typing import Any

from .errors import Cause


def go_number(v: float) -> str:
    return str(int(v)) if v.is_integer() and abs(v) < 1e21 else repr(v)


def _gosharp(v: Any) -> str:
    """Go's ``%#v`` of a decoded JSON value, as field errors print non-scalar bad values."""
    if v is None:
        return "interface {}(nil)"
    if isinstance(v, dict):
        inner = ", ".join(f"{json.dumps(k)}:{_gosharp(v[k])}" for k in sorted(v))
        return "map[string]interface {}{" + inner + "}"
    if isinstance(v, list):
        return "[]interface {}{" + ", ".join(_gosharp(x) for x in v) + "}"
    return go_value(v)


def go_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return _gosharp(v)


def _body(kind: str, detail: str) -> str:
    return f"{kind}: {detail}" if detail else kind


def invalid(field: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> Cause:
    return Cause(field, _body(f"Invalid value: {go_value(value)}", detail), reason)


def required(field: str, detail: str = "") -> Cause:
    return Cause(field, _body("Required value", detail), "FieldValueRequired")


def forbidden(field: str, detail: str) -> Cause:
    return Cause(field, _body("Forbidden", detail), "FieldValueForbidden")


def not_supported(field: str, value: Any, supported: list[str]) -> Cause:
    detail = "supported values: " + ", ".join(json.dumps(s) for s in supported) if supported else ""
    return Cause(field, _body(f"Unsupported value: {go_value(value)}", detail),
                 "FieldValueNotSupported")


def too_long(field: str, limit: int) -> Cause:
    unit = "byte" if limit == 1 else "bytes"
    return Cause(field, f"Too long: may not be more than {limit} {unit}", "FieldValueTooLong")


def too_many(field: str, actual: int, limit: int) -> Cause:
    unit = "item" if limit == 1 else "items"
    message = f"Too many: {actual}: must have at most {limit} {unit}"
    return Cause(field, message, "FieldValueTooMany")


def duplicate(field: str, value: Any) -> Cause:
    return Cause(field, f"Duplicate value: {go_value(value)}", "FieldValueDuplicate")
