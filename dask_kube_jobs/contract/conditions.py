"""Status conditions (``metav1.Condition`` and the core kinds' conditions) on plain dicts.

``lastTransitionTime`` moves only when a condition's status flips, so
``kubectl wait --for=condition=X`` and dashboards see real transitions rather than a timestamp
that changes on every pass.
"""

from __future__ import annotations

from collections.abc import Iterable

from .objects import Obj
from .times import fmt_time


def find_condition(conditions: Iterable[Obj] | None, ctype: str) -> Obj | None:
    """The condition of type ``ctype`` in a ``conditions`` list, or None."""
    return next((c for c in conditions or [] if c.get("type") == ctype), None)


def condition(obj: Obj, ctype: str) -> Obj | None:
    """The condition of type ``ctype`` in an object's ``status.conditions``, or None."""
    return find_condition((obj.get("status") or {}).get("conditions"), ctype)


def is_true(conditions: Iterable[Obj] | None, ctype: str) -> bool:
    cond = find_condition(conditions, ctype)
    return bool(cond and cond.get("status") == "True")


def set_condition(conditions: Iterable[Obj] | None, new: Obj) -> list[Obj]:
    """Replace the condition of ``new['type']`` in place (others untouched, order kept; appended
    if absent), keeping the old lastTransitionTime if the status did not change."""
    out: list[Obj] = []
    placed = False
    for c in conditions or []:
        if c.get("type") == new["type"]:
            if c.get("status") == new.get("status") and c.get("lastTransitionTime"):
                new = {**new, "lastTransitionTime": c["lastTransitionTime"]}
            out.append(new)
            placed = True
        else:
            out.append(c)
    if not placed:
        out.append(new)
    return out


def put_condition(conditions: Iterable[Obj] | None, ctype: str, status: bool, reason: str,
                  message: str, generation: int | None = None) -> list[Obj]:
    """``conditions`` with a ``metav1.Condition`` of ``ctype`` set to ``status``, stamped now
    unless its status is unchanged, with ``observedGeneration`` when ``generation`` is given."""
    new: Obj = {"type": ctype, "status": "True" if status else "False", "reason": reason,
                "message": message, "lastTransitionTime": fmt_time()}
    if generation is not None:
        new["observedGeneration"] = generation
    return set_condition(conditions, new)
