"""The four PATCH flavours of the Kubernetes API, as pure functions over plain dicts.

kubectl, kr8s, kopf and Helm each pick a different ``Content-Type`` for PATCH and each depends on
the server answering the way kube-apiserver does: kopf sends JSON patches guarded by ``test`` ops
and expects a 422 (not a 500) when the guard fails; ``kubectl apply`` / ``kubectl edit`` send
strategic merge patches that must merge containers by name rather than replace the list; Helm 4
and ``kubectl apply --server-side`` send apply patches (see :mod:`.apply`). Keeping all of it free
of I/O lets the HTTP handler stay a thin dispatcher and lets the semantics be unit-tested cheaply.

Strategic merge patch is driven by the ``x-kubernetes-patch-*`` extensions of the schemas in
:mod:`dask_kube_jobs.crds.k8s_schemas` rather than by hand-written tables, so every built-in kind
gets the same behaviour as on a real cluster. Where the schema says nothing (no schema, an unknown field, a
preserve-unknown-fields subtree) strategic merge degrades to JSON merge patch, which is also what
the real server does for types it has no patch metadata for.

Reading that metadata is :mod:`.patchmeta`'s job, shared with :mod:`.apply` and
:mod:`.fieldcheck`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import jsonpatch
import jsonpointer
import yaml

from . import apply, errors
from .patchmeta import Schema, child_schema, item_schema, strategies

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH_YAML = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"

#: Content type -> patch flavour. ``None`` marks a type we recognise but do not implement
#: (CBOR apply patches; no client we serve sends them), answered with 415 like any unknown type.
PATCH_TYPES: dict[str, str | None] = {
    MERGE_PATCH: "merge",
    JSON_PATCH: "json",
    STRATEGIC_MERGE_PATCH: "strategic",
    APPLY_PATCH_YAML: "apply",
    APPLY_PATCH_CBOR: None,
}
PATCH_CONTENT = {v: k for k, v in PATCH_TYPES.items() if v}  # flavour -> content type

# ---------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                current = result[key] = {}
            _merge_into(current, value)
        else:
            result[key] = copy.deepcopy(value)


# ---------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)


def json_patch(target: Any, ops: Any, *, kind: str = "", name: str = "") -> Any:
    """Apply RFC 6902 operations. A malformed document is a 400; a patch that does not apply to
    this object (failed ``test``, missing path) is a 422 ``Invalid``, as kube-apiserver answers."""
    if not isinstance(ops, list):
        raise errors.bad_request(
            "json patch must be a JSON array of operations, got " + type(ops).__name__)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise errors.bad_request(f"json patch operation {i} has no \"op\" member")
        if not isinstance(op.get("path"), str):
            raise errors.bad_request(f"json patch operation {i} has no \"path\" member")
    try:
        patch = jsonpatch.JsonPatch(ops)
        return patch.apply(target, in_place=False)
    except jsonpatch.InvalidJsonPatch as exc:  # unknown op, missing value/from
        raise errors.bad_request(f"invalid json patch: {exc}") from None
    except jsonpatch.JsonPatchTestFailed as exc:
        raise _patch_invalid(kind, name, f"test operation failed: {exc}") from None
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise _patch_invalid(kind, name, f"json patch does not apply: {exc}") from None
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise _patch_invalid(kind, name, f"json patch does not apply: {exc!r}") from None


def _patch_invalid(kind: str, name: str, message: str) -> errors.APIError:
    return errors.invalid(kind or "object", name, [errors.Cause("", message, "FieldValueInvalid")])


# ---------------------------------------------------------------------------------------------
# Strategic merge patch

_DELETE = object()  # returned by _smp_map for a ``$patch: delete`` map
_DELETE_FROM = "$deleteFromPrimitiveList/"
_SET_ORDER = "$setElementOrder/"


def _is_directive(key: str) -> bool:
    return key in ("$patch", "$retainKeys") or key.startswith((_DELETE_FROM, _SET_ORDER))


def strategic_merge_patch(target: Any, patch: Any, schema: Schema | None) -> dict[str, Any]:
    """Kubernetes strategic merge patch of ``target`` guided by the kind's ``schema``."""
    if not isinstance(patch, dict):
        raise errors.bad_request("strategic merge patch must be a JSON object")
    base = copy.deepcopy(target) if isinstance(target, dict) else {}
    result = _smp_map(base, patch, schema)
    return {} if result is _DELETE else result


def _smp_map(original: dict[str, Any], patch: Mapping[str, Any], schema: Schema | None) -> Any:
    """Merge ``patch`` into ``original`` (which this module owns and may mutate)."""
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        original = {}
    elif directive not in (None, "merge"):
        raise errors.bad_request(f"unknown patch directive $patch: {directive!r} in a map")
    for key, values in patch.items():  # deletions run before merges, as in kube
        if key.startswith(_DELETE_FROM) and isinstance(values, list):
            field = key[len(_DELETE_FROM):]
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in values]
    for key, value in patch.items():
        if _is_directive(key):
            continue
        if value is None:
            original.pop(key, None)
            continue
        prop = child_schema(schema, key)
        current = original.get(key)
        if isinstance(value, dict):
            if "replace" in strategies(prop) or not isinstance(current, dict):
                current = {}
            merged = _smp_map(current, value, prop)
            if merged is _DELETE:
                original.pop(key, None)
            else:
                original[key] = merged
        elif isinstance(value, list):
            original[key] = _smp_list(current if isinstance(current, list) else [], value, prop)
        else:
            original[key] = value
    for key, order in patch.items():
        if key.startswith(_SET_ORDER) and isinstance(order, list):
            field = key[len(_SET_ORDER):]
            if isinstance(original.get(field), list):
                merge_key = (child_schema(schema, field) or {}).get("x-kubernetes-patch-merge-key")
                original[field] = _reorder(original[field], order, merge_key)
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        original = {k: v for k, v in original.items() if k in retain}
    return original


def _smp_list(original: list[Any], patch: list[Any], schema: Schema | None) -> list[Any]:
    items = item_schema(schema)
    marker = {"$patch": "replace"}
    if marker in patch:  # ``[{"$patch": "replace"}, ...rest]``: the list becomes the rest
        return [_fresh(i, items) for i in patch if i != marker]
    if "merge" not in strategies(schema):
        return [_fresh(i, items) for i in patch]
    merge_key = (schema or {}).get("x-kubernetes-patch-merge-key")
    if not merge_key:
        if all(not isinstance(i, (dict, list)) for i in patch):
            return original + [v for i, v in enumerate(patch) if v not in original
                               and v not in patch[:i]]
        return [_fresh(i, items) for i in patch]
    result = list(original)
    for item in patch:
        if not isinstance(item, dict):
            raise errors.bad_request(
                f"strategic merge patch: list items must be objects with merge key {merge_key!r}")
        if merge_key not in item:
            raise errors.bad_request(
                f"map: {item} does not contain declared merge key: {merge_key}")
        at = next((n for n, old in enumerate(result)
                   if isinstance(old, dict) and old.get(merge_key) == item[merge_key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                del result[at]
            continue
        if at is None:
            merged = _smp_map({}, item, items)
            if merged is not _DELETE:
                result.append(merged)
        else:
            merged = _smp_map(result[at], item, items)
            if merged is _DELETE:
                del result[at]
            else:
                result[at] = merged
    return result


def _fresh(value: Any, schema: Schema | None) -> Any:
    """A patch value inserted whole: copied, with directives and nulls taken out."""
    if isinstance(value, dict):
        merged = _smp_map({}, value, schema)
        return {} if merged is _DELETE else merged
    if isinstance(value, list):
        return [_fresh(i, item_schema(schema)) for i in value]
    return value


def _reorder(values: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    """Honour ``$setElementOrder``: listed elements first in the given order, then the rest."""
    def ident(v: Any) -> Any:
        if merge_key and isinstance(v, dict):
            return json.dumps(v.get(merge_key), sort_keys=True)
        return json.dumps(v, sort_keys=True)

    rank = {ident(v): n for n, v in enumerate(order)}
    return sorted(values, key=lambda v: rank.get(ident(v), len(rank)))  # stable for the rest


# ---------------------------------------------------------------------------------------------
# Dispatch on Content-Type


class _YAMLLoader(yaml.SafeLoader):
    """Safe YAML that keeps timestamps as strings, as the Go YAML-to-JSON decoder does
    (``creationTimestamp: 2024-01-01T00:00:00Z`` must not become a ``datetime``)."""


_YAMLLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YAMLLoader.add_constructor("tag:yaml.org,2002:timestamp",
                            lambda loader, node: loader.construct_scalar(node))


def _decode(flavour: str, body: bytes | str) -> Any:
    try:
        text = body.decode("utf-8") if isinstance(body, (bytes, bytearray)) else body
    except UnicodeDecodeError as exc:
        raise errors.bad_request(f"patch body is not UTF-8: {exc}") from None
    if flavour == "apply":
        try:
            return yaml.load(text, Loader=_YAMLLoader)  # noqa: S506 - a SafeLoader
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error decoding YAML apply patch: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise errors.bad_request(
            f"error decoding patch body as JSON: {exc} (content type {PATCH_CONTENT[flavour]})"
        ) from None


def apply_patch_body(
    content_type: str,
    target: dict[str, Any] | None,
    body_bytes: bytes | str,
    *,
    schema: Schema | None,
    builtin: bool,
    kind: str = "",
    name: str = "",
    manager: str | None = None,
    force: bool = False,
    now: str = "",
) -> dict[str, Any]:
    """Parse a PATCH body by its ``Content-Type`` and apply it to ``target``.

    ``target`` is None only for an apply patch that creates the object. When ``manager`` is given
    ``metadata.managedFields`` is kept up to date (an Apply entry for apply patches, an Update
    entry otherwise); without one, managed fields are left as the patch leaves them.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    flavour = PATCH_TYPES.get(media)
    if flavour is None or (flavour == "strategic" and not builtin):
        raise errors.unsupported_media_type(media)
    if force and flavour != "apply":
        raise errors.bad_request("force must be unset for non-apply patch requests")
    doc = _decode(flavour, body_bytes)

    if flavour == "apply":
        if not manager:
            raise errors.bad_request(
                "PATCH requests of type application/apply-patch+yaml must include fieldManager")
        if not isinstance(doc, dict):
            raise errors.bad_request("apply patch must be a YAML or JSON object")
        return apply.apply_patch(target, doc, manager=manager, schema=schema, force=force, now=now)

    if target is None:
        raise errors.not_found(kind.lower() or "object", name)
    if flavour == "json":
        result = json_patch(target, doc, kind=kind, name=name)
        if not isinstance(result, dict):
            raise _patch_invalid(kind, name, "json patch must leave an object")
    elif not isinstance(doc, dict):
        raise errors.bad_request(f"{media} patch must be a JSON object")
    elif flavour == "merge":
        result = merge_patch(target, doc)
    else:
        result = strategic_merge_patch(target, doc, schema)
    if manager:
        result = apply.record_update(target, result, manager=manager, schema=schema, now=now)
    return result
