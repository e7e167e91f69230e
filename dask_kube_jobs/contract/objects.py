"""Pure helpers on Kubernetes objects as plain dicts."""

from __future__ import annotations

from typing import Any


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
