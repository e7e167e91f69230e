"""Patch metadata: what a schema says about merging a field, read the way kube-apiserver reads it.

Strategic merge patch, server-side apply and unknown-field detection all walk an object and its
schema side by side and ask the same questions of each field: what is the schema of this key or
of these list items, does the field say ``replace`` or ``retainKeys``, is a list a map keyed by
some fields, a set or atomic. The answers come from the ``x-kubernetes-patch-*`` and
``x-kubernetes-list-*`` extensions of :mod:`dask_kube_jobs.crds.k8s_schemas` (built-in kinds) or of
a CRD's schema. Kept apart from :mod:`.patch` so that :mod:`.apply` (which :mod:`.patch` calls
for apply patches) and :mod:`.fieldcheck` can read the metadata without importing the patchers.
"""

from __future__ import annotations

from typing import Any

from ...crds import k8s_schemas

Schema = dict[str, Any]


def _node(raw: Schema | None) -> Schema | None:
    """Resolve ``raw`` but keep the ``x-kubernetes-*`` keys written next to its ``$ref``.

    ``DeploymentSpec.strategy`` is ``{"$ref": ..., "x-kubernetes-patch-strategy": "retainKeys"}``:
    the strategy belongs to the property, not to the referenced definition, so a plain
    :func:`k8s_schemas.resolve` would lose it.
    """
    if not isinstance(raw, dict):
        return None
    target = raw
    all_of = raw.get("allOf")
    if "$ref" not in raw and isinstance(all_of, list) and len(all_of) == 1:
        target = all_of[0]
    resolved = k8s_schemas.resolve(target) if "$ref" in target else target
    if resolved is raw or resolved is None:
        return resolved
    extra = {k: v for k, v in raw.items() if k.startswith("x-kubernetes-")}
    return {**resolved, **extra} if extra else resolved


def child_schema(schema: Schema | None, key: str) -> Schema | None:
    """The schema of field ``key`` of an object schema, None when the schema does not know it."""
    schema = _node(schema)
    if not schema:
        return None
    prop = (schema.get("properties") or {}).get(key)
    if prop is None:
        extra = schema.get("additionalProperties")
        prop = extra if isinstance(extra, dict) else None
    return _node(prop)


def item_schema(schema: Schema | None) -> Schema | None:
    schema = _node(schema)
    return _node(schema.get("items")) if schema else None


def strategies(schema: Schema | None) -> set[str]:
    raw = (schema or {}).get("x-kubernetes-patch-strategy") or ""
    return {s.strip() for s in raw.split(",") if s.strip()}


def list_info(schema: Schema | None) -> tuple[str, list[str]]:
    """How a list field is identified for server-side apply: ``("map", keys)``, ``("set", [])``
    or ``("atomic", [])``. ``x-kubernetes-list-type`` wins; an older ``patch-strategy: merge``
    with a merge key is read as a map list, and without one (primitive items) as a set."""
    schema = schema or {}
    list_type = schema.get("x-kubernetes-list-type")
    keys = list(schema.get("x-kubernetes-list-map-keys") or [])
    if list_type == "map":
        merge_key = schema.get("x-kubernetes-patch-merge-key")
        keys = keys or ([merge_key] if merge_key else [])
        return ("map", keys) if keys else ("atomic", [])
    if list_type in ("set", "atomic"):
        return list_type, []
    if "merge" in strategies(schema):
        merge_key = schema.get("x-kubernetes-patch-merge-key")
        return ("map", [merge_key]) if merge_key else ("set", [])
    return "atomic", []
