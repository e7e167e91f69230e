"""Pure helpers on Kubernetes objects as plain dicts."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def without_nulls(value: Any) -> Any:
    """``value`` with every mapping entry whose value is ``null`` removed, at any depth.

    Kubernetes clients send ``null`` for "not set" (upstream's ``make_cluster_spec`` emits
    ``"env": null`` and ``"resources": null``), and whether the API server keeps those nulls
    depends on the CRD schema: a field marked ``nullable`` keeps them, others are pruned. Readers
    of a spec must treat null and absent alike, so they read it through this function once.
    List items are kept as they are (a null item is refused by the API server's validation).
    """
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def key_of(obj: Obj) -> tuple[str | None, str]:
    """``(namespace, name)``: how a cache keys an object (namespace None if cluster-scoped)."""
    meta = obj["metadata"]
    return (meta.get("namespace"), meta["name"])


def owner_reference(owner: Obj, *, controller: bool = True, block: bool = True) -> Obj:
    """An ownerReference to ``owner``, so deleting the owner deletes the dependant (cascade
    deletion). ``controller`` marks the one owner that manages the dependant; ``block`` makes a
    foreground deletion of the owner wait for the dependant."""
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"],
            "uid": meta["uid"], "controller": controller, "blockOwnerDeletion": block}


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference marked ``controller`` (at most one per object), or None."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None
