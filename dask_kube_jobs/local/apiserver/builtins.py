"""Defaulting and validation of built-in kinds.

Operators and clients see what a real cluster would hand them: a Pod comes back with a phase,
a service account and a restart policy; a Service has a cluster IP and TCP ports; a Deployment
has a strategy and revision history limit. ``VALIDATORS`` is the table of each kind's
validation, with Kubernetes' field paths and messages: Pod specs are ``podvalidation``'s,
Services, ConfigMaps, Secrets and RBAC objects ``corevalidation``'s, workloads (a selector that
matches its template) and CRDs are checked here. Kinds not in the tables pass through untouched,
as they would to etcd.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable
from typing import Any

from . import corevalidation, crd_validation, podvalidation
from .endpointsvalidation import validate_endpoints, validate_endpointslice
from .errors import Cause
from .selectors import label_selector_from_dict

Obj = dict[str, Any]



class ClusterIPAllocator:
    """Hands out Service IPs, skipping those in use.

    The range is on loopback (127.96.0.0/16), not 10.96.0.0/12 as on kubeadm clusters: the
    local control plane must never send traffic off the loopback interface."""

    def __init__(self, cidr: str = "127.96.0.0/16") -> None:
        self._net = ipaddress.ip_network(cidr)
        self._next = itertools.count(10)
        self._used: set[str] = set()

    def allocate(self) -> str:
        for n in self._next:
            ip = str(self._net.network_address + n)
            if ip not in self._used:
                self._used.add(ip)
                return ip
        raise RuntimeError("service CIDR exhausted")

    def first(self) -> str:
        """The range's first address, which a cluster gives the ``kubernetes`` Service."""
        ip = str(self._net.network_address + 1)
        self._used.add(ip)
        return ip

    def reserve(self, ip: str) -> None:
        self._used.add(ip)

    def release(self, ip: str | None) -> None:
        if ip:
            self._used.discard(ip)


# -- defaulting -------------------------------------------------------------------------------

def _default_container(c: Obj) -> None:
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    image = str(c.get("image", ""))
    tag = image.rsplit("/", 1)[-1]
    default_pull = "Always" if (":" not in tag or tag.endswith(":latest")) and "@" not in tag else "IfNotPresent"
    c.setdefault("imagePullPolicy", default_pull)
    c.setdefault("resources", {})
    for p in c.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")


def default_pod_spec(spec: Obj) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    if "serviceAccountName" not in spec:
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("tolerations", [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
         "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
         "effect": "NoExecute", "tolerationSeconds": 300},
    ])
    for c in itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []):
        if isinstance(c, dict):
            _default_container(c)


def _default_pod(obj: Obj, ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    default_pod_spec(spec)
    if ctx.creating:
        status: Obj = {"phase": "Pending", "qosClass": _qos_class(spec)}
        obj["status"] = status


def _qos_class(spec: Obj) -> str:
    containers = spec.get("containers") or []
    if not containers:
        return "BestEffort"
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def _default_service(obj: Obj, ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    for p in spec.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):
                p["targetPort"] = p.get("port")
    if spec["type"] != "ExternalName":
        if ctx.creating and not spec.get("clusterIP"):
            spec["clusterIP"] = ctx.allocate_cluster_ip()
        elif ctx.creating and spec.get("clusterIP") not in (None, "None"):
            ctx.reserve_cluster_ip(spec["clusterIP"])
        if ctx.old is not None and not spec.get("clusterIP"):
            spec["clusterIP"] = (ctx.old.get("spec") or {}).get("clusterIP")
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if spec["type"] in ("NodePort", "LoadBalancer"):
        spec.setdefault("externalTrafficPolicy", "Cluster")
        for i, p in enumerate(spec.get("ports") or []):
            if isinstance(p, dict) and not p.get("nodePort"):
                p["nodePort"] = 30000 + (hash((obj["metadata"].get("name"), i)) % 2768)
    if ctx.creating:
        obj["status"] = {"loadBalancer": {}}


def _default_workload(obj: Obj, ctx: Context) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    if obj["kind"] == "Deployment":
        spec.setdefault("strategy", {"type": "RollingUpdate",
                                     "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    template = spec.setdefault("template", {})
    default_pod_spec(template.setdefault("spec", {}))
    if ctx.creating:
        obj["status"] = {}


def _default_namespace(obj: Obj, ctx: Context) -> None:
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    if ctx.creating:
        obj["status"] = {"phase": "Active"}


def _default_secret(obj: Obj, ctx: Context) -> None:
    import base64

    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.setdefault("data", {})
        for k, v in string_data.items():
            data[k] = base64.b64encode(str(v).encode()).decode()


def _default_serviceaccount(obj: Obj, ctx: Context) -> None:
    return None


def _default_binding(obj: Obj, ctx: Context) -> None:
    """rbac/v1 defaulting: User and Group subjects belong to the RBAC API group."""
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and not s.get("apiGroup") and s.get("kind") in ("User", "Group"):
            s["apiGroup"] = "rbac.authorization.k8s.io"


def _default_endpointslice(obj: Obj, ctx: Context) -> None:
    """discovery/v1 defaulting: a port's name is "" and its protocol TCP; ``endpoints`` is
    always present (null when empty, as the real server serializes it)."""
    obj.setdefault("endpoints", None)
    for p in obj.get("ports") or []:
        if isinstance(p, dict):
            p.setdefault("name", "")
            p.setdefault("protocol", "TCP")


def _default_crd(obj: Obj, ctx: Context) -> None:
    defaulted = crd_validation.default_crd(obj)
    obj.clear()
    obj.update(defaulted)


DEFAULTERS: dict[tuple[str, str], Callable[[Obj, Context], None]] = {
    ("", "pods"): _default_pod,
    ("", "services"): _default_service,
    ("apps", "deployments"): _default_workload,
    ("apps", "replicasets"): _default_workload,
    ("", "namespaces"): _default_namespace,
    ("", "secrets"): _default_secret,
    ("rbac.authorization.k8s.io", "rolebindings"): _default_binding,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _default_binding,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _default_crd,
    ("discovery.k8s.io", "endpointslices"): _default_endpointslice,
}


class Context:
    """What a defaulter or validator may need beyond the object itself."""

    def __init__(self, *, creating: bool, old: Obj | None, ips: ClusterIPAllocator) -> None:
        self.creating = creating
        self.old = old
        self._ips = ips

    def allocate_cluster_ip(self) -> str:
        return self._ips.allocate()

    def reserve_cluster_ip(self, ip: str) -> None:
        self._ips.reserve(ip)


# -- validation -------------------------------------------------------------------------------

def _validate_pod(obj: Obj, ctx: Context) -> list[Cause]:
    causes = podvalidation.validate_pod_spec(obj.get("spec"), "spec")
    if ctx.old is not None:
        old_spec, new_spec = ctx.old.get("spec") or {}, obj.get("spec") or {}
        # A Pod's spec is immutable except images, activeDeadlineSeconds and tolerations;
        # nodeName only through binding (kept by the caller).
        mutable = {"activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"}
        def strip(s: Obj) -> Obj:
            s = {k: v for k, v in s.items() if k not in mutable}
            s["containers"] = [{k: v for k, v in c.items() if k != "image"}
                               for c in s.get("containers") or [] if isinstance(c, dict)]
            return s
        if strip(old_spec) != strip(new_spec):
            causes.append(Cause("spec", "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`", "FieldValueForbidden"))
    return causes


def _validate_workload(obj: Obj, ctx: Context) -> list[Cause]:
    spec = obj.get("spec") or {}
    template = spec.get("template") or {}
    causes: list[Cause] = []
    replicas = spec.get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        causes.append(Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0"))
    selector = spec.get("selector")
    if not selector:
        causes.append(Cause("spec.selector", "Required value", "FieldValueRequired"))
    else:
        labels = (template.get("metadata") or {}).get("labels") or {}
        try:
            matches = label_selector_from_dict(selector).matches(labels)
        except Exception as exc:  # an unparsable selector is itself the error
            causes.append(Cause("spec.selector", f"Invalid value: {exc}"))
        else:
            if not (selector.get("matchLabels") or selector.get("matchExpressions")):
                causes.append(Cause("spec.selector", "Invalid value: empty selector is invalid for deployment"))
            elif not matches:
                causes.append(Cause("spec.template.metadata.labels", f"Invalid value: {labels}: `selector` does not match template `labels`"))
        if ctx.old is not None and (ctx.old.get("spec") or {}).get("selector") != selector:
            causes.append(Cause("spec.selector", f"Invalid value: {selector}: field is immutable"))
    causes += podvalidation.validate_pod_spec(template.get("spec"), "spec.template.spec")
    policy = (template.get("spec") or {}).get("restartPolicy")
    if policy and policy != "Always":
        causes.append(Cause("spec.template.spec.restartPolicy", f'Unsupported value: "{policy}": supported values: "Always"', "FieldValueNotSupported"))
    return causes


def _validate_crd(obj: Obj, ctx: Context) -> list[Cause]:
    return crd_validation.validate_crd(obj)


VALIDATORS: dict[tuple[str, str], Callable[[Obj, Context], list[Cause]]] = {
    ("", "pods"): _validate_pod,
    ("", "services"): corevalidation.validate_service,
    ("apps", "deployments"): _validate_workload,
    ("apps", "replicasets"): _validate_workload,
    ("", "configmaps"): corevalidation.validate_configmap,
    ("", "secrets"): corevalidation.validate_secret,
    ("rbac.authorization.k8s.io", "roles"): corevalidation.validate_role,
    ("rbac.authorization.k8s.io", "clusterroles"): corevalidation.validate_cluster_role,
    ("rbac.authorization.k8s.io", "rolebindings"): corevalidation.validate_role_binding,
    ("rbac.authorization.k8s.io", "clusterrolebindings"):
        corevalidation.validate_cluster_role_binding,
    ("apiextensions.k8s.io", "customresourcedefinitions"): _validate_crd,
    ("", "endpoints"): validate_endpoints,
    ("discovery.k8s.io", "endpointslices"): validate_endpointslice,
}


def _decode_pod(obj: Obj, version: str) -> None:
    podvalidation.decode_quantities("Pod", version, obj.get("spec"))


def _decode_workload(obj: Obj, version: str) -> None:
    template = (obj.get("spec") or {}).get("template") or {}
    podvalidation.decode_quantities(obj["kind"], version, template.get("spec"))


#: What kube-apiserver's decoder refuses (400) before admission and validation run.
DECODERS: dict[tuple[str, str], Callable[[Obj, str], None]] = {
    ("", "pods"): _decode_pod,
    ("apps", "deployments"): _decode_workload,
    ("apps", "replicasets"): _decode_workload,
}


def decode(key: tuple[str, str], obj: Obj, version: str) -> None:
    fn = DECODERS.get(key)
    if fn:
        fn(obj, version)


def default(key: tuple[str, str], obj: Obj, ctx: Context) -> None:
    fn = DEFAULTERS.get(key)
    if fn:
        fn(obj, ctx)


def validate(key: tuple[str, str], obj: Obj, ctx: Context) -> list[Cause]:
    fn = VALIDATORS.get(key)
    return fn(obj, ctx) if fn else []
