"""Server-side apply and field ownership (``metadata.managedFields``), simplified but honest.

``kubectl apply --server-side`` and Helm 4 send the whole intended object as an
``application/apply-patch+yaml`` PATCH and rely on the server to (1) merge it into the live object,
(2) remove the fields that the same manager applied before but no longer sends, and (3) refuse,
with a 409 naming the other manager, to change a field another applier owns. All three need a
record of who owns what, which is ``metadata.managedFields``; kubectl also shows it with
``--show-managed-fields``. This module keeps that record in the real ``FieldsV1`` encoding.

A field set is handled as a Python ``set`` of paths, each a tuple of ``FieldsV1`` path elements:
``f:<field>`` for a struct/map field, ``k:<json key>`` for an item of a keyed list (the key
fields from ``x-kubernetes-list-map-keys``, or the older patch merge key), ``v:<json value>`` for
a member of a set. Leaves and list items are members; plain maps are not (their children are),
which is how an Apply entry looks on a real cluster. Sets of tuples make the ownership arithmetic
(union, difference, "does anyone else own this or something under it") one-liners.

Simplifications, deliberately: no defaulting of the applied object other than ``protocol: TCP``
in list keys (so ``ports`` items match), no per-version conversion of field sets, explicit
``null`` in an apply patch removes the field instead of owning a null, and, as the brief for this
server asks, only other *Apply* managers cause conflicts; fields last written by an Update
manager silently move to the applier (a real server also reports those as conflicts).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
from typing import Any

from . import errors
from .patchmeta import Schema, child_schema, item_schema, list_info

Path = tuple[str, ...]
FieldSet = set[Path]

_MISSING = object()
#: Defaults of list-key fields, so an applied ``{containerPort: 80}`` matches the stored item.
_KEY_DEFAULTS = {"protocol": "TCP"}
#: Fields a real server never records as owned (identity and bookkeeping).
_STRIPPED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",)}
    | {("f:metadata", "f:" + f) for f in (
        "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
        "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")}
)
_IGNORED_APPLIED_META = ("managedFields", "uid", "creationTimestamp", "generation",
                         "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


# ---------------------------------------------------------------------------------------------
# Field sets


def _key_of(item: Any, keys: list[str]) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        return None
    key = {}
    for k in keys:
        value = item.get(k, _KEY_DEFAULTS.get(k, _MISSING))
        if value is not _MISSING:
            key[k] = value
    return key if keys and keys[0] in key else None


def _keyed(values: list[Any], keys: list[str]) -> bool:
    """A map list is only walked by key when every item has one; otherwise it is atomic."""
    return all(_key_of(v, keys) is not None for v in values)


def _leaves(paths: FieldSet) -> FieldSet:
    """The paths with nothing of the set below them (scalars, atomic values, set members)."""
    return paths - {p[:n] for p in paths for n in range(1, len(p))}


def _encode(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def fields_of(obj: Any, schema: Schema | None) -> FieldSet:
    """The set of field paths ``obj`` sets, shaped by ``schema`` (maps granular by default,
    lists atomic unless the schema keys them), without the fields a server never tracks."""
    out: FieldSet = set()
    _walk(obj, schema, (), out)
    return out


def _walk(value: Any, schema: Schema | None, path: Path, out: FieldSet) -> None:
    if path in _STRIPPED:
        return
    if isinstance(value, dict) and (schema or {}).get("x-kubernetes-map-type") != "atomic":
        if not value and path:
            out.add(path)
        for key, child in value.items():
            _walk(child, child_schema(schema, key), path + ("f:" + key,), out)
        return
    if isinstance(value, list):
        kind, keys = list_info(schema)
        if kind == "map" and _keyed(value, keys):
            items = item_schema(schema)
            for item in value:
                item_path = path + ("k:" + _encode(_key_of(item, keys)),)
                out.add(item_path)
                for key, child in item.items():
                    _walk(child, child_schema(items, key), item_path + ("f:" + key,), out)
            return
        if kind == "set" and all(not isinstance(v, (dict, list)) for v in value):
            out.update(path + ("v:" + _encode(v),) for v in value)
            return
    if path:
        out.add(path)


def to_fields_v1(paths: FieldSet) -> dict[str, Any]:
    """Encode a field set as ``FieldsV1`` (``{"f:spec": {"f:replicas": {}}}``; ``"."`` marks a
    member that also has members below it)."""
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    members = set(paths)

    def mark(node: dict[str, Any], prefix: Path) -> None:
        for element, child in node.items():
            here = prefix + (element,)
            if child:
                mark(child, here)
                if here in members:
                    child["."] = {}
    mark(root, ())
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _sorted(node[k]) for k in sorted(node, key=lambda k: (k != ".", k))}


def from_fields_v1(fields: Any) -> FieldSet:
    """Decode ``FieldsV1`` back to a field set (malformed input yields what can be read)."""
    out: FieldSet = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            return
        for element, child in node.items():
            if element == ".":
                if prefix:
                    out.add(prefix)
                continue
            here = prefix + (element,)
            if not child:
                out.add(here)
            walk(child, here)
    walk(fields, ())
    return out


def _lookup(container: Any, element: str) -> Any:
    """The value at one path element below ``container``, or ``_MISSING``."""
    kind, _, text = element.partition(":")
    if kind == "f":
        return container.get(text, _MISSING) if isinstance(container, dict) else _MISSING
    if not isinstance(container, list):
        return _MISSING
    try:
        wanted = json.loads(text)
    except ValueError:
        return _MISSING
    if kind == "v":
        return wanted if wanted in container else _MISSING
    if kind == "k" and isinstance(wanted, dict):
        for item in container:
            if _key_of(item, list(wanted)) == wanted:
                return item
    return _MISSING


def value_at(obj: Any, path: Path) -> Any:
    for element in path:
        obj = _lookup(obj, element)
        if obj is _MISSING:
            break
    return obj


def _is_key_field(path: Path) -> bool:
    """A key field of a list item (``name`` under ``k:{"name":..}``) goes only with its item."""
    if len(path) < 2 or not path[-2].startswith("k:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _remove_at(obj: Any, path: Path) -> None:
    parent = value_at(obj, path[:-1])
    target = _lookup(parent, path[-1])
    if target is _MISSING:
        return
    if isinstance(parent, dict):
        parent.pop(path[-1][2:], None)
    elif path[-1].startswith("v:"):
        parent[:] = [v for v in parent if v != target]
    else:
        parent[:] = [v for v in parent if v is not target]


def path_string(path: Path) -> str:
    """A path as kube-apiserver prints it in conflicts: ``.spec.containers[name="c"].image``."""
    out = ""
    for element in path:
        kind, _, text = element.partition(":")
        if kind == "f":
            out += "." + text
        elif kind == "k":
            key = json.loads(text)
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        else:
            out += f"[={text}]"
    return out


# ---------------------------------------------------------------------------------------------
# managedFields entries


def _time(now: Any) -> str:
    """RFC 3339 seconds, as managedFields carry; callers pass ``now``, the clock is a fallback."""
    if not now:
        now = _dt.datetime.now(_dt.timezone.utc)
    if isinstance(now, _dt.datetime):
        return now.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(now)


def _entries(obj: dict[str, Any] | None) -> list[dict[str, Any]]:
    raw = ((obj or {}).get("metadata") or {}).get("managedFields")
    return [copy.deepcopy(e) for e in raw or [] if isinstance(e, dict) and e.get("manager")]


def _entry(manager: str, operation: str, api_version: str, now: Any, fields: FieldSet,
           subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": api_version,
             "time": _time(now), "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(fields)}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _finish(result: dict[str, Any], owned: list[tuple[dict[str, Any], FieldSet]],
            schema: Schema | None) -> dict[str, Any]:
    """Store the entries, dropping ownership of fields the result no longer has."""
    present = fields_of(result, schema)
    entries = []
    for entry, fields in owned:
        fields = fields & present
        if fields:
            entry["fieldsV1"] = to_fields_v1(fields)
            entries.append(entry)
    meta = result.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
    return result


# ---------------------------------------------------------------------------------------------
# Server-side apply


def _ssa_merge(live: Any, applied: Any, schema: Schema | None) -> Any:
    """Applied values win; maps merge; keyed lists merge by key; sets union; the rest replace."""
    if isinstance(live, dict) and isinstance(applied, dict) \
            and (schema or {}).get("x-kubernetes-map-type") != "atomic":
        result = dict(live)
        for key, value in applied.items():
            if value is None:
                result.pop(key, None)
            elif key in live:
                result[key] = _ssa_merge(live[key], value, child_schema(schema, key))
            else:
                result[key] = _strip_nulls(value)
        return result
    if isinstance(live, list) and isinstance(applied, list):
        kind, keys = list_info(schema)
        if kind == "map" and _keyed(live, keys) and _keyed(applied, keys):
            items, result = item_schema(schema), list(live)
            for item in applied:
                key = _key_of(item, keys)
                at = next((n for n, old in enumerate(result) if _key_of(old, keys) == key), None)
                if at is None:
                    result.append(_strip_nulls(item))
                else:
                    result[at] = _ssa_merge(result[at], item, items)
            return result
        if kind == "set":
            return live + [v for v in applied if v not in live]
    return _strip_nulls(applied)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _conflict_error(conflicts: dict[tuple[str, str], list[Path]]) -> errors.APIError:
    total = sum(len(paths) for paths in conflicts.values())
    parts, causes = [], []
    for (manager, api_version), paths in conflicts.items():
        using = f' using {api_version}' if api_version else ""
        names = [path_string(p) for p in sorted(paths)]
        if len(names) == 1:
            parts.append(f'conflict with "{manager}"{using}: {names[0]}')
        else:
            listed = "\n".join(f"- {n}" for n in names)
            parts.append(f'conflicts with "{manager}"{using}:\n{listed}')
        causes += [errors.Cause(n, f'conflict with "{manager}"{using}', "FieldManagerConflict")
                   for n in names]
    plural = "conflict" if total == 1 else "conflicts"
    return errors.APIError(409, "Conflict", f"Apply failed with {total} {plural}: "
                           + "\n".join(parts), causes=causes)


def apply_patch(live: dict[str, Any] | None, applied: dict[str, Any], *, manager: str,
                schema: Schema | None, force: bool = False, now: Any = "",
                resource: str = "", group: str = "") -> dict[str, Any]:
    """Server-side apply of ``applied`` (the manager's full intent) onto ``live``.

    Returns the new object with ``metadata.managedFields`` updated. Raises 409 when another
    Apply manager owns a field this apply would change (unless ``force``) or when ``applied``
    carries a ``resourceVersion`` other than the live one. ``resource``/``group`` only word
    that second message.
    """
    applied = copy.deepcopy(applied)
    meta = applied.get("metadata")
    if not isinstance(meta, dict):
        meta = applied["metadata"] = {}
    for key in _IGNORED_APPLIED_META:
        meta.pop(key, None)
    rv = meta.pop("resourceVersion", None)
    if live is not None and rv and rv != (live.get("metadata") or {}).get("resourceVersion"):
        raise errors.conflict(resource or str(applied.get("kind", "")).lower(),
                              str(meta.get("name", "")), group)
    api_version = str(applied.get("apiVersion") or (live or {}).get("apiVersion") or "")
    mine = fields_of(applied, schema)

    if live is None:
        result = _strip_nulls(applied)
        return _finish(result, [(_entry(manager, "Apply", api_version, now, mine), mine)], schema)

    entries = _entries(live)
    if not entries:  # objects written without field tracking: someone owns what is there
        entries = [_entry("before-first-apply", "Update", api_version, now,
                          fields_of(live, schema))]
    owned = [(e, from_fields_v1(e.get("fieldsV1"))) for e in entries]
    is_mine = [e.get("manager") == manager and e.get("operation") == "Apply" for e, _ in owned]
    previous = set().union(*(f for (e, f), m in zip(owned, is_mine, strict=True) if m))

    changed = {p for p in _leaves(mine) if value_at(live, p) != value_at(applied, p)}
    conflicts: dict[tuple[str, str], list[Path]] = {}
    for (entry, fields), m in zip(owned, is_mine, strict=True):
        if not m and entry.get("operation") == "Apply":
            for p in changed & fields:
                conflicts.setdefault((entry["manager"], entry.get("apiVersion", "")), []).append(p)
    if conflicts and not force:
        raise _conflict_error(conflicts)

    # Changed fields move to the applier; equal values stay shared, as on a real server.
    others = [(e, f - changed) for (e, f), m in zip(owned, is_mine, strict=True) if not m]
    result = _ssa_merge(copy.deepcopy(live), applied, schema)
    result["metadata"] = dict(result.get("metadata") or {})

    # Fields this manager applied before and dropped now go, unless someone else holds them.
    kept = mine.union(*(f for _, f in others))
    protected = {p[:n] for p in kept for n in range(1, len(p) + 1)}
    for path in sorted(previous - mine, key=len):
        if path not in protected and not _is_key_field(path):
            _remove_at(result, path)

    entry = next((e for (e, _), m in zip(owned, is_mine, strict=True) if m), None)
    entry = dict(entry or {}, **_entry(manager, "Apply", api_version, now, mine))
    at = is_mine.index(True) if True in is_mine else len(others)
    others.insert(at, (entry, mine))
    return _finish(result, others, schema)


# ---------------------------------------------------------------------------------------------
# Ownership for ordinary writes


def record_update(old: dict[str, Any] | None, new: dict[str, Any], *, manager: str | None,
                  schema: Schema | None, now: Any = "", operation: str = "Update",
                  subresource: str | None = None) -> dict[str, Any]:
    """Account a create/update/patch by ``manager``: the fields it added or changed become its
    own (``operation`` entry) and leave the other managers. Returns a new object.

    ``managedFields`` sent by the client replace the stored ones when they differ (``[]`` resets
    them, as on a real server); otherwise the stored ones carry over.
    """
    new = copy.deepcopy(new)
    if manager is None:
        return new
    sent = (new.get("metadata") or {}).get("managedFields")
    stored = ((old or {}).get("metadata") or {}).get("managedFields")
    entries = _entries(new) if sent is not None and sent != stored else _entries(old)
    before = fields_of(old, schema) if old is not None else set()
    after = fields_of(new, schema)
    changed = {p for p in after if p not in before}
    changed |= {p for p in _leaves(after) if value_at(old, p) != value_at(new, p)}
    if old is not None and sent == []:
        changed = after  # reset: the writer now owns everything

    api_version = str(new.get("apiVersion") or "")
    owned: list[tuple[dict[str, Any], FieldSet]] = []
    mine = None
    for entry in entries:
        fields = from_fields_v1(entry.get("fieldsV1"))
        if (entry.get("manager"), entry.get("operation"), entry.get("subresource")) == \
                (manager, operation, subresource):
            mine = (entry, fields)
        else:
            owned.append((entry, fields - changed))
    if mine is not None:
        entry, fields = mine
        if changed:
            entry.update(time=_time(now), apiVersion=api_version)
        owned.insert(entries.index(entry), (entry, fields | changed))
    elif changed:
        owned.append((_entry(manager, operation, api_version, now, set(), subresource), changed))
    return _finish(new, owned, schema)
