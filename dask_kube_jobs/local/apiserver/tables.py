"""Server-side printing: ``meta.k8s.io`` ``Table`` answers for ``kubectl get``.

kubectl does not know how to print most kinds itself; it asks the apiserver for a Table
(``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...``) and prints the columns it gets.
Without this every ``kubectl get`` shows only ``NAME AGE``. The column sets and the cell logic
(a Pod's STATUS from its container states, a Service's PORT(S), ages as ``3m4s``) follow what
kube-apiserver's built-in printers produce, and custom resources get their CRD's
``additionalPrinterColumns`` evaluated as JSONPath, as the apiextensions server does. The server
always prints the wide columns (priority 1); kubectl hides them unless ``-o wide``.
Everything here is pure: objects in, JSON-ready dicts out.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from . import errors
from .registry import ResourceType
from .selectors import format_labels, label_selector_from_dict

Obj = dict[str, Any]
Row = tuple[list[Any], list[Obj] | None]  # cells, row conditions

NAME_DOC = "Name must be unique within a namespace."
AGE_DOC = "CreationTimestamp is the server time when this object was created."

# -- time -----------------------------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """A duration the way Kubernetes shows ages (``duration.HumanDuration``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y" if days % 365 == 0 else f"{years}y{days % 365}d"
    return f"{years}y"


def parse_time(value: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp (``Time`` or ``MicroTime``), or None if absent or unparsable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


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


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else default
    except (TypeError, ValueError):
        return default


def _name(obj: Obj) -> str:
    return _get(obj, "metadata", "name") or ""


def _created(obj: Obj, now: dt.datetime) -> str:
    return age(_get(obj, "metadata", "creationTimestamp"), now)


def _list(obj: Any, *path: str) -> list[Any]:
    v = _get(obj, *path)
    return v if isinstance(v, list) else []


def _condition_true(status: Any, ctype: str) -> bool:
    return any(isinstance(c, Mapping) and c.get("type") == ctype and c.get("status") == "True"
               for c in _list(status, "conditions"))


def _cols(*specs: str) -> list[Obj]:
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
    ("", "pods"): _cols("Name", "Ready", "Status", "Restarts", "Age", "IP*", "Node*",
                        "Nominated Node*", "Readiness Gates*"),
    ("", "services"): _cols("Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                            "Selector*"),
    ("", "endpoints"): _cols("Name", "Endpoints", "Age"),
    ("", "nodes"): _cols("Name", "Status", "Roles", "Age", "Version", "Internal-IP*",
                         "External-IP*", "OS-Image*", "Kernel-Version*", "Container-Runtime*"),
    ("", "namespaces"): _cols("Name", "Status", "Age"),
    ("", "configmaps"): _cols("Name", "Data:integer", "Age"),
    ("", "secrets"): _cols("Name", "Type", "Data:integer", "Age"),
    ("", "serviceaccounts"): _cols("Name", "Secrets:integer", "Age"),
    ("", "events"): _cols("Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*",
                          "Message", "First Seen*", "Count*", "Name*"),
    ("apps", "deployments"): _cols("Name", "Ready", "Up-to-date", "Available", "Age",
                                   *_WORKLOAD_WIDE),
    ("apps", "replicasets"): _cols("Name", "Desired:integer", "Current:integer",
                                   "Ready:integer", "Age", *_WORKLOAD_WIDE),
    ("coordination.k8s.io", "leases"): _cols("Name", "Holder", "Age"),
    ("policy", "poddisruptionbudgets"): _cols("Name", "Min Available", "Max Unavailable",
                                              "Allowed Disruptions:integer", "Age"),
    ("rbac.authorization.k8s.io", "rolebindings"): _cols(
        "Name", "Role", "Age", "Users*", "Groups*", "ServiceAccounts*"),
}
_COLUMNS[("events.k8s.io", "events")] = _COLUMNS[("", "events")]
_COLUMNS[("rbac.authorization.k8s.io", "clusterrolebindings")] = _COLUMNS[
    ("rbac.authorization.k8s.io", "rolebindings")]
NAME_AGE = _cols("Name", "Age")
NAME_CREATED_AT = _cols("Name", "Created At:date")

# -- pods -----------------------------------------------------------------------------------


def _restartable(container: Any) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return isinstance(container, Mapping) and container.get("restartPolicy") == "Always"


def _last_finish(cs: Mapping[str, Any], current: dt.datetime | None) -> dt.datetime | None:
    finished = parse_time(_get(cs, "lastState", "terminated", "finishedAt"))
    if finished is not None and (current is None or finished > current):
        return finished
    return current


def _exit_reason(term: Mapping[str, Any], prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{_int(term.get('exitCode'))}"


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
        restarts += _int(cs.get("restartCount"))
        last = _last_finish(cs, last)
        sidecar = _restartable(by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += _int(cs.get("restartCount"))
            sidecar_last = _last_finish(cs, sidecar_last)
        state = cs.get("state") or {}
        term, wait = state.get("terminated"), state.get("waiting")
        if term is not None and _int(term.get("exitCode")) == 0:
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
            restarts += _int(cs.get("restartCount"))
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

    if _get(pod, "metadata", "deletionTimestamp"):
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
    cells = [_name(pod), f"{ready}/{total}", reason, restarts_cell, _created(pod, now),
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
        return str(label_selector_from_dict(_get(obj, "spec", "selector")))
    except errors.APIError:
        return ""




def _deployment_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    desired = _int(_get(obj, "spec", "replicas"), 1)
    return [_name(obj), f"{_int(status.get('readyReplicas'))}/{desired}",
            _int(status.get("updatedReplicas")), _int(status.get("availableReplicas")),
            _created(obj, now), *_containers(obj), _selector_cell(obj)], None


def _replicaset_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    return [_name(obj), _int(_get(obj, "spec", "replicas"), 1), _int(status.get("replicas")),
            _int(status.get("readyReplicas")), _created(obj, now), *_containers(obj),
            _selector_cell(obj)], None




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
        node = f":{p['nodePort']}" if _int(p.get("nodePort")) > 0 else ""
        ports.append(f"{p.get('port')}{node}/{proto}")
    return [_name(obj), kind, cluster_ip, _external_ip(spec, status, kind),
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


# -- cluster and config kinds ---------------------------------------------------------------



def _node_row(obj: Obj, now: dt.datetime) -> Row:
    status = obj.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    states = ["Unknown"]
    if ready:  # the last Ready condition wins, as in a map keyed by type
        states = ["Ready" if ready[-1].get("status") == "True" else "NotReady"]
    if _get(obj, "spec", "unschedulable"):
        states.append("SchedulingDisabled")
    roles = set()
    for key, value in (_get(obj, "metadata", "labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/") and key[len("node-role.kubernetes.io/"):]:
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    info = status.get("nodeInfo") or {}

    def address(kind: str) -> str:
        return next((a.get("address") for a in status.get("addresses") or []
                     if a.get("type") == kind), None) or "<none>"

    return [_name(obj), ",".join(states), ",".join(sorted(roles)) or "<none>",
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
    return [_name(obj), f"{ref.get('kind') or ''}/{ref.get('name') or ''}", _created(obj, now),
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
    count = _int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = age(series.get("lastObservedTime"), now)
        count = _int(series.get("count"))
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
            (ev.get("message") or "").strip(), first, count, _name(obj)], None


# -- the printer table ----------------------------------------------------------------------

RowFn = Callable[[Obj, dt.datetime], Row]


def _simple(*cells: Callable[[Obj], Any]) -> RowFn:
    """Name, the given cells, then Age."""
    return lambda obj, now: ([_name(obj), *(c(obj) for c in cells), _created(obj, now)], None)


def _created_at_row(obj: Obj, now: dt.datetime) -> Row:
    return [_name(obj), _rfc3339(_get(obj, "metadata", "creationTimestamp"))], None


_ROWS: dict[tuple[str, str], RowFn] = {
    ("", "pods"): _pod_row,
    ("", "services"): _service_row,
    ("", "endpoints"): _simple(format_endpoints),
    ("", "nodes"): _node_row,
    ("", "namespaces"): _simple(lambda o: _get(o, "status", "phase") or ""),
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
    ("coordination.k8s.io", "leases"): _simple(lambda o: _get(o, "spec", "holderIdentity") or ""),
    ("policy", "poddisruptionbudgets"): _simple(
        lambda o: _int_or_percent(_get(o, "spec", "minAvailable")),
        lambda o: _int_or_percent(_get(o, "spec", "maxUnavailable")),
        lambda o: _int(_get(o, "status", "disruptionsAllowed"))),
    ("rbac.authorization.k8s.io", "rolebindings"): _binding_row,
    ("rbac.authorization.k8s.io", "clusterrolebindings"): _binding_row,
}
for _key in [("apiextensions.k8s.io", "customresourcedefinitions"),
             ("rbac.authorization.k8s.io", "roles"), ("rbac.authorization.k8s.io", "clusterroles")]:
    _COLUMNS[_key], _ROWS[_key] = NAME_CREATED_AT, _created_at_row

# -- custom resources -----------------------------------------------------------------------

_DEFAULT_CR_COLUMNS = ({"name": "Age", "type": "date", "description": AGE_DOC,
                        "jsonPath": ".metadata.creationTimestamp"},)


def _go_float(f: float) -> str:
    """A float as Go's ``%v`` prints it: shortest digits, exponent form outside [1e-4, 1e6)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    d = Decimal(repr(f)).normalize()
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    point = len(digits) + exp - 1
    if -4 <= point < 6:
        return format(d, "f")
    mantissa = "".join(map(str, digits)).rstrip("0") or "0"
    body = mantissa[0] + ("." + mantissa[1:] if len(mantissa) > 1 else "")
    return f"{'-' if sign else ''}{body}e{'+' if point >= 0 else '-'}{abs(point):02d}"


def _text(value: Any) -> str:
    """A JSONPath result as ``kubectl``'s jsonpath printer writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _cr_cell(col_type: str, value: Any, now: dt.datetime) -> Any:
    if value is None:
        return None
    if col_type == "string":
        return _text(value)
    if col_type == "integer" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if col_type == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if col_type == "date" and isinstance(value, str):
        if not value:
            return "<unknown>"
        return age(value, now) if parse_time(value) else "<invalid>"
    return None


def _jsonpath_value(obj: Obj, path: str) -> Any:
    """The first value ``path`` selects in ``obj``, None if it selects nothing."""
    from .structural import evaluate_jsonpath

    try:
        result = evaluate_jsonpath(obj, path)
    except Exception:  # a column that cannot be evaluated stays empty, as on a real cluster
        return None
    return result


def _cr_printer(rtype: ResourceType, version: str | None) -> tuple[list[Obj], RowFn]:
    info = rtype.version(version) if version else None
    if info is None:
        info = rtype.version(rtype.storage_version) or rtype.versions[0]
    declared = info.printer_columns or _DEFAULT_CR_COLUMNS
    columns = _cols("Name") + [{
        "name": c.get("name") or "", "type": c.get("type") or "string",
        "format": c.get("format") or "", "priority": _int(c.get("priority")),
        "description": c.get("description") or (
            f"Custom resource definition column (in JSONPath format): {c.get('jsonPath')}"),
    } for c in declared]

    def row(obj: Obj, now: dt.datetime) -> Row:
        cells: list[Any] = [_name(obj)]
        for c in declared:
            value = _jsonpath_value(obj, c.get("jsonPath") or "")
            cells.append(_cr_cell(c.get("type") or "string", value, now))
        return cells, None

    return columns, row


# -- tables ---------------------------------------------------------------------------------

_JSON_TYPES = ("application/json", "application/*", "*/*")


def wants_table(accept: str | None) -> str | None:
    """``"v1"``/``"v1beta1"`` when the Accept header's preferred servable type is a Table."""
    if not accept:
        return None
    clauses = []
    for idx, part in enumerate(accept.split(",")):
        media, *raw = [p.strip() for p in part.split(";")]
        params = {}
        for p in raw:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip()
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        clauses.append((-q, idx, media.lower(), params))
    for neg_q, _, media, params in sorted(clauses):
        if neg_q >= 0:
            continue
        conversion = params.get("as")
        if conversion is None:
            if media in _JSON_TYPES or media == "application/yaml":
                return None
            continue
        if (conversion == "Table" and params.get("g") == "meta.k8s.io"
                and params.get("v") in ("v1", "v1beta1") and media in _JSON_TYPES):
            return params["v"]
    return None


def _printer(rtype: ResourceType, version: str | None) -> tuple[list[Obj], RowFn]:
    if not rtype.builtin:
        return _cr_printer(rtype, version)
    return _COLUMNS.get(rtype.key, NAME_AGE), _ROWS.get(rtype.key, _simple())


def _row_object(rtype: ResourceType, obj: Obj, version: str | None, include: str,
                table_version: str) -> Obj | None:
    if include == "Object":
        out = dict(obj)
        out.setdefault("kind", rtype.kind)
        out.setdefault("apiVersion", rtype.api_version(version))
        return out
    if include in ("Metadata", ""):
        return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{table_version}",
                "metadata": obj.get("metadata") or {}}
    return None


def to_table(rtype: ResourceType, objects: Obj | Iterable[Obj], *, version: str | None = None,
             include_object: str | None = "Metadata", list_meta: Mapping[str, Any] | None = None,
             now: dt.datetime | None = None, table_version: str = "v1",
             headers: bool = True) -> Obj:
    """A ``Table`` of ``objects`` (a list, or one object for a single GET).

    ``version`` is the resource's API version the client asked for (it picks a CRD version's
    printer columns); ``table_version`` is ``meta.k8s.io``'s (``wants_table``'s answer).
    ``list_meta`` gives the list's resourceVersion/continue; for one object it defaults to the
    object's resourceVersion. ``headers=False`` leaves out the column definitions.
    """
    include = include_object if include_object is not None else "Metadata"
    if include not in ("Object", "Metadata", "None", ""):
        raise errors.bad_request(f'unrecognized includeObject value: "{include}"')
    if isinstance(objects, Mapping):
        items = [dict(objects)]
        if list_meta is None:
            list_meta = {"resourceVersion": _get(objects, "metadata", "resourceVersion") or ""}
    else:
        items = list(objects)
    now = now or dt.datetime.now(dt.timezone.utc)
    columns, row_fn = _printer(rtype, version)
    meta: Obj = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        value = (list_meta or {}).get(key)
        if value not in (None, ""):
            meta[key] = value
    rows = []
    for obj in items:
        cells, conditions = row_fn(obj, now)
        row: Obj = {"cells": cells}
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(rtype, obj, version, include, table_version)
        rows.append(row)
    return {
        "kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}", "metadata": meta,
        "columnDefinitions": [dict(c) for c in columns] if headers else None, "rows": rows,
    }


def table_watch_event(rtype: ResourceType, event_type: str, obj: Obj, version: str | None = None,
                      *, table_version: str = "v1", include_object: str | None = "Metadata",
                      headers: bool = True, now: dt.datetime | None = None) -> Obj:
    """A watch event whose object is a one-row Table (``kubectl get -w``).

    The apiserver sends column definitions with the first event only: pass ``headers=False``
    for the rest. ERROR events keep their Status; a BOOKMARK becomes a row-less Table that
    carries the resourceVersion.
    """
    if event_type == "ERROR":
        return {"type": event_type, "object": obj}
    if event_type == "BOOKMARK":
        rv = _get(obj, "metadata", "resourceVersion") or ""
        return {"type": event_type, "object": {
            "kind": "Table", "apiVersion": f"meta.k8s.io/{table_version}",
            "metadata": {"resourceVersion": rv} if rv else {},
            "columnDefinitions": None, "rows": []}}
    table = to_table(rtype, obj, version=version, include_object=include_object, now=now,
                     table_version=table_version, headers=headers)
    return {"type": event_type, "object": table}
