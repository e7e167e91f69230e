"""The built-in kinds' printers: the columns and cells kube-apiserver prints for them.

kube-apiserver's printers (``pkg/printers/internalversion``) decide what ``kubectl get`` shows
for each built-in kind: a Pod's STATUS from its container states, a Service's PORT(S), a Node's
ROLES, an Event's LAST SEEN, ages as ``3m4s``. This module holds those column sets and cell
functions, keyed by ``(group, resource)``; ``tables.py`` assembles them into ``Table`` answers,
together with CRDs' ``additionalPrinterColumns``. Wide columns (priority 1) are marked with a
trailing ``*`` in the compact specs. Everything here is pure: objects in, cells out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from ...contract.times import human_duration, parse_time
from . import errors
from .selectors import format_labels, label_selector_from_dict

Obj = dict[str, Any]
Row = tuple[list[Any], list[Obj] | None]  # cells, row conditions

NAME_DOC = "Name must be unique within a namespace."
AGE_DOC = "CreationTimestamp is the server time when this object was created."

# -- time -----------------------------------------------------------------------------------


def age(value: Any, now: dt.datetime) -> str:
    """Time since ``value``; ``<unknown>`` when there is none (``translateTimestampSince``)."""
    t = parse_time(value)
    if t is None:
        return "<unknown>"
    return human_duration((now - t).total_seconds())


def _rfc3339(value: Any) -> str:
    t = parse_time(value)
    if t is None:
        return "0001-01-01T00:00:00Z"
    return t.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- small accessors ------------------------------------------------------------------------


def get_in(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def to_int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def name_of(obj: Obj) -> str:
    return get_in(obj, "metadata", "name") or ""


def _created(obj: Obj, now: dt.datetime) -> str:
    return age(get_in(obj, "metadata", "creationTimestamp"), now)


def _list(obj: Any, *path: str) -> list[Any]:
    v = get_in(obj, *path)
    return v if isinstance(v, list) else []


def _condition_true(status: Any, ctype: str) -> bool:
    return any(isinstance(c, Mapping) and c.get("type") == ctype and c.get("status") == "True"
               for c in _list(status, "conditions"))


def column_defs(*specs: str) -> list[Obj]:
    """Column definitions from compact specs: ``"Data:integer"``; a trailing ``*`` marks a wide
    column (priority 1). Only Name and Age carry a description: kubectl never shows them."""
    out = []
    for spec in specs:
        name, _, type_ = spec.rstrip("*").partition(":")
        out.append({"name": name, "type": type_ or "string", "format": "name" if name == "Name"
                    else "", "description": _DOCS.get(name, ""), "priority": int(spec[-1] == "*")})
    return out


_DOCS = {"Name": NAME_DOC, "Age": AGE_DOC, "Created At": AGE_DOC}
_WORKLOAD_WIDE = ("Containers*", "Images*", "Selector*")
_COLUMNS: dict[tuple[str, str], list[Obj]] = {
    ("", "pods"): column_defs("Name", "Ready", "Status", "Restarts", "Age", "IP*", "Node*",
                              "Nominated Node*", "Readiness Gates*"),
    ("", "services"): column_defs("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                                  "Selector*"),
    ("", "endpoints"): column_defs("Name", "Endpoints", "Age"),
    ("discovery.k8s.io", "endpointslices"): column_defs("Name", "AddressType", "Ports",
                                                        "Endpoints", "Age"),
    ("", "nodes"): column_defs("Name", "Status", "Roles", "Age", "Version", "Internal-IP*",
                               "External-IP*", "OS-Image*", "Kernel-Version*",
                               "Container-Runtime*"),
    ("", "namespaces"): column_defs("Name", "Status", "Age"),
    ("", "configmaps"): column_defs("Name", "Data:integer", "Age"),
    ("", "secrets"): column_defs("Name", "Type", "Data:integer", "Age"),
    ("", "serviceaccounts"): column_defs("Name", "Secrets:integer", "Age"),
    ("", "events"): column_defs("Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*",
                                "Message", "First Seen*", "Count*", "Name*"),
    ("apps", "deployments"): column_defs("Name", "Ready", "Up-to-date", "Available", "Age",
                                         *_WORKLOAD_WIDE),
    ("apps", "replicasets"): column_defs("Name", "Desired:integer", "Current:integer",
                                         "Ready:integer", "Age", *_WORKLOAD_WIDE),
    ("coordination.k8s.io", "leases"): column_defs("Name", "Holder", "Age"),
    ("policy", "poddisruptionbudgets"): column_defs("Name", "Min Available", "Max Unavailable",
                                                    "Allowed Disruptions:integer", "Age"),
    ("rbac.authorization.k8s.io", "rolebindings"): column_defs(
        "Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"),
}
_COLUMNS[("events.k8s.io", "events")] = _COLUMNS[("", "events")]
_COLUMNS[("rbac.authorization.k8s.io", "clusterrolebindings")] = _COLUMNS[
    ("rbac.authorization.k8s.io", "rolebindings")]
NAME_AGE = column_defs("Name", "Age")
NAME_CREATED_AT = column_defs("Name", "Created At:date")

# -- pods -----------------------------------------------------------------------------------


def _restartable(container: Any) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return isinstance(container, Mapping) and container.get("restartPolicy") == "Always"


def _last_finish(cs: Mapping[str, Any], current: dt.datetime | None) -> dt.datetime | None:
    finished = parse_time(get_in(cs, "lastState", "terminated", "finishedAt"))
    if finished is not None and (current is None or finished > current):
        return finished
    return current


def _exit_reason(term: Mapping[str, Any], prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{to_int(term.get('exitCode'))}"


def pod_status(pod: Obj) -> tuple[str, int, int, int, dt.datetime | None]:
    """kubectl's STATUS for a Pod plus (ready, total, restarts, last restart)."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    init_specs = [c for c in spec.get("initContainers") or [] if isinstance(c, Mapping)]
    by_name = {c.get("name"): c for c in init_specs}
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs if _restartable(c))
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    ready = restarts = sidecar_restarts = 0
    last: dt.datetime | None = None
    sidecar_last: dt.datetime | None = None
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += to_int(cs.get("restartCount"))
        last = _last_finish(cs, last)
        sidecar = _restartable(by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += to_int(cs.get("restartCount"))
            sidecar_last = _last_finish(cs, sidecar_last)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and to_int(term.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started"):
            ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            reason = _exit_reason(term, "Init:")
        elif wait and wait.get("reason") and wait["reason"] != "PodInitializing":
            reason = "Init:" + wait["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last = sidecar_restarts, sidecar_last
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += to_int(cs.get("restartCount"))
            last = _last_finish(cs, last)
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if wait and wait.get("reason"):
                reason = wait["reason"]
            elif term is not None:
                reason = _exit_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if get_in(pod, "metadata", "deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return reason, ready, total, restarts, last


def _pod_row(pod: Obj, now: dt.datetime) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    reason, ready, total, restarts, last = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts and last is not None:
        restarts_cell = f"{restarts} ({human_duration((now - last).total_seconds())} ago)"
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips and isinstance(ips[0], Mapping) else None) or status.get("podIP")
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        by_type = {c.get("type"): c.get("status")
                   for c in reversed(status.get("conditions") or [])}
        true = sum(1 for g in gates if by_type.get(g.get("conditionType")) == "True")
        gates_cell = f"{true}/{len(gates)}"
    cells = [name_of(pod), f"{ready}/{total}", reason, restarts_cell, _created(pod, now),
             ip or "<none>", spec.get("nodeName") or "<none>",
             status.get("nominatedNodeName") or "<none>", gates_cell]
    conditions: list[Obj] | None = None
    if status.get("phase") == "Succeeded":
        conditions = [{"type": "Completed", "status": "True", "reason": "Succeeded",
                       "message": "The pod has completed successfully."}]
    elif status.get("phase") == "Failed":
        conditions = [{"type": "Completed", "status": "True", "reason": "Failed",
                       "message": "The pod failed."}]
    return cells, conditions


# -- workloads and services -----------------------------------------------------------------


def _containers(obj: Obj) -> tuple[str, str]:
    containers = _list(obj, "spec", "template", "spec", "containers")
    return (",".join(c.get("name") or "" for c in containers),
            ",".join(c.get("image") or "" for c in containers))


def _selector_cell(obj: Obj) -> str:
    try:
        return str(label_selector_from_dict(get_in(obj, "spec", "selector")))
    except errors.APIError:
        return ""




def _deployment_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    desired = to_int(get_in(obj, "spec", "replicas"), 1)
    return [name_of(obj), f"{to_int(status.get('readyReplicas'))}/{desired}",
            to_int(status.get("updatedReplicas")), to_int(status.get("availableReplicas")),
            _created(obj, now), *_containers(obj), _selector_cell(obj)], None


def _replicaset_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    return [name_of(obj), to_int(get_in(obj, "spec", "replicas"), 1),
            to_int(status.get("replicas")), to_int(status.get("readyReplicas")),
            _created(obj, now), *_containers(obj), _selector_cell(obj)], None




def _external_ip(spec: Mapping[str, Any], status: Mapping[str, Any], kind: str) -> str:
    external = [str(ip) for ip in spec.get("externalIPs") or []]
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = _list(status, "loadBalancer", "ingress")
        lb = [i.get("ip") or i.get("hostname") for i in ingress if i.get("ip") or i.get("hostname")]
        return ",".join(lb + external) or "<pending>"
    if kind == "ExternalName":
        return spec.get("externalName") or ""
    return "<unknown>"


def _service_row(obj: Obj, now: dt.datetime) -> Row:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    kind = spec.get("type") or "ClusterIP"
    cluster_ips = spec.get("clusterIPs") or []
    cluster_ip = (cluster_ips[0] if cluster_ips else spec.get("clusterIP")) or "<none>"
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node = f":{p['nodePort']}" if to_int(p.get("nodePort")) > 0 else ""
        ports.append(f"{p.get('port')}{node}/{proto}")
    return [name_of(obj), kind, cluster_ip, _external_ip(spec, status, kind),
            ",".join(ports) or "<none>", _created(obj, now),
            format_labels(spec.get("selector"))], None




def _host_port(ip: str, port: Any) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def format_endpoints(obj: Obj, limit: int = 3) -> str:
    """``ip:port`` of the first three endpoints, then ``+ N more...``."""
    subsets = obj.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [a.get("ip") or "" for a in ss.get("addresses") or []]
        ports = ss.get("ports") or []
        pairs = ([(ip, None) for ip in addresses] if not ports else
                 [(ip, p.get("port")) for p in ports for ip in addresses])
        count += len(pairs)
        for ip, port in pairs:
            if len(shown) < limit:
                shown.append(ip if port is None else _host_port(ip, port))
    text = ",".join(shown)
    return f"{text} + {count - limit} more..." if count > limit else text


def _first_three(items: list[str]) -> str:
    """Up to three items, then ``+ N more...``; ``<unset>`` for none (``listWithMoreString``)."""
    text = ",".join(items[:3])
    if len(items) > 3:
        return f"{text} + {len(items) - 3} more..."
    return text or "<unset>"


def format_slice_ports(obj: Obj) -> str:
    """Each port's number, else its name, else ``*`` (a slice port may leave both out)."""
    ports = [p for p in _list(obj, "ports") if isinstance(p, Mapping)]
    return _first_three([str(p["port"]) if p.get("port") is not None else
                         p["name"] if p.get("name") is not None else "*" for p in ports])


def format_slice_endpoints(obj: Obj) -> str:
    """Every endpoint's addresses, in order."""
    return _first_three([str(a) for e in _list(obj, "endpoints") if isinstance(e, Mapping)
                         for a in _list(e, "addresses")])


# -- cluster and config kinds ---------------------------------------------------------------



def _node_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    states = ["Unknown"]
    if ready:  # the last Ready condition wins, as in a map keyed by type
        states = ["Ready" if ready[-1].get("status") == "True" else "NotReady"]
    if get_in(obj, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in (get_in(obj, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a.get("address") for a in status.get("addresses") or []
                     if a.get("type") == kind), None) or "<none>"

    return [name_of(obj), ",".join(states), ",".join(sorted(roles)) or "<none>",
            _created(obj, now), info.get("kubeletVersion") or "", address("InternalIP"),
            address("ExternalIP"), info.get("osImage") or "<unknown>",
            info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"], None




def _binding_row(obj: Obj, now: dt.datetime) -> Row:
    ref = obj.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in obj.get("subjects") or []:
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name") or "")
        elif kind == "Group":
            groups.append(s.get("name") or "")
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace') or ''}/{s.get('name') or ''}")
    return [name_of(obj), f"{ref.get('kind') or ''}/{ref.get('name') or ''}", _created(obj, now),
            ", ".join(users), ", ".join(groups), ", ".join(sas)], None


def _int_or_percent(value: Any) -> str:
    return "N/A" if value is None else str(value)


# -- events ---------------------------------------------------------------------------------



def core_event(obj: Obj) -> Obj:
    """An ``events.k8s.io`` Event read with the core field names (the printer uses those)."""
    if "regarding" not in obj and "note" not in obj and "deprecatedCount" not in obj:
        return obj
    return {
        "metadata": obj.get("metadata") or {},
        "involvedObject": obj.get("regarding") or {}, "message": obj.get("note"),
        "reason": obj.get("reason"), "type": obj.get("type"),
        "firstTimestamp": obj.get("deprecatedFirstTimestamp"),
        "lastTimestamp": obj.get("deprecatedLastTimestamp"),
        "count": obj.get("deprecatedCount"), "source": obj.get("deprecatedSource") or {},
        "eventTime": obj.get("eventTime"), "series": obj.get("series"),
        "reportingComponent": obj.get("reportingController"),
        "reportingInstance": obj.get("reportingInstance"),
    }


def _event_row(obj: Obj, now: dt.datetime) -> Row:
    ev = core_event(obj)
    first = age(ev.get("firstTimestamp") or ev.get("eventTime"), now)
    last = age(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = to_int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = age(series.get("lastObservedTime"), now)
        count = to_int(series.get("count"))
    elif count == 0:
        count = 1
    target = ev.get("involvedObject") or {}
    what = (target.get("kind") or "").lower()
    if target.get("name"):
        what = f"{what}/{target['name']}"
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return [last, ev.get("type") or "", ev.get("reason") or "", what,
            target.get("fieldPath") or "", f"{component}, {instance}" if instance else component,
            (ev.get("message") or "").strip(), first, count, name_of(obj)], None


# -- the printer table ----------------------------------------------------------------------

RowFn = Callable[[Obj, dt.datetime], Row]


def _simple(*cells: Callable[[Obj], Any]) -> RowFn:
    """Name, the given cells, then Age."""
    return lambda obj, now: ([name_of(obj), *(c(obj) for c in cells), _created(obj, now)], None)


def _created_at_row(obj: Obj, now: dt.datetime) -> Row:
    return [name_of(obj), _rfc3339(get_in(obj, "metadata", "creationTimestamp"))], None


_ROWS: dict[tuple[str, str], RowFn] = {
    ("", "pods"): _pod_row,
    ("", "services"): _service_row,
    ("", "endpoints"): _simple(format_endpoints),
    ("discovery.k8s.io", "endpointslices"): _simple(
        lambda o: o.get("addressType") or "", format_slice_ports, format_slice_endpoints),
    ("", "nodes"): _node_row,
    ("", "namespaces"): _simple(lambda o: get_in(o, "status", "phase") or ""),
    ("", "configmaps"): _simple(
        lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
    ("", "secrets"): _simple(
        lambda o: o.get("type") or "",
        lambda o: len(set(o.get("data") or {}) | set(o.get("stringData") or {}))),
    ("", "serviceaccounts"): _simple(lambda o: len(o.get("secrets") or [])),
    ("", "events"): _event_row,
    ("events.k8s.io", "events"): _event_row,
    ("apps", "deployments"): _deployment_row,
    ("apps", "replicasets"): _replicaset_row,
    ("coordination.k8s.io", "leases"): _simple(lambda o: get_in(o, "spec", "holderIdentity") or ""),
    ("policy", "poddisruptionbudgets"): _simple(
        lambda o: _int_or_percent(get_in(o, "spec", "minAvailable")),
        lambda o: _int_or_percent(get_in(o, "spec", "maxUnavailable")),
        lambda o: to_int(get_in(o, "status", "disruptionsAllowed"))),
    ("rbac.authorization.k8s.io", "rolebindings"): _binding_row,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _binding_row,
}
for _key in [("apiextensions.k8s.io", "customresourcedefinitions"),
             ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")]:
    _COLUMNS[_key], _ROWS[_key] = NAME_CREATED_AT, _created_at_row


def builtin_printer(key: tuple[str, str]) -> tuple[list[Obj], RowFn]:
    """Column definitions and the row function of a built-in kind (Name and Age if unknown)."""
    return _COLUMNS.get(key, NAME_AGE), _ROWS.get(key, _simple())
