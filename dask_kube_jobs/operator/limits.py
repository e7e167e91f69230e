"""Server-side limits an administrator sets for the operator, and the checks that apply them.

The limits live in one ConfigMap (``DKJ_LIMITS_CONFIGMAP=<namespace>/<name>``, key
``limits.yaml``) rather than in flags, so changing them takes effect within a few seconds
without restarting the operator: the ConfigMap is read through the operator's own client and
cached for ``DKJ_LIMITS_CACHE_SECONDS`` (default 3). No variable, or no ConfigMap, means no
limits. The file is validated whole: a malformed one is never half-applied. The last valid one
stays in force and the error is logged and recorded as a Warning Event on the ConfigMap; if no
valid configuration was read since the operator started (a missing ConfigMap is a valid one: no
limits), nothing new is admitted (failing closed), because an operator that silently runs
without the caps its administrator wrote is worse than one that waits for a fix.

Everything else here is pure: parsing (``parse_policy``), Kubernetes quantities, image
patterns, and the checks that turn a spec into ``Violation`` values whose messages name the
field, the value asked for, the limit, where the limit is set, and what to do. The reconcilers
decide what a violation means for their kind (refuse admission, or hold a worker group at its
size); nothing here ever changes a user's object.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from ..contract.quantity import parse_quantity
from ..kube import CONFIGMAPS, Client, EventRecorder, Forbidden, Unauthorized
from . import pod_policy

log = logging.getLogger("dask_kube_jobs.operator.limits")

Obj = dict[str, Any]

ENV_CONFIGMAP = "DKJ_LIMITS_CONFIGMAP"
ENV_CACHE_SECONDS = "DKJ_LIMITS_CACHE_SECONDS"
DATA_KEY = "limits.yaml"
DEFAULT_CACHE_SECONDS = 3.0
#: How soon a refused object is looked at again: a lowered count or a raised limit lets it
#: proceed within seconds (plus the cache's age).
RECHECK_SECONDS = 3.0

CONDITION_ADMITTED = "Admitted"
CONDITION_WITHIN_LIMITS = "WithinLimits"
REASON_EXCEEDED = "LimitExceeded"
REASON_CONFIG_INVALID = "LimitsConfigInvalid"

#: Workers per cluster when no limits file sets ``maxWorkersPerCluster`` (the operator's
#: ``--default-max-workers-per-cluster``; 0 there means none). A default, because a typo like
#: ``replicas: 1000000`` must not turn into a million Pod creations; an administrator's file
#: overrides it, and ``maxWorkersPerCluster: null`` there lifts it.
DEFAULT_MAX_WORKERS_PER_CLUSTER = 1000
ENV_DEFAULT_MAX_WORKERS = "DKJ_DEFAULT_MAX_WORKERS_PER_CLUSTER"
_BUILT_IN = "<built-in default>"
_default_max_workers: int | None = DEFAULT_MAX_WORKERS_PER_CLUSTER


def set_default_max_workers(value: int | None) -> None:
    """The operator's default cap (None or 0: no default cap)."""
    global _default_max_workers
    _default_max_workers = value or None


def default_max_workers() -> int | None:
    return _default_max_workers


_COUNT_KEYS = ("maxWorkersPerCluster", "maxClustersPerNamespace", "maxJobsPerNamespace")
_KEYS = (*_COUNT_KEYS, "resources", "allowedImages", "podPolicy")


class LimitsConfigError(ValueError):
    """The limits file is malformed; ``field`` is the dotted path of the offending entry."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


# -- images ----------------------------------------------------------------------------------
def normalized_image(image: str) -> str:
    """The fully qualified form Docker resolves a short name to: ``python:3.12`` ->
    ``docker.io/library/python:3.12``, so patterns can be written either way."""
    first, _, rest = image.partition("/")
    if not rest:
        return f"docker.io/library/{image}"
    if "." in first or ":" in first or first == "localhost":
        return image
    return f"docker.io/{image}"


def image_allowed(image: str, patterns: Iterable[str]) -> bool:
    """True if ``image`` (as written or fully qualified) matches one of ``patterns``: a pattern
    ending in ``/`` is a registry or repository prefix; any other is a glob (``*`` matches any
    text, ``/`` included). ``image_allowed("ghcr.io/dask/dask:2024.1", ["ghcr.io/dask/"])``."""
    forms = {image, normalized_image(image)}
    for written in patterns:
        for pattern in {written, normalized_image(written)}:
            if pattern.endswith("/"):
                if any(f.startswith(pattern) for f in forms):
                    return True
            elif any(fnmatch.fnmatchcase(f, pattern) for f in forms):
                return True
    return False


# -- the policy ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Range:
    """Allowed values of one resource in each container's requests and limits."""

    min: Decimal | None = None
    max: Decimal | None = None
    min_text: str | None = None
    max_text: str | None = None


@dataclass(frozen=True)
class Limits:
    """The limits in force in one namespace; None means no limit. ``keys`` maps each limit to
    where it is written in the file (``maxWorkersPerCluster`` or
    ``namespaces.team-a.maxWorkersPerCluster``), for messages that say what to raise."""

    max_workers_per_cluster: int | None = None
    max_clusters_per_namespace: int | None = None
    max_jobs_per_namespace: int | None = None
    resources: Mapping[str, Range] = field(default_factory=dict)
    allowed_images: tuple[str, ...] | None = None
    keys: Mapping[str, str] = field(default_factory=dict)
    source: str = ""
    #: What the operator refuses in any Pod it creates (pod_policy.py); always in force.
    pod_policy: pod_policy.PodPolicy = pod_policy.DEFAULT_POLICY
    #: Set when the configuration is unreadable and no valid one was ever read: admit nothing.
    error: str | None = None

    @property
    def any(self) -> bool:
        return bool(self.error or self.resources or self.allowed_images is not None or any(
            v is not None for v in (self.max_workers_per_cluster, self.max_clusters_per_namespace,
                                    self.max_jobs_per_namespace)))

    def where(self, key: str) -> str:
        """Where the limit ``key`` is set, in words an administrator can act on."""
        path = self.keys.get(key)
        if path == _BUILT_IN:
            return (f"the operator's default of {self.max_workers_per_cluster} "
                    f"(--default-max-workers-per-cluster); an administrator overrides it with "
                    f"maxWorkersPerCluster in the operator's limits ConfigMap ({ENV_CONFIGMAP}, "
                    "the chart's values.limits)")
        if path is None:
            parent, _, leaf = key.rpartition(".")
            path = f"{self.keys[parent]}.{leaf}" if parent in self.keys else key
        return f"{self.source}, key {DATA_KEY}, field {path}"


NO_LIMITS = Limits()


@dataclass(frozen=True)
class Policy:
    """A validated limits file: defaults plus per-namespace overrides (raw, already checked)."""

    defaults: Mapping[str, Any] = field(default_factory=dict)
    namespaces: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    source: str = ""
    error: str | None = None

    def for_namespace(self, namespace: str) -> Limits:
        """The defaults with the namespace's overrides on top: a key in the override replaces
        the default (``null`` lifts it); ``resources`` entries are replaced per resource name."""
        if self.error:
            return Limits(source=self.source, error=self.error)
        merged: dict[str, Any] = dict(self.defaults)
        keys = {k: k for k in self.defaults}
        override = self.namespaces.get(namespace) or {}
        for key, value in override.items():
            where = f"namespaces.{namespace}.{key}"
            if key in ("resources", "podPolicy") and value is not None:
                section = dict(merged.get(key) or {})
                section.update(value)
                merged[key] = section
                keys.update({f"{key}.{r}": f"{where}.{r}" for r in value})
            else:
                merged[key] = value
                keys[key] = where
        for section in ("resources", "podPolicy"):
            for name in (merged.get(section) or {}):
                keys.setdefault(f"{section}.{name}", f"{section}.{name}")
        resources = {name: _range(spec) for name, spec in (merged.get("resources") or {}).items()
                     if spec is not None}
        images = merged.get("allowedImages")
        if "maxWorkersPerCluster" not in merged and _default_max_workers is not None:
            merged["maxWorkersPerCluster"] = _default_max_workers
            keys["maxWorkersPerCluster"] = _BUILT_IN
        return Limits(
            max_workers_per_cluster=merged.get("maxWorkersPerCluster"),
            max_clusters_per_namespace=merged.get("maxClustersPerNamespace"),
            max_jobs_per_namespace=merged.get("maxJobsPerNamespace"),
            resources={k: v for k, v in resources.items() if v.min is not None or v.max is not None},
            allowed_images=tuple(images) if images is not None else None,
            keys=keys, source=self.source, pod_policy=pod_policy.from_section(
                merged.get("podPolicy"), {k: f"{self.source}, key {DATA_KEY}, field {keys[f'podPolicy.{k}']}"
                                          for k in pod_policy.KEYS if f"podPolicy.{k}" in keys}))


def _range(spec: Mapping[str, Any]) -> Range:
    low, high = spec.get("min"), spec.get("max")
    return Range(parse_quantity(low) if low is not None else None,
                 parse_quantity(high) if high is not None else None,
                 str(low) if low is not None else None, str(high) if high is not None else None)


def _check_section(section: Any, where: str, *, top: bool) -> dict[str, Any]:
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise LimitsConfigError(where or "(top level)", f"must be a mapping, not {type(section).__name__}")
    allowed = (*_KEYS, "namespaces") if top else _KEYS
    prefix = f"{where}." if where else ""
    out: dict[str, Any] = {}
    for key, value in section.items():
        path = f"{prefix}{key}"
        if key not in allowed:
            raise LimitsConfigError(path, f"unknown key; the keys are {', '.join(allowed)}")
        if value is None:
            if top and key != "maxWorkersPerCluster":
                continue  # an empty default is no limit
            # An override of null lifts the default; so does a top-level null the operator's
            # own default cap on workers.
            out[key] = None
        elif key in _COUNT_KEYS:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise LimitsConfigError(path, f"must be a whole number >= 0, not {value!r}")
            out[key] = value
        elif key == "allowedImages":
            if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
                raise LimitsConfigError(path, "must be a list of image patterns, e.g. "
                                              "[\"ghcr.io/dask/\", \"docker.io/library/python:3.*\"]")
            out[key] = list(value)
        elif key == "resources":
            out[key] = _check_resources(value, path)
        elif key == "podPolicy":
            try:
                out[key] = pod_policy.check_section(value)
            except pod_policy.PodPolicyError as exc:
                raise LimitsConfigError(f"{path}.{exc.field}".rstrip("."), exc.problem) from None
        elif key == "namespaces":
            if not isinstance(value, dict):
                raise LimitsConfigError(path, "must map namespace names to limits")
            out[key] = {str(ns): _check_section(v, f"{path}.{ns}", top=False) for ns, v in value.items()}
    return out


def _check_resources(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LimitsConfigError(path, 'must map resource names to {min, max}, e.g. {cpu: {max: "4"}}')
    out: dict[str, Any] = {}
    for name, spec in value.items():
        where = f"{path}.{name}"
        if spec is None:
            out[name] = None
            continue
        if not isinstance(spec, dict) or not set(spec) <= {"min", "max"}:
            raise LimitsConfigError(where, 'must be {min: <quantity>, max: <quantity>}, e.g. {max: 16Gi}')
        for bound in ("min", "max"):
            if spec.get(bound) is not None:
                try:
                    parse_quantity(spec[bound])
                except ValueError as exc:
                    raise LimitsConfigError(f"{where}.{bound}", str(exc)) from None
        low, high = spec.get("min"), spec.get("max")
        if low is not None and high is not None and parse_quantity(low) > parse_quantity(high):
            raise LimitsConfigError(where, f"min {low} is above max {high}")
        out[name] = dict(spec)
    return out


def parse_policy(text: str | None, *, source: str = "") -> Policy:
    """Validate a whole ``limits.yaml``; raises LimitsConfigError naming the bad entry.

    >>> parse_policy("maxWorkersPerCluster: 50").for_namespace("a").max_workers_per_cluster
    50
    """
    try:
        raw = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        raise LimitsConfigError(DATA_KEY, f"is not valid YAML: {exc}") from None
    checked = _check_section(raw, "", top=True)
    namespaces = checked.pop("namespaces", {}) or {}
    policy = Policy(defaults=checked, namespaces=namespaces, source=source)
    for ns in ["", *namespaces]:
        policy.for_namespace(ns)  # every merge must build (quantities were checked above)
    return policy


# -- checks ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Violation:
    """One refused value: ``field`` in the user's object, what it asks, and the limit."""

    field: str
    message: str


def cap_owner(limits: Limits, key: str) -> str:
    """Whose cap ``key`` is, for messages: the administrator's, or the operator's default."""
    return "the operator's default" if limits.keys.get(key) == _BUILT_IN else "the administrator's"


def _set_by(limits: Limits, key: str) -> str:
    if limits.keys.get(key) == _BUILT_IN:
        return f"({limits.where(key)})"
    return f"set by the operator's administrator ({limits.where(key)})"


def containers_of(pod_spec: Mapping[str, Any] | None, path: str) -> list[tuple[str, Obj]]:
    """(field path, container) for every container and init container of a Pod spec."""
    out = []
    for kind in ("initContainers", "containers"):
        for i, c in enumerate((pod_spec or {}).get(kind) or []):
            out.append((f"{path}.{kind}[{i}]", c))
    return out


def check_pod_spec(limits: Limits, pod_spec: Mapping[str, Any] | None, path: str) -> list[Violation]:
    """Images and resource ranges of every container of a Pod spec written at ``path``."""
    found: list[Violation] = []
    for cpath, container in containers_of(pod_spec, path):
        image = container.get("image") or ""
        if limits.allowed_images is not None and not image_allowed(image, limits.allowed_images):
            allowed = ", ".join(limits.allowed_images) or "none"
            found.append(Violation(f"{cpath}.image", (
                f"{cpath}.image={image!r} is not among the allowed images ({allowed}) "
                f"{_set_by(limits, 'allowedImages')}; use an allowed image or ask your "
                f"administrator to allow this one")))
        resources = container.get("resources") or {}
        for part in ("requests", "limits"):
            for name, rng in limits.resources.items():
                value = (resources.get(part) or {}).get(name)
                if value is None:
                    continue
                fpath = f"{cpath}.resources.{part}.{name}"
                try:
                    amount = parse_quantity(value)
                except ValueError:
                    found.append(Violation(fpath, f"{fpath}={value!r} is not a quantity"))
                    continue
                key = f"resources.{name}"
                if rng.max is not None and amount > rng.max:
                    found.append(Violation(fpath, (
                        f"{fpath}={value} exceeds the maximum of {rng.max_text} {name} per container "
                        f"{_set_by(limits, key + '.max')}; lower {fpath} or ask your administrator "
                        f"to raise the limit")))
                elif rng.min is not None and amount < rng.min:
                    found.append(Violation(fpath, (
                        f"{fpath}={value} is below the minimum of {rng.min_text} {name} per container "
                        f"{_set_by(limits, key + '.min')}; raise {fpath} or ask your administrator "
                        f"to lower the minimum")))
    return found


def check_workers(limits: Limits, *, field: str, requested: int, others: int = 0,
                  cluster: str = "") -> list[Violation]:
    """``requested`` workers at ``field`` plus ``others`` already asked for by the cluster's
    other worker groups, against the workers-per-cluster cap."""
    cap = limits.max_workers_per_cluster
    if cap is None or requested + others <= cap:
        return []
    extra = f" (with {others} more in other worker groups of DaskCluster {cluster})" if others else ""
    return [Violation(field, (
        f"{field}={requested}{extra} exceeds the limit of {cap} workers per cluster "
        f"{_set_by(limits, 'maxWorkersPerCluster')}; lower {field} or ask your administrator "
        f"to raise the limit"))]


def check_cluster_spec(limits: Limits, spec: Mapping[str, Any] | None, *, path: str = "spec",
                       others: int = 0, cluster: str = "") -> list[Violation]:
    """A DaskCluster spec (or a DaskJob's ``spec.cluster.spec``) against the limits."""
    spec = spec or {}
    worker = spec.get("worker") or {}
    scheduler = spec.get("scheduler") or {}
    found = check_workers(limits, field=f"{path}.worker.replicas",
                          requested=int(worker.get("replicas") or 0), others=others, cluster=cluster)
    found += check_pod_spec(limits, scheduler.get("spec"), f"{path}.scheduler.spec")
    found += check_pod_spec(limits, worker.get("spec"), f"{path}.worker.spec")
    return found


def check_job_spec(limits: Limits, spec: Mapping[str, Any] | None) -> list[Violation]:
    spec = spec or {}
    found = check_pod_spec(limits, (spec.get("job") or {}).get("spec"), "spec.job.spec")
    found += check_cluster_spec(limits, (spec.get("cluster") or {}).get("spec"), path="spec.cluster.spec")
    return found


def config_problem(limits: Limits) -> Violation | None:
    if not limits.error:
        return None
    return Violation("", f"the operator's limits configuration ({limits.source}) is invalid and no "
                         f"valid one has been read yet, so nothing new is admitted: {limits.error}; "
                         f"ask your administrator to fix it")


def summary(violations: list[Violation]) -> str:
    """One message for a status condition: every refused value, each with its fix."""
    return "; ".join(v.message for v in violations) if len(violations) < 2 else \
        f"{len(violations)} limits exceeded: " + " | ".join(v.message for v in violations)


# -- counting admissions ---------------------------------------------------------------------
def admission_key(obj: Obj) -> tuple[str, str]:
    """Oldest first, then by name: the order in which waiting objects get free places."""
    meta = obj["metadata"]
    return meta.get("creationTimestamp") or "", meta["name"]


def has_place(obj: Obj, siblings: Iterable[Obj], cap: int | None, *,
              holds_place: Any, waits_in_line: Any) -> tuple[bool, int]:
    """Whether ``obj`` may be admitted under a per-namespace ``cap``, and how many places are
    taken. Admitted objects (``holds_place``) keep their place; waiting ones
    (``waits_in_line``: not admitted, could be) are served oldest first, so two operator passes
    -- or two operators -- reach the same verdict from the same observed objects."""
    if cap is None:
        return True, 0
    mine = admission_key(obj)
    others = [s for s in siblings if s["metadata"].get("uid") != obj["metadata"].get("uid")]
    taken = sum(1 for s in others if holds_place(s))
    ahead = sum(1 for s in others if not holds_place(s) and waits_in_line(s) and admission_key(s) < mine)
    return taken + ahead < cap, taken


# -- loading ---------------------------------------------------------------------------------
class PolicyLoader:
    """Reads and caches the limits ConfigMap; reports a bad one once per distinct error."""

    def __init__(self, ref: str | None, *, cache_seconds: float = DEFAULT_CACHE_SECONDS) -> None:
        self.namespace, self.name = _split_ref(ref) if ref else (None, None)
        self.cache_seconds = cache_seconds
        self.source = f"ConfigMap {self.namespace}/{self.name}" if self.name else ""
        self._policy: Policy | None = None
        self._last_good: Policy | None = None
        self._read_at = float("-inf")
        self._reported: str | None = None
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return self.name is not None

    async def policy(self, client: Client, events: EventRecorder | None = None, *,
                     fresh: bool = False) -> Policy:
        """The policy, from the cache unless it is older than ``cache_seconds``; ``fresh``
        reads it now (admission decisions, which are rare and must follow the latest file)."""
        if not self.configured:
            return Policy()
        asked = time.monotonic()
        max_age = 0.0 if fresh else self.cache_seconds
        if self._policy is not None and asked - self._read_at < max_age:
            return self._policy
        async with self._lock:
            # Another caller may have read it while this one waited for the lock.
            if self._policy is None or self._read_at < asked - max_age or (fresh and self._read_at < asked):
                read_at = time.monotonic()
                self._policy = await self._read(client, events)
                self._read_at = read_at
        return self._policy

    async def _read(self, client: Client, events: EventRecorder | None) -> Policy:
        configmap: Obj | None = None
        try:
            configmap = await client.get(CONFIGMAPS, self.namespace, self.name)  # type: ignore[arg-type]
            if configmap is None:
                policy = Policy(source=self.source)
            else:
                policy = parse_policy((configmap.get("data") or {}).get(DATA_KEY), source=self.source)
        except LimitsConfigError as exc:
            return await self._bad(f"key {DATA_KEY}: {exc}", configmap, events)
        except (Unauthorized, Forbidden) as exc:  # anything else is temporary: retried
            return await self._bad(f"the operator may not read it ({exc.code} {exc.reason}); grant it "
                                   f"get on configmaps in {self.namespace}", None, events)
        if self._reported is not None:
            log.info("limits from %s are valid again", self.source)
        self._reported = None
        self._last_good = policy
        return policy

    async def _bad(self, error: str, configmap: Obj | None, events: EventRecorder | None) -> Policy:
        kept = self._last_good
        if self._reported != error:
            self._reported = error
            consequence = ("the last valid limits stay in force" if kept is not None
                           else "nothing new is admitted until it is fixed")
            log.error("limits configuration %s is invalid: %s; %s", self.source, error, consequence)
            if events is not None and configmap is not None:
                await events.record(configmap, "Warning", REASON_CONFIG_INVALID,
                                    f"{error}; {consequence}")
        return kept if kept is not None else Policy(source=self.source, error=error)


def _split_ref(ref: str) -> tuple[str, str]:
    namespace, _, name = ref.strip().rpartition("/")
    if not name:
        raise SystemExit(f"{ENV_CONFIGMAP}={ref!r}: expected <namespace>/<name> of the limits ConfigMap")
    return namespace or os.environ.get("POD_NAMESPACE") or "default", name


_loader: PolicyLoader | None = None


def loader() -> PolicyLoader:
    """The process's loader, configured from the environment on first use."""
    global _loader
    if _loader is None:
        _loader = PolicyLoader(os.environ.get(ENV_CONFIGMAP) or None,
                               cache_seconds=float(os.environ.get(ENV_CACHE_SECONDS) or DEFAULT_CACHE_SECONDS))
    return _loader


async def limits_for(client: Client, events: EventRecorder | None, namespace: str, *,
                     fresh: bool = False) -> Limits:
    """The limits in force in ``namespace`` (NO_LIMITS when none are configured); ``fresh``
    skips the cache, for decisions that refuse or admit something."""
    source = loader()
    if not source.configured:
        return Policy().for_namespace(namespace)  # the built-in default cap, if any
    return (await source.policy(client, events, fresh=fresh)).for_namespace(namespace)


# -- admission state, read back from status ---------------------------------------------------
def is_admitted(status: Mapping[str, Any] | None, *, started: bool) -> bool:
    """Whether an object holds its admission: its ``Admitted`` condition says so, or it has no
    such condition but ``started`` (it was made by an operator from before limits existed, and
    keeps running as it did)."""
    cond = next((c for c in (status or {}).get("conditions") or []
                 if c.get("type") == CONDITION_ADMITTED), None)
    if cond is None:
        return started
    return cond.get("status") == "True"


def refused_message(status: Mapping[str, Any] | None) -> str | None:
    """The message of a False ``Admitted`` condition: what a waiting object is waiting for."""
    cond = next((c for c in (status or {}).get("conditions") or []
                 if c.get("type") == CONDITION_ADMITTED), None)
    return cond.get("message") if cond and cond.get("status") == "False" else None
