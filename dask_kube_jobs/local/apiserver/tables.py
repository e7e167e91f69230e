"""Server-side printing: ``meta.k8s.io`` ``Table`` answers for ``kubectl get``.

kubectl does not know how to print most kinds itself; it asks the apiserver for a Table
(``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``) and prints the columns it gets.
Without this every ``kubectl get`` shows only ``NAME AGE``. Built-in kinds get the columns and
cells of kube-apiserver's built-in printers (``printers.py``), and custom resources get their CRD's
``additionalPrinterColumns`` evaluated as JSONPath, as the apiextensions server does. The server
always prints the wide columns (priority 1); kubectl hides them unless ``-o wide``.
Everything here is pure: objects in, JSON-ready dicts out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ...contract.times import parse_time
from . import errors
from .printers import (
    AGE_DOC,
    Obj,
    Row,
    RowFn,
    age,
    builtin_printer,
    column_defs,
    get_in,
    name_of,
    to_int,
)
from .registry import ResourceType

# -- custom resources -----------------------------------------------------------------------

_DEFAULT_CR_COLUMNS = ({"name": "Age", "type": "date", "description": AGE_DOC,
                        "jsonPath": ".metadata.creationTimestamp"},)


def _go_float(f: float) -> str:
    """A float as Go's ``%v`` prints it: shortest digits, exponent form outside [1e-4, 1e6)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    d = Decimal(repr(f)).normalize()
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    point = len(digits) + exp - 1
    if -4 <= point < 6:
        return format(d, "f")
    mantissa = "".join(map(str, digits)).rstrip("0") or "0"
    body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{body}e{'+' if point >= 0 else '-'}{abs(point):02d}"


def _text(value: Any) -> str:
    """A JSONPath result as ``kubectl``'s jsonpath printer writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _cr_cell(col_type: str, value: Any, now: dt.datetime) -> Any:
    if value is None:
        return None
    if col_type == "string":
        return _text(value)
    if col_type == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if col_type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if col_type == "date" and isinstance(value, str):
        if not value:
            return "<unknown>"
        return age(value, now) if parse_time(value) else "<invalid>"
    return None


def _jsonpath_value(obj: Obj, path: str) -> Any:
    """The first value ``path`` selects in ``obj``, None if it selects nothing."""
    from .structural import evaluate_jsonpath

    try:
        result = evaluate_jsonpath(obj, path)
    except Exception:  # a column that cannot be evaluated stays empty, as on a real cluster
        return None
    return result


def _cr_printer(rtype: ResourceType, version: str | None) -> tuple[list[Obj], RowFn]:
    info = rtype.version(version) if version else None
    if info is None:
        info = rtype.version(rtype.storage_version) or rtype.versions[0]
    declared = info.printer_columns or _DEFAULT_CR_COLUMNS
    columns = column_defs("Name") + [{
        "name": c.get("name") or "", "type": c.get("type") or "string",
        "format": c.get("format") or "", "priority": to_int(c.get("priority")),
        "description": c.get("description") or (
            f"Custom resource definition column (in JSONPath format): {c.get('jsonPath')}"),
    } for c in declared]

    def row(obj: Obj, now: dt.datetime) -> Row:
        cells: list[Any] = [name_of(obj)]
        for c in declared:
            value = _jsonpath_value(obj, c.get("jsonPath") or "")
            cells.append(_cr_cell(c.get("type") or "string", value, now))
        return cells, None

    return columns, row


# -- tables ---------------------------------------------------------------------------------

_JSON_TYPES = ("application/json", "application/*", "*/*")


def wants_table(accept: str | None) -> str | None:
    """``"v1"``/``"v1beta1"`` when the Accept header's preferred servable type is a Table."""
    if not accept:
        return None
    clauses = []
    for idx, part in enumerate(accept.split(",")):
        media, *raw = [p.strip() for p in part.split(";")]
        params = {}
        for p in raw:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip()
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        clauses.append((-q, idx, media.lower(), params))
    for neg_q, _, media, params in sorted(clauses):
        if neg_q >= 0:
            continue
        conversion = params.get("as")
        if conversion is None:
            if media in _JSON_TYPES or media == "application/yaml":
                return None
            continue
        if (conversion == "Table" and params.get("g") == "meta.k8s.io"
                and params.get("v") in ("v1", "v1beta1") and media in _JSON_TYPES):
            return params["v"]
    return None


def _printer(rtype: ResourceType, version: str | None) -> tuple[list[Obj], RowFn]:
    if not rtype.builtin:
        return _cr_printer(rtype, version)
    return builtin_printer(rtype.key)


def _row_object(rtype: ResourceType, obj: Obj, version: str | None, include: str,
                table_version: str) -> Obj | None:
    if include == "Object":
        out = dict(obj)
        out.setdefault("kind", rtype.kind)
        out.setdefault("apiVersion", rtype.api_version(version))
        return out
    if include in ("Metadata", ""):
        return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{table_version}",
                "metadata": obj.get("metadata") or {}}
    return None


def to_table(rtype: ResourceType, objects: Obj | Iterable[Obj], *, version: str | None = None,
             include_object: str | None = "Metadata", list_meta: Mapping[str, Any] | None = None,
             now: dt.datetime | None = None, table_version: str = "v1",
             headers: bool = True) -> Obj:
    """A ``Table`` of ``objects`` (a list, or one object for a single GET).

    ``version`` is the resource's API version the client asked for (it picks a CRD version's
    printer columns); ``table_version`` is ``meta.k8s.io``'s (``wants_table``'s answer).
    ``list_meta`` gives the list's resourceVersion/continue; for one object it defaults to the
    object's resourceVersion. ``headers=False`` leaves out the column definitions.
    """
    include = include_object if include_object is not None else "Metadata"
    if include not in ("Object", "Metadata", "None", ""):
        raise errors.bad_request(f'unrecognized includeObject value: "{include}"')
    if isinstance(objects, Mapping):
        items = [dict(objects)]
        if list_meta is None:
            list_meta = {"resourceVersion": get_in(objects, "metadata", "resourceVersion") or ""}
    else:
        items = list(objects)
    now = now or dt.datetime.now(dt.timezone.utc)
    columns, row_fn = _printer(rtype, version)
    meta: Obj = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_meta or {}).get(key)
        if value not in (None, ""):
            meta[key] = value
    rows = []
    for obj in items:
        cells, conditions = row_fn(obj, now)
        row: Obj = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(rtype, obj, version, include, table_version)
        rows.append(row)
    return {
        "kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": meta,
        "columnDefinitions": [dict(c) for c in columns] if headers else None, "rows": rows,
    }


def table_watch_event(rtype: ResourceType, event_type: str, obj: Obj, version: str | None = None,
                      *, table_version: str = "v1", include_object: str | None = "Metadata",
                      headers: bool = True, now: dt.datetime | None = None) -> Obj:
    """A watch event whose object is a one-row Table (``kubectl get -w``).

    The apiserver sends column definitions with the first event only: pass ``headers=False``
    for the rest. ERROR events keep their Status; a BOOKMARK becomes a row-less Table that
    carries the resourceVersion.
    """
    if event_type == "ERROR":
        return {"type": event_type, "object": obj}
    if event_type == "BOOKMARK":
        rv = get_in(obj, "metadata", "resourceVersion") or ""
        return {"type": event_type, "object": {
            "kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}",
            "metadata": {"resourceVersion": rv} if rv else {},
            "columnDefinitions": None, "rows": []}}
    table = to_table(rtype, obj, version=version, include_object=include_object, now=now,
                     table_version=table_version, headers=headers)
    return {"type": event_type, "object": table}
