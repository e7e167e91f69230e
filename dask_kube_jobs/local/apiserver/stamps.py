"""Timestamps and status conditions as the API server writes them.

Shared by the generic REST machinery (``core``) and the per-kind strategies (``strategies``), so
that every ``creationTimestamp``, ``deletionTimestamp`` and condition transition has the same
second-resolution RFC 3339 form a real kube-apiserver serialises.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def later(seconds: int) -> str:
    t = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[Obj], ctype: str, status: str, reason: str, message: str,
                  stamp: str | None = None) -> list[Obj]:
    """``conditions`` with the condition of type ``ctype`` replaced; its transition time moves
    only when its status changes."""
    out = [c for c in conditions if c.get("type") != ctype]
    prior = next((c for c in conditions if c.get("type") == ctype), None)
    transition = prior["lastTransitionTime"] if prior and prior.get("status") == status else (stamp or now())
    out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                "lastTransitionTime": transition})
    return out
