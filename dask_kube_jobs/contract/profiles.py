"""The vocabulary of DaskClusterProfile: what a profile may lock and what an option may set.

An administrator's profile is a named cluster shape (docs/profiles.md). The CRD generator
turns these tables into the schema's enums and patterns, the operator resolves profiles with
them, and the client faces check options early with them, so each is written here once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .quantity import parse_quantity

KIND = "DaskClusterProfile"

#: Fields a profile may lock: a user spec that sets one to anything but the profile's value
#: is refused. ``image`` and ``resources`` and ``env`` cover both main containers.
LOCKABLE = ("image", "resources", "nodeSelector", "tolerations", "affinity",
            "serviceAccountName", "env", "idleTimeout", "imagePullSecrets",
            "priorityClassName")

#: An option's name is a Python identifier, so ``KubeCluster(profile=..., worker_memory=...)``
#: can take it as a keyword.
OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: What an option may set, and the kind of value each takes. ``env.NAME`` (any env var name)
#: sets NAME in both main containers and takes a choice.
QUANTITY_TARGETS = ("worker.memory", "worker.cpu", "worker.gpu", "scheduler.memory",
                    "scheduler.cpu")
INTEGER_TARGETS = ("worker.replicas", "idleTimeout")
CHOICE_TARGETS = ("image", "scheduler.image", "worker.image")
ENV_TARGET_PREFIX = "env."
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
#: The schema's pattern for ``target`` (the exact names, or ``env.`` + a variable name).
TARGET_PATTERN = ("^(" + "|".join(re.escape(t) for t in
                                  (*QUANTITY_TARGETS, *INTEGER_TARGETS, *CHOICE_TARGETS))
                  + r"|env\.[-._a-zA-Z][-._a-zA-Z0-9]*)$")

#: The resource name each quantity target sets (requests and limits alike).
RESOURCE_OF_TARGET = {"memory": "memory", "cpu": "cpu", "gpu": "nvidia.com/gpu"}

#: The option kinds: exactly one of them per option.
OPTION_KINDS = ("quantity", "integer", "choice")


def option_kind_of_target(target: str) -> str | None:
    """Which option kind (``quantity``/``integer``/``choice``) ``target`` takes; None if
    ``target`` is not a target."""
    if target in QUANTITY_TARGETS:
        return "quantity"
    if target in INTEGER_TARGETS:
        return "integer"
    if target in CHOICE_TARGETS:
        return "choice"
    if target.startswith(ENV_TARGET_PREFIX) and ENV_NAME.fullmatch(target[len(ENV_TARGET_PREFIX):]):
        return "choice"
    return None


#: Why an option refuses a value (``accepted``'s second item).
NOT_A_CHOICE, NOT_A_NUMBER, OUT_OF_RANGE = "not a choice", "not a number", "out of range"


def whole_number(value: Any) -> int:
    """An integer option's value: an int, or the digits of one as text (``"3"``)."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError(value)


def accepted(kind: str, rule: Mapping[str, Any], value: Any) -> tuple[Any, str | None]:
    """Whether an option of ``kind`` with ``rule`` (its ``choices`` or ``min``/``max``) takes
    ``value``: ``(value as its target takes it, None)``, or ``(None, why)`` with ``why`` one of
    NOT_A_CHOICE, NOT_A_NUMBER, OUT_OF_RANGE. The operator (authoritative) and the clients'
    early check both judge by this, each in its own words."""
    if kind == "choice":
        if str(value) in {str(c) for c in rule.get("choices") or ()}:
            return str(value), None
        return None, NOT_A_CHOICE
    parse = parse_quantity if kind == "quantity" else whole_number
    lo, hi = rule.get("min"), rule.get("max")
    try:
        number: Decimal | int = parse(value)
        low = None if lo is None else parse(lo)
        high = None if hi is None else parse(hi)
    except ValueError:
        return None, NOT_A_NUMBER
    if (low is not None and number < low) or (high is not None and number > high):
        return None, OUT_OF_RANGE
    return (str(value) if kind == "quantity" else int(number)), None
