"""The schema of DaskClusterProfile, and the ``spec.profile`` / ``status.profile`` fields by
which a DaskCluster or DaskJob names and pins one (docs/profiles.md).

A profile is an administrator's named cluster shape: it fills what a user's spec leaves out,
locks what the user may not change, and offers options within bounds. The CEL rules say what a
reader of the YAML would otherwise only learn from the operator: one kind per option, bounds in
order, a default within them. Quantity bounds are compared by the operator (CEL's quantity
library is not everywhere), which refuses a profile whose quantities are out of order.
"""

from __future__ import annotations

from ..contract import profiles
from ._k8s import structural_schema
from ._schema import Schema, _described, _int, _obj, _str


def _k8s(name: str, description: str) -> Schema:
    return _described(structural_schema(f"io.k8s.api.core.v1.{name}"), description)


def _list(name: str, description: str, **extra: object) -> Schema:
    return {"type": "array", "description": description,
            "items": structural_schema(f"io.k8s.api.core.v1.{name}"), **extra}


def _env(where: str) -> Schema:
    return _list("EnvVar", f"Environment variables of {where}; a variable the user's spec also "
                 "sets keeps the user's value unless env is locked.")


def _resources(where: str) -> Schema:
    return _k8s("ResourceRequirements", f"Resources of {where} (a core/v1 "
                "ResourceRequirements), used where the user's container sets none.")


def _bounds(description: str, value: Schema) -> Schema:
    return _obj(description, {
        "default": _described(value, "The value when the user gives none."),
        "min": _described(value, "The smallest value a user may give."),
        "max": _described(value, "The largest value a user may give."),
    }, required=["default"])


def _quantity() -> Schema:
    return _bounds("A Kubernetes quantity (2Gi, 500m, 1) within [min, max].",
                   {"x-kubernetes-int-or-string": True})


def _integer() -> Schema:
    out = _bounds("A whole number within [min, max].", {"type": "integer", "format": "int64"})
    out["x-kubernetes-validations"] = [
        {"rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
         "message": "min must not exceed max"},
        {"rule": "(!has(self.min) || self.min <= self.default) && "
                 "(!has(self.max) || self.default <= self.max)",
         "message": "default must lie within [min, max]"}]
    return out


def _choice() -> Schema:
    out = _obj("One of a list of values.", {
        "default": _str("The value when the user gives none; one of choices."),
        "choices": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The values a user may pick."},
    }, required=["default", "choices"])
    out["x-kubernetes-validations"] = [{"rule": "self.default in self.choices",
                                        "message": "default must be one of choices"}]
    return out


def _option() -> Schema:
    out = _obj("A setting the user may choose when naming the profile.", {
        "name": {"type": "string", "pattern": profiles.OPTION_NAME.pattern, "maxLength": 63,
                 "description": "The option's name as users give it (spec.profile.options, "
                                "KubeCluster keyword): a lowercase Python identifier."},
        "description": _str("What the option means, shown to users."),
        "target": {"type": "string", "pattern": profiles.TARGET_PATTERN,
                   "description": "What the option sets: image, scheduler.image, worker.image "
                                  "(choice); worker.memory, worker.cpu, worker.gpu "
                                  "(nvidia.com/gpu), scheduler.memory, scheduler.cpu "
                                  "(quantity: requests and limits of the main container); "
                                  "worker.replicas, idleTimeout (integer); env.NAME (choice: "
                                  "variable NAME of both main containers)."},
        "quantity": _quantity(),
        "integer": _integer(),
        "choice": _choice(),
    }, required=["name", "target"])
    out["x-kubernetes-validations"] = [
        {"rule": "[has(self.quantity), has(self.integer), has(self.choice)]"
                 ".filter(x, x).size() == 1",
         "message": "set exactly one of quantity, integer and choice"}]
    return out


def _component(what: str, extra: dict[str, Schema] | None = None) -> Schema:
    return _obj(f"Defaults of the {what}.", {
        "resources": _resources(f"the {what}'s main container"),
        "env": _env(f"the {what}'s main container"),
        **(extra or {}),
    })


def profile_spec() -> Schema:
    """``DaskClusterProfile.spec``."""
    worker = _component("workers", {
        "replicas": _int("Workers of the default group when the user's spec says none.",
                         minimum=0),
        "minReplicas": _int("The fewest workers any worker group of the cluster (and a "
                            "DaskAutoscaler of it) may ask for.", minimum=0),
        "maxReplicas": _int("The most workers any worker group of the cluster (and a "
                            "DaskAutoscaler of it) may ask for.", minimum=0),
    })
    worker["x-kubernetes-validations"] = [
        {"rule": "!has(self.minReplicas) || !has(self.maxReplicas) || "
                 "self.minReplicas <= self.maxReplicas",
         "message": "minReplicas must not exceed maxReplicas"}]
    spec = _obj("A named cluster shape: what it fills in, what it locks, and what users may "
                "choose.", {
        "description": _str("What the profile is for, shown by kubectl get and the CLI."),
        "namespaceSelector": _described(
            structural_schema("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"),
            "The namespaces whose clusters may use the profile; unset: every namespace."),
        "image": _str("Image of the scheduler's and the workers' main containers."),
        "serviceAccountName": _str("ServiceAccount of the cluster's Pods (the operator's Pod "
                                   "policy still applies)."),
        "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "Node labels the cluster's Pods must run on."},
        "tolerations": _list("Toleration", "Tolerations of the cluster's Pods."),
        "affinity": _k8s("Affinity", "Affinity of the cluster's Pods."),
        "imagePullSecrets": _list("LocalObjectReference", "Pull secrets of the cluster's Pods."),
        "priorityClassName": _str("PriorityClass of the cluster's Pods."),
        "env": _env("both main containers"),
        "idleTimeout": _int("The cluster's idleTimeout (seconds) when the user's spec sets "
                            "none.", minimum=0),
        "scheduler": _component("scheduler"),
        "worker": worker,
        "locked": {"type": "array", "x-kubernetes-list-type": "set",
                   "items": {"type": "string", "enum": list(profiles.LOCKABLE)},
                   "description": "Fields users may not change: a spec that sets one to "
                                  "anything but the profile's value is refused."},
        "options": {"type": "array", "items": _option(), "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "description": "What users may choose, each within bounds or choices."},
    })
    return spec


def profile_ref(where: str) -> Schema:
    """``spec.profile`` of a DaskCluster or DaskJob."""
    return _obj(f"The DaskClusterProfile that fills and bounds {where}: it fills what the spec "
                "leaves out and refuses what it locks or bounds. Unset: the namespace's default "
                "profile (annotation kubernetes.dask.org/default-profile), if any.", {
        "name": _str("Name of the DaskClusterProfile (cluster-scoped)."),
        "options": {"type": "object",
                    "additionalProperties": {"x-kubernetes-int-or-string": True},
                    "description": "Values of the profile's options, by option name."},
    }, required=["name"])


def profile_status() -> Schema:
    """``status.profile``: the profile pinned when the object was admitted."""
    return _obj("The profile applied when the object was admitted; later edits of the profile "
                "do not change it.", {
        "name": _str("Name of the DaskClusterProfile."),
        "resourceVersion": _str("The profile's resourceVersion when it was applied."),
        "options": {"type": "object",
                    "additionalProperties": {"x-kubernetes-int-or-string": True},
                    "description": "The value of every option, defaults included."},
        "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                 "description": "The profile's spec as applied (kept so that the operator "
                                "builds the same Pods after the profile changes)."},
    })
