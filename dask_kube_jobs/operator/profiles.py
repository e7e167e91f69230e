"""Cluster profiles: a DaskCluster's (or a DaskJob's cluster's) spec plus the DaskClusterProfile
it names, resolved into the spec the operator builds from, or the reasons it is refused.

Pure: no requests. The operator reads the profile and the namespace (profile_admission.py),
and pins what it applied in ``status.profile`` so that later edits of the profile never
change a running cluster: every pass resolves the user's spec again against that pinned copy,
which gives the same Pods whatever the profile says now (docs/profiles.md).

Resolution, in order: the profile must select the namespace; what the user's spec leaves out
is filled in (the standard scheduler and worker containers of ``make_cluster_spec`` when the
spec has none, then the profile's image, resources, env and Pod fields); a locked field the
spec sets to another value is refused; every option gets its value (given in
``spec.profile.options``, else what the spec itself sets for the option's target, else the
option's default), checked against its bounds or choices and written to its target; last,
the default group's workers must lie within the profile's worker-count bounds.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

from ..contract import profiles as vocab
from ..contract.quantity import parse_quantity
from ..spec import DEFAULT_IMAGE, SpecError, make_cluster_spec

Obj = dict[str, Any]

REASON_VIOLATION = "ProfileViolation"
REASON_NOT_FOUND = "ProfileNotFound"
COMPONENTS = ("scheduler", "worker")
#: Pod fields a profile sets on both Pods (each lockable under the same name).
POD_FIELDS = ("serviceAccountName", "nodeSelector", "tolerations", "affinity",
              "imagePullSecrets", "priorityClassName")


@dataclass(frozen=True)
class Violation:
    """One refused value: the field of the user's object, and what is wrong with it."""

    field: str
    message: str


@dataclass(frozen=True)
class Choice:
    """The profile an object uses: its name, the options given, and where it was named."""

    name: str
    options: Obj
    source: str  # "spec.profile" or the namespace annotation


@dataclass
class Resolved:
    spec: Obj
    options: Obj = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)


def chosen(profile_ref: Obj | None, namespace: Obj | None, annotation: str) -> Choice | None:
    """The profile named by ``spec.profile``, else by the namespace's default annotation."""
    if profile_ref and profile_ref.get("name"):
        return Choice(profile_ref["name"], dict(profile_ref.get("options") or {}), "spec.profile")
    default = (((namespace or {}).get("metadata") or {}).get("annotations") or {}).get(annotation)
    if default:
        ns = (namespace or {}).get("metadata", {}).get("name")
        return Choice(default, {}, f"the default profile of namespace {ns} (annotation {annotation})")
    return None


def summary(violations: list[Violation]) -> str:
    """One message for a status condition and its Event."""
    if len(violations) == 1:
        return violations[0].message
    return f"{len(violations)} profile violations: " + " | ".join(v.message for v in violations)


def not_found_message(choice: Choice) -> str:
    return (f"{choice.source} names DaskClusterProfile {choice.name}, which does not exist; "
            f"nothing is created until it does (kubectl get daskclusterprofiles lists them): "
            f"create it or name another profile")


# -- label selectors -------------------------------------------------------------------------

def selects(selector: Obj | None, labels: dict[str, str] | None) -> bool:
    """Whether a metav1.LabelSelector matches ``labels``; an absent selector matches all."""
    if selector is None:
        return True
    labels = labels or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        has = key in labels
        if (op == "In" and (not has or labels[key] not in values)) or \
                (op == "NotIn" and has and labels[key] in values) or \
                (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


# -- the profile's own consistency -----------------------------------------------------------

def _option_kind(option: Obj) -> str | None:
    kinds = [k for k in vocab.OPTION_KINDS if option.get(k) is not None]
    return kinds[0] if len(kinds) == 1 else None


def profile_problems(name: str, spec: Obj) -> list[Violation]:
    """What is wrong with the profile itself (the administrator's to fix): the CRD checks most
    of it, this checks what CEL cannot (quantity order, an option's kind against its target)."""
    found = []
    for i, option in enumerate(spec.get("options") or []):
        where = f"DaskClusterProfile {name} spec.options[{i}] ({option.get('name')})"
        kind, want = _option_kind(option), vocab.option_kind_of_target(option.get("target", ""))
        if kind is None or kind != want:
            found.append(Violation("spec.profile", (
                f"{where} is invalid: target {option.get('target')!r} takes a {want} option, "
                f"not {kind or 'none or several'}; ask the administrator to fix the profile")))
            continue
        if kind == "quantity":
            bounds = option["quantity"]
            try:
                lo, hi, default = (parse_quantity(bounds[k]) if bounds.get(k) is not None
                                   else None for k in ("min", "max", "default"))
            except ValueError as exc:
                found.append(Violation("spec.profile", f"{where} is invalid: {exc}; ask the "
                                                       "administrator to fix the profile"))
                continue
            if (lo is not None and hi is not None and lo > hi) or \
                    (lo is not None and default is not None and default < lo) or \
                    (hi is not None and default is not None and default > hi):
                found.append(Violation("spec.profile", (
                    f"{where} is invalid: its quantity bounds are out of order (min "
                    f"{bounds.get('min')}, default {bounds.get('default')}, max "
                    f"{bounds.get('max')}); ask the administrator to fix the profile")))
    return found


# -- containers ------------------------------------------------------------------------------

def main_container(pod_spec: Obj, component: str) -> Obj | None:
    """The container named after its component, else the first one."""
    containers = pod_spec.get("containers") or []
    return next((c for c in containers if c.get("name") == component),
                containers[0] if containers else None)


def _standard(cluster: str, image: str, replicas: int) -> Obj:
    try:
        return make_cluster_spec(cluster, image=image, n_workers=replicas)["spec"]
    except SpecError:  # an invalid name is refused before this (names.cluster_name_problem)
        return make_cluster_spec("cluster", image=image, n_workers=replicas)["spec"]


class _Resolver:
    def __init__(self, spec: Obj, name: str, profile: Obj, given: Obj, *, cluster: str,
                 prefix: str, options_path: str) -> None:
        self.user = spec or {}
        self.name, self.profile, self.given = name, profile, given
        self.prefix, self.options_path = prefix, options_path
        self.locked = set(profile.get("locked") or [])
        self.options = list(profile.get("options") or [])
        self.targets = {o.get("target") for o in self.options}
        self.found: list[Violation] = []
        self.provided = {c: bool(((self.user.get(c) or {}).get("spec") or {}).get("containers"))
                         for c in COMPONENTS}
        worker = profile.get("worker") or {}
        self.std = _standard(cluster, profile.get("image") or DEFAULT_IMAGE,
                             int(worker.get("replicas") if worker.get("replicas") is not None else 1))
        self.out = copy.deepcopy(self.user)

    def refuse(self, path: str, message: str) -> None:
        found = Violation(path, f"{path}: {message}")
        if found not in self.found:  # one given value checked for two containers: said once
            self.found.append(found)

    def locked_msg(self, what: str, value: Any, want: Any) -> str:
        return (f"{_show(value)} differs from {_show(want)}, which DaskClusterProfile "
                f"{self.name} locks ({what}); leave it out to get the profile's value, or use "
                f"another profile")

    # filling and locks
    def fill(self) -> None:
        for comp in COMPONENTS:
            out = self.out.setdefault(comp, {})
            if not self.provided[comp]:
                out["spec"] = copy.deepcopy(self.std[comp]["spec"])
            if comp == "scheduler" and not out.get("service"):
                out["service"] = copy.deepcopy(self.std["scheduler"]["service"])
            if comp == "worker" and out.get("replicas") is None:
                out["replicas"] = self.std["worker"]["replicas"]
            self._fill_pod(comp, out["spec"])
        idle = self.profile.get("idleTimeout")
        if "idleTimeout" not in self.targets:
            have = self.user.get("idleTimeout") or 0
            if not have:
                if idle is not None:
                    self.out["idleTimeout"] = idle
            elif "idleTimeout" in self.locked and have != (idle or 0):
                self.refuse(f"{self.prefix}idleTimeout", self.locked_msg("idleTimeout", have, idle or 0))

    def _fill_pod(self, comp: str, pod: Obj) -> None:
        base = f"{self.prefix}{comp}.spec"
        for key in POD_FIELDS:
            want, have = self.profile.get(key), pod.get(key)
            if _empty(have):
                if want is not None:
                    pod[key] = copy.deepcopy(want)
            elif key in self.locked and have != want:  # locked unset: the user may not set it
                self.refuse(f"{base}.{key}", self.locked_msg(key, have, want))
        container = main_container(pod, comp)
        if container is None:
            return
        index = (pod.get("containers") or []).index(container)
        cbase = f"{base}.containers[{index}]"
        image = self.profile.get("image")
        if not container.get("image") and not self.targets & {"image", f"{comp}.image"}:
            # a main container that leaves its image to the profile (the spec builders write
            # the standard containers without one when given resources or env but no image)
            container["image"] = image or DEFAULT_IMAGE
        if image and self.provided[comp] and "image" in self.locked and \
                not self.targets & {"image", f"{comp}.image"} and container.get("image") != image:
            self.refuse(f"{cbase}.image", self.locked_msg("image", container.get("image"), image))
        self._fill_resources(comp, container, cbase)
        self._fill_env(comp, container, cbase)

    def _covered_resources(self, comp: str) -> set[str]:
        return {vocab.RESOURCE_OF_TARGET[t.split(".", 1)[1]] for t in self.targets
                if t in vocab.QUANTITY_TARGETS and t.startswith(comp + ".")}

    def _fill_resources(self, comp: str, container: Obj, cbase: str) -> None:
        want = (self.profile.get(comp) or {}).get("resources")
        have = container.get("resources")
        if not have:
            if want:
                container["resources"] = copy.deepcopy(want)
        elif "resources" in self.locked:
            skip = self._covered_resources(comp)
            if _pruned(_without(have, skip)) != _pruned(_without(want or {}, skip)):
                self.refuse(f"{cbase}.resources", self.locked_msg("resources", have, want))

    def _fill_env(self, comp: str, container: Obj, cbase: str) -> None:
        wanted = {e["name"]: e for e in self.profile.get("env") or []}
        wanted.update({e["name"]: e for e in (self.profile.get(comp) or {}).get("env") or []})
        env = container.get("env") or []
        for name, var in wanted.items():
            mine = next((e for e in env if e.get("name") == name), None)
            if mine is None:
                env.append(copy.deepcopy(var))
            elif "env" in self.locked and f"env.{name}" not in self.targets and mine != var:
                self.refuse(f"{cbase}.env[{name}]", self.locked_msg("env", mine, var))
        if env:
            container["env"] = env

    # options
    def apply_options(self) -> Obj:
        known = {o.get("name") for o in self.options}
        for key in self.given:
            if key not in known:
                offered = ", ".join(sorted(n for n in known if n)) or "none"
                self.refuse(f"{self.options_path}.{key}",
                            f"DaskClusterProfile {self.name} has no option {key!r} (its "
                            f"options: {offered}); remove it or use one of those")
        values: Obj = {}
        for option in self.options:
            value = self._apply_option(option)
            if value is not None:
                values[option["name"]] = value
        return values

    def _apply_option(self, option: Obj) -> Any:
        name, target = option["name"], option["target"]
        kind = _option_kind(option)
        if kind is None:
            return None
        bounds = option[kind]
        given = self.given.get(name)
        sites = self._sites(target)
        chosen_value = None
        for comp, path, current in sites:
            if given is not None:
                value, where = given, f"{self.options_path}.{name}"
            elif current is not None:
                value, where = current, path
            else:
                value, where = bounds.get("default"), f"{self.options_path}.{name}"
            checked = self._check(option, kind, bounds, value, where)
            if checked is None:
                continue
            self._write(target, comp, checked)
            chosen_value = checked if chosen_value is None else chosen_value
        return chosen_value

    def _check(self, option: Obj, kind: str, bounds: Obj, value: Any, where: str) -> Any:
        name = option["name"]
        about = f"option {name} ({option['target']}) of DaskClusterProfile {self.name}"
        checked, why = vocab.accepted(kind, bounds, value)
        lo, hi = bounds.get("min"), bounds.get("max")
        span = f"{lo if lo is not None else 'any'} to {hi if hi is not None else 'any'}"
        if why == vocab.NOT_A_CHOICE:
            choices = [str(c) for c in bounds.get("choices") or []]
            self.refuse(where, f"{_show(value)} is not one of the choices of {about}: "
                               f"{', '.join(choices)}; pick one of them")
        elif why == vocab.NOT_A_NUMBER:
            what = "a quantity (such as 4Gi or 500m)" if kind == "quantity" else "a whole number"
            self.refuse(where, f"{_show(value)} is not {what}, which {about} takes (range "
                               f"{span}); give one within the range")
        elif why == vocab.OUT_OF_RANGE:
            self.refuse(where, f"{_show(value)} is outside the range {span} of {about}; give a "
                               f"value within it")
        return checked

    def _sites(self, target: str) -> list[tuple[str | None, str, Any]]:
        """(component, path of the user's field, the value the user's spec gives it or None)
        for each place the target writes."""
        if target == "idleTimeout":
            return [(None, f"{self.prefix}idleTimeout", self.user.get("idleTimeout") or None)]
        if target == "worker.replicas":
            have = (self.user.get("worker") or {}).get("replicas") if "worker" in self.user else None
            return [(None, f"{self.prefix}worker.replicas", have)]
        comps = COMPONENTS if target == "image" or target.startswith("env.") else (target.split(".")[0],)
        out = []
        for comp in comps:
            container = main_container(self.out[comp]["spec"], comp) or {}
            index = (self.out[comp]["spec"].get("containers") or [container]).index(container)
            path = f"{self.prefix}{comp}.spec.containers[{index}]"
            current = None
            if self.provided[comp]:
                current = _read_target(container, target)
            out.append((comp, path + _suffix(target), current))
        return out

    def _write(self, target: str, comp: str | None, value: Any) -> None:
        if target == "idleTimeout":
            self.out["idleTimeout"] = value
            return
        if target == "worker.replicas":
            self.out["worker"]["replicas"] = value
            return
        container = main_container(self.out[comp or "worker"]["spec"], comp or "worker")
        if container is None:
            return
        if target.endswith("image"):
            container["image"] = value
        elif target.startswith("env."):
            env = [e for e in container.get("env") or [] if e.get("name") != target[4:]]
            container["env"] = [*env, {"name": target[4:], "value": value}]
        else:
            resource = vocab.RESOURCE_OF_TARGET[target.split(".", 1)[1]]
            res = container.setdefault("resources", {})
            for key in ("requests", "limits"):
                res.setdefault(key, {})[resource] = value

    def worker_bounds(self) -> None:
        worker = self.profile.get("worker") or {}
        lo, hi = worker.get("minReplicas"), worker.get("maxReplicas")
        replicas = int(self.out["worker"].get("replicas") or 0)
        message = bounds_message(self.name, lo, hi, replicas)
        if message:
            option = _replicas_option(self.options)
            given = option is not None and self.given.get(option) is not None
            where = f"{self.options_path}.{option}" if given else f"{self.prefix}worker.replicas"
            if not any(v.field == where for v in self.found):  # its option said it already
                self.refuse(where, message)


def _replicas_option(options: list[Obj]) -> str | None:
    return next((o["name"] for o in options if o.get("target") == "worker.replicas"), None)


def bounds_message(profile: str, lo: int | None, hi: int | None, replicas: int) -> str | None:
    """Why ``replicas`` workers break the profile's worker-count bounds (None: they do not)."""
    if (lo is None or replicas >= lo) and (hi is None or replicas <= hi):
        return None
    span = f"{lo if lo is not None else 0} to {hi if hi is not None else 'any'}"
    return (f"{replicas} workers is outside the range {span} that DaskClusterProfile {profile} "
            f"allows for a worker group (worker.minReplicas/maxReplicas); ask for a number "
            f"within it")


def _read_target(container: Obj, target: str) -> Any:
    if target.endswith("image"):
        return container.get("image")
    if target.startswith("env."):
        var = next((e for e in container.get("env") or [] if e.get("name") == target[4:]), None)
        return None if var is None else var.get("value")
    resource = vocab.RESOURCE_OF_TARGET[target.split(".", 1)[1]]
    res = container.get("resources") or {}
    return (res.get("limits") or {}).get(resource) or (res.get("requests") or {}).get(resource)


def _suffix(target: str) -> str:
    if target.endswith("image"):
        return ".image"
    if target.startswith("env."):
        return f".env[{target[4:]}]"
    return f".resources.limits[{vocab.RESOURCE_OF_TARGET[target.split('.', 1)[1]]}]"


def _without(resources: Obj, names: set[str]) -> Obj:
    return {k: ({n: q for n, q in v.items() if n not in names} if isinstance(v, dict) else v)
            for k, v in (resources or {}).items()}


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def _pruned(resources: Obj) -> Obj:
    """Resource requirements without empty parts (``limits: {}`` says nothing)."""
    return {k: v for k, v in resources.items() if not _empty(v)}



def _show(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)


def resolve(spec: Obj | None, name: str, profile: Obj, options: Obj | None, *, cluster: str,
            namespace: Obj | None = None, prefix: str = "spec.",
            options_path: str = "spec.profile.options") -> Resolved:
    """The cluster spec ``spec`` resolved against profile ``name`` (its ``spec``).

    ``prefix`` is where the cluster spec sits in the user's object (``spec.`` in a DaskCluster,
    ``spec.cluster.spec.`` in a DaskJob), so messages name the user's own fields; ``namespace``
    (the Namespace object) is checked against the profile's namespaceSelector when given.
    """
    found = profile_problems(name, profile)
    if namespace is not None:
        meta = namespace.get("metadata") or {}
        selector = profile.get("namespaceSelector")
        if not selects(selector, meta.get("labels")):
            found.append(Violation("metadata.namespace", (
                f"metadata.namespace: namespace {meta.get('name')} is not selected by "
                f"DaskClusterProfile {name} (namespaceSelector {_show(selector)}); use a profile "
                f"offered to this namespace, or ask the administrator to label it")))
    if found:
        return Resolved(copy.deepcopy(spec or {}), {}, found)
    r = _Resolver(spec or {}, name, profile, dict(options or {}), cluster=cluster,
                  prefix=prefix, options_path=options_path)
    r.fill()
    values = r.apply_options()
    r.worker_bounds()
    r.out.pop("profile", None)
    return Resolved(r.out, values, r.found)


def pin(name: str, profile: Obj, resolved: Resolved) -> Obj:
    """``status.profile``: what was applied, kept so every later pass builds the same Pods."""
    return {"name": name, "resourceVersion": (profile.get("metadata") or {}).get("resourceVersion"),
            "options": resolved.options, "spec": copy.deepcopy(profile.get("spec") or {})}


def pinned(obj: Obj) -> Obj | None:
    """The profile pinned in an object's status, if any."""
    found = (obj.get("status") or {}).get("profile")
    return found if found and found.get("name") else None


def worker_bounds_of(obj: Obj) -> tuple[str, int | None, int | None] | None:
    """(profile, minReplicas, maxReplicas) a cluster's pinned profile sets, None without one."""
    pin_ = pinned(obj)
    if pin_ is None:
        return None
    worker = (pin_.get("spec") or {}).get("worker") or {}
    if worker.get("minReplicas") is None and worker.get("maxReplicas") is None:
        return None
    return pin_["name"], worker.get("minReplicas"), worker.get("maxReplicas")
