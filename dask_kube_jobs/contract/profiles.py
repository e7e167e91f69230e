"""The vocabulary of DaskClusterProfile: what a profile may lock and what an option may set.

An administrator's profile is a named cluster shape (docs/profiles.md). The CRD generator
turns these tables into the schema's enums and patterns, the operator resolves profiles with
them, and the client faces check options early with them, so each is written here once.
"""

from __future__ import annotations

import re

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
