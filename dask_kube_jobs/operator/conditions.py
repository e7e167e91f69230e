"""Kubernetes-style status conditions (``metav1.Condition``) for our resources.

``lastTransitionTime`` only moves when the status flips, so ``kubectl wait --for=condition=X``
and dashboards see real transitions rather than a timestamp that changes on every pass.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def put(existing: list[Obj] | None, ctype: str, status: bool, reason: str, message: str,
        generation: int | None = None) -> list[Obj]:
    """``existing`` with condition ``ctype`` set; other conditions untouched, order kept."""
    value = "True" if status else "False"
    out: list[Obj] = []
    found = False
    for cond in existing or []:
        if cond.get("type") != ctype:
            out.append(cond)
            continue
        found = True
        changed = cond.get("status") != value
        out.append({
            "type": ctype, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": now() if changed else cond.get("lastTransitionTime") or now(),
            **({"observedGeneration": generation} if generation is not None else {}),
        })
    if not found:
        out.append({"type": ctype, "status": value, "reason": reason, "message": message,
                    "lastTransitionTime": now(),
                    **({"observedGeneration": generation} if generation is not None else {})})
    return out


def get(conditions: list[Obj] | None, ctype: str) -> Obj | None:
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def is_true(conditions: list[Obj] | None, ctype: str) -> bool:
    cond = get(conditions, ctype)
    return bool(cond and cond.get("status") == "True")
