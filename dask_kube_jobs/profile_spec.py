"""Cluster profiles as the client sees them: the ``spec.profile`` block, and a profile's options.

A DaskClusterProfile (cluster-scoped, ``kubectl get dcp``) is a named cluster shape an
administrator offers, with **options** a user may set within bounds (``worker_memory`` between
2Gi and 16Gi, one of three images), as Dask Gateway's cluster options are. A DaskCluster or
DaskJob picks one with ``spec.profile: {name, options}``.

The operator is the authority: it resolves the profile, applies the options and refuses what a
profile does not allow. The client faces (the spec builders, ``submit``, ``KubeCluster``, the
CLI, the Airflow provider) check early only what they can: the block's shape always, and the
options against the profile when they can read it, so a typo fails before anything is created,
in the same terms (the option, the value, what is allowed, the profile).

Everything here is pure (no I/O), so the spec builders can use it without an HTTP client.

>>> profile_block("standard", {"worker_memory": "8Gi"})
{'name': 'standard', 'options': {'worker_memory': '8Gi'}}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .contract.profiles import (
    NOT_A_CHOICE,
    NOT_A_NUMBER,
    OPTION_KINDS,
    OPTION_NAME,
    OUT_OF_RANGE,
    accepted,
)
from .errors import ProfileOptionError

__all__ = ["ClusterProfile", "ProfileOption", "parse_option_pairs", "profile_block",
           "with_profile"]

_PROFILE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def _value_problem(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"must be a string or an integer, got {type(value).__name__} {value!r}"
    return None


def profile_block(name: Any, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``spec.profile`` block naming profile ``name`` with ``options`` (values kept as
    given: the operator reads strings and integers). Raises :class:`ProfileOptionError` on a
    malformed name, option name or value; whether the profile offers them is not known here.

    >>> profile_block("gpu")
    {'name': 'gpu'}
    """
    if not isinstance(name, str) or len(name) > 253 or not _PROFILE_NAME.fullmatch(name):
        raise ProfileOptionError(f"profile: {name!r} is not a DaskClusterProfile name (lower "
                                 "case letters, digits, '-' and '.')", profile=str(name))
    block: dict[str, Any] = {"name": name}
    if options is None:
        return block
    if not isinstance(options, Mapping):
        raise ProfileOptionError(f"profile_options: must be a dict of option names to values, "
                                 f"got {type(options).__name__}", profile=name)
    for key, value in options.items():
        if not isinstance(key, str) or not OPTION_NAME.fullmatch(key):
            raise ProfileOptionError(f"profile {name!r}: {key!r} is not an option name (lower "
                                     "case letters, digits and '_', starting with a letter)",
                                     profile=name, option=str(key))
        problem = _value_problem(value)
        if problem:
            raise ProfileOptionError(f"profile {name!r}: option {key} {problem}",
                                     profile=name, option=key, value=value)
    if options:
        block["options"] = dict(options)
    return block


def with_profile(manifest: Mapping[str, Any], name: str,
                 options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A copy of a DaskCluster or DaskJob manifest whose ``spec.profile`` is ``name`` with
    ``options`` merged over the options it already named (for that same profile; a different
    profile's options are dropped, they belong to it).

    >>> with_profile({"spec": {"profile": {"name": "a", "options": {"x": 1}}}}, "a", {"y": 2})
    {'spec': {'profile': {'name': 'a', 'options': {'x': 1, 'y': 2}}}}
    """
    out = copy.deepcopy(dict(manifest))
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    old = spec.get("profile") if isinstance(spec.get("profile"), dict) else {}
    kept = old.get("options") if old.get("name") == name and \
        isinstance(old.get("options"), dict) else {}
    spec["profile"] = profile_block(name, {**kept, **(options or {})})
    out["spec"] = spec
    return out


def parse_option_pairs(pairs: Iterable[str] | None, argument: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` strings as options; a VALUE of digits only becomes an integer (``workers=3``),
    anything else stays a string (``worker_memory=8Gi``).

    >>> parse_option_pairs(["worker_memory=8Gi", "workers=3"])
    {'worker_memory': '8Gi', 'workers': 3}
    """
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ProfileOptionError(f"{argument}: {pair!r} must look like KEY=VALUE, e.g. "
                                     "worker_memory=8Gi", option=key or None)
        out[key] = int(value) if value.isdigit() else value
    return out


@dataclass(frozen=True)
class ProfileOption:
    """One option a profile offers: what it sets (``target``) and what it accepts."""

    name: str
    target: str
    kind: str  # one of OPTION_KINDS
    default: Any = None
    minimum: Any = None
    maximum: Any = None
    choices: tuple[Any, ...] = ()
    description: str = ""

    @classmethod
    def from_spec(cls, item: Mapping[str, Any]) -> ProfileOption:
        """An option from one entry of a profile's ``spec.options``."""
        kind = next((k for k in OPTION_KINDS if isinstance(item.get(k), Mapping)), "")
        rule = item.get(kind) or {}
        return cls(name=str(item.get("name") or ""), target=str(item.get("target") or ""),
                   kind=kind, default=rule.get("default"), minimum=rule.get("min"),
                   maximum=rule.get("max"), choices=tuple(rule.get("choices") or ()),
                   description=str(item.get("description") or ""))

    def allowed(self) -> str:
        """What the option accepts, in words: ``2Gi to 16Gi``, ``one of a, b``."""
        if self.kind == "choice":
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"at least {self.minimum}"
        if self.maximum is not None:
            return f"at most {self.maximum}"
        return "any quantity" if self.kind == "quantity" else "any whole number"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not accepted, or None."""
        shape = _value_problem(value)
        if shape:
            return shape
        rule = {"choices": self.choices, "min": self.minimum, "max": self.maximum}
        why = accepted(self.kind, rule, value)[1]
        if why == NOT_A_CHOICE:
            return "is not a choice"
        if why == NOT_A_NUMBER:
            return "is not a whole number" if self.kind == "integer" else \
                "is not a quantity (e.g. 8Gi, 500m, 2)"
        return "is out of range" if why == OUT_OF_RANGE else None

    def as_dict(self) -> dict[str, Any]:
        """The option as plain data (the CLI's json/yaml output)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description,
                               "target": self.target, "kind": self.kind,
                               "default": self.default}
        if self.kind == "choice":
            out["choices"] = list(self.choices)
        else:
            out.update(min=self.minimum, max=self.maximum)
        return out


@dataclass(frozen=True)
class ClusterProfile:
    """A DaskClusterProfile as a user reads it: its description, options and locked fields."""

    name: str
    description: str = ""
    options: tuple[ProfileOption, ...] = ()
    locked: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> ClusterProfile:
        spec = obj.get("spec") or {}
        return cls(name=str((obj.get("metadata") or {}).get("name") or ""),
                   description=str(spec.get("description") or ""),
                   options=tuple(ProfileOption.from_spec(o) for o in spec.get("options") or ()
                                 if isinstance(o, Mapping)),
                   locked=tuple(str(x) for x in spec.get("locked") or ()), raw=dict(obj))

    def option(self, name: str) -> ProfileOption | None:
        return next((o for o in self.options if o.name == name), None)

    def check_options(self, options: Mapping[str, Any] | None) -> None:
        """Raise :class:`ProfileOptionError` for the first option this profile does not
        offer, or whose value it does not accept; the message names the option, the value,
        what is allowed and the profile."""
        for key, value in (options or {}).items():
            option = self.option(key)
            if option is None:
                offered = ", ".join(o.name for o in self.options) or "none"
                raise ProfileOptionError(
                    f"profile {self.name!r} has no option {key!r} (it offers: {offered})",
                    profile=self.name, option=key, value=value)
            problem = option.problem(value)
            if problem:
                raise ProfileOptionError(
                    f"profile {self.name!r}: option {key}={value!r} {problem}; allowed: "
                    f"{option.allowed()}", profile=self.name, option=key, value=value,
                    allowed=option.allowed())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "locked": list(self.locked), "options": [o.as_dict() for o in self.options]}
