"""Server-side Table printing for ``kubectl get``: negotiation, columns, cells and watch events."""

from __future__ import annotations

import datetime as dt

import pytest

from dask_kube_jobs.contract.times import human_duration
from dask_kube_jobs.local.apiserver import errors, structural
from dask_kube_jobs.local.apiserver.printers import age, format_endpoints, pod_status
from dask_kube_jobs.local.apiserver.registry import BUILTIN_TYPES, Registry, type_from_crd
from dask_kube_jobs.local.apiserver.tables import table_watch_event, to_table, wants_table

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
REG = Registry(BUILTIN_TYPES)
KUBECTL_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                  "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def ago(seconds: int) -> str:
    return (NOW - dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, seconds: int = 60, **extra) -> dict:
    return {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7",
            "creationTimestamp": ago(seconds), **extra}


def rt(group: str, plural: str):
    t = REG.get(group, plural)
    assert t is not None
    return t


def names(table: dict) -> list[str]:
    return [c["name"] for c in table["columnDefinitions"]]


def cells(rtype, obj) -> list:
    return to_table(rtype, [obj], version="v1", now=NOW)["rows"][0]["cells"]


# -- negotiation and durations --------------------------------------------------------------

@pytest.mark.parametrize("accept, expected", [
    (KUBECTL_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", "v1beta1"),
    ("application/json", None),
    (None, None),
    ("", None),
    ("*/*", None),
    ("application/json, application/json;as=Table;v=v1;g=meta.k8s.io", None),
    ("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io,application/json", None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io,application/json", None),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", None),
    ("application/json;q=0.5,application/json;as=Table;v=v1;g=meta.k8s.io", "v1"),
])
def test_wants_table(accept, expected):
    assert wants_table(accept) == expected


@pytest.mark.parametrize("seconds, text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (184, "3m4s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600 + 60, "3h1m"), (5 * 3600, "5h"),
    (30 * 3600, "30h"), (2 * 86400 + 3 * 3600, "2d3h"), (3 * 86400, "3d"), (30 * 86400, "30d"),
    (3 * 365 * 86400 + 5 * 86400, "3y5d"), (10 * 365 * 86400, "10y"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_age():
    assert age(ago(65), NOW) == "65s"
    assert age("2024-05-01T11:59:00.123456Z", NOW) == "59s"
    assert age(None, NOW) == "<unknown>" and age("garbage", NOW) == "<unknown>"


# -- table shape ----------------------------------------------------------------------------

def test_table_shape_and_partial_metadata():
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("cfg", 30),
          "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}
    table = to_table(rt("", "configmaps"), [cm], version="v1", now=NOW,
                     list_meta={"resourceVersion": "42", "continue": "tok"})
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42", "continue": "tok"}
    assert table["columnDefinitions"][0] == {
        "name": "Name", "type": "string", "format": "name",
        "description": table["columnDefinitions"][0]["description"], "priority": 0}
    assert names(table) == ["Name", "Data", "Age"]
    row = table["rows"][0]
    assert row["cells"] == ["cfg", 3, "30s"]
    assert row["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": cm["metadata"]}


def test_include_object_variants():
    cm = {"metadata": meta("cfg")}
    rtype = rt("", "configmaps")
    full = to_table(rtype, [cm], version="v1", include_object="Object", now=NOW)
    assert full["rows"][0]["object"] == {"kind": "ConfigMap", "apiVersion": "v1",
                                         "metadata": cm["metadata"]}
    assert "kind" not in cm  # the stored object is not touched
    none = to_table(rtype, [cm], version="v1", include_object="None", now=NOW)
    assert none["rows"][0]["object"] is None
    beta = to_table(rtype, [cm], version="v1", table_version="v1beta1", now=NOW)
    assert beta["apiVersion"] == "meta.k8s.io/v1beta1"
    assert beta["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"
    with pytest.raises(errors.APIError) as info:
        to_table(rtype, [cm], version="v1", include_object="Everything")
    assert info.value.code == 400
    assert info.value.message == 'unrecognized includeObject value: "Everything"'


def test_single_object_takes_its_resource_version():
    table = to_table(rt("", "configmaps"), {"metadata": meta("cfg")}, version="v1", now=NOW)
    assert table["metadata"] == {"resourceVersion": "7"} and len(table["rows"]) == 1
    empty = to_table(rt("", "configmaps"), [], version="v1", list_meta={"resourceVersion": "9"})
    assert empty["rows"] == [] and names(empty) == ["Name", "Data", "Age"]


def test_default_columns_for_other_kinds():
    hpa = {"metadata": meta("h", 7200)}
    table = to_table(rt("autoscaling", "horizontalpodautoscalers"), [hpa], version="v2", now=NOW)
    assert names(table) == ["Name", "Age"] and table["rows"][0]["cells"] == ["h", "120m"]


# -- pods -----------------------------------------------------------------------------------

def pod(phase="Running", statuses=None, init=None, init_statuses=None, deleting=False,
        conditions=None, **spec):
    m = meta("p", 300)
    if deleting:
        m["deletionTimestamp"] = ago(1)
    return {
        "metadata": m,
        "spec": {"containers": [{"name": "c"}], "initContainers": init or [], **spec},
        "status": {"phase": phase, "containerStatuses": statuses or [],
                   "initContainerStatuses": init_statuses or [], "conditions": conditions or []},
    }


def running(ready=True, restarts=0, **extra):
    return {"name": "c", "ready": ready, "restartCount": restarts,
            "state": {"running": {"startedAt": ago(100)}}, **extra}


def waiting(reason):
    return {"name": "c", "ready": False, "restartCount": 0,
            "state": {"waiting": {"reason": reason}}}


def terminated(reason=None, code=0, signal=0):
    state = {"exitCode": code}
    if reason:
        state["reason"] = reason
    if signal:
        state["signal"] = signal
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"terminated": state}}


def test_pod_columns():
    table = to_table(rt("", "pods"), [pod(statuses=[running()])], version="v1", now=NOW)
    assert names(table) == ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node",
                            "Nominated Node", "Readiness Gates"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("obj, status, ready", [
    (pod(statuses=[running()]), "Running", "1/1"),
    (pod(statuses=[running(ready=False)]), "Running", "0/1"),
    (pod(phase="Pending"), "Pending", "0/1"),
    (pod(phase="Pending", statuses=[waiting("ContainerCreating")]), "ContainerCreating", "0/1"),
    (pod(statuses=[waiting("CrashLoopBackOff")]), "CrashLoopBackOff", "0/1"),
    (pod(phase="Pending", statuses=[waiting("ErrImagePull")]), "ErrImagePull", "0/1"),
    (pod(phase="Succeeded", statuses=[terminated("Completed")]), "Completed", "0/1"),
    (pod(phase="Failed", statuses=[terminated("Error", 1)]), "Error", "0/1"),
    (pod(phase="Failed", statuses=[terminated(code=137)]), "ExitCode:137", "0/1"),
    (pod(phase="Failed", statuses=[terminated(code=1, signal=9)]), "Signal:9", "0/1"),
    (pod(statuses=[running()], deleting=True), "Terminating", "1/1"),
    (pod(phase="Succeeded", statuses=[terminated("Completed")], deleting=True), "Completed", "0/1"),
    (pod(phase="Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                       "reason": "SchedulingGated"}]), "SchedulingGated", "0/1"),
])
def test_pod_status(obj, status, ready):
    row = cells(rt("", "pods"), obj)
    assert (row[2], row[1]) == (status, ready)


def test_pod_status_reason_and_node_lost():
    p = pod(phase="Failed")
    p["status"]["reason"] = "Evicted"
    assert pod_status(p)[0] == "Evicted"
    p = pod(statuses=[running()], deleting=True)
    p["status"]["reason"] = "NodeLost"
    assert pod_status(p)[0] == "Unknown"


def test_completed_container_with_running_sibling():
    p = pod(statuses=[running(), terminated("Completed")])
    p["spec"]["containers"] = [{"name": "a"}, {"name": "b"}]
    assert pod_status(p)[:3] == ("NotReady", 1, 2)
    p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
    assert pod_status(p)[0] == "Running"


def test_init_containers():
    init = [{"name": "i1"}, {"name": "i2"}]
    p = pod(phase="Pending", init=init, init_statuses=[
        {"name": "i1", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "i2", "state": {"running": {}}}])
    assert pod_status(p)[0] == "Init:1/2"
    p = pod(phase="Pending", init=init, init_statuses=[
        {"name": "i1", "state": {"waiting": {"reason": "CrashLoopBackOff"}}, "restartCount": 3}])
    assert pod_status(p)[0] == "Init:CrashLoopBackOff"
    p = pod(phase="Failed", init=init, init_statuses=[
        {"name": "i1", "state": {"terminated": {"exitCode": 2}}}])
    assert pod_status(p)[0] == "Init:ExitCode:2"
    p = pod(phase="Pending", init=init, init_statuses=[
        {"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}])
    assert pod_status(p)[0] == "Init:Error"


def test_sidecar_counts_towards_ready_and_total():
    p = pod(init=[{"name": "side", "restartPolicy": "Always"}],
            init_statuses=[{"name": "side", "started": True, "ready": True, "restartCount": 2,
                            "state": {"running": {}}}],
            statuses=[running(restarts=1)],
            conditions=[{"type": "Initialized", "status": "True"}])
    reason, ready, total, restarts, _ = pod_status(p)
    assert (reason, ready, total, restarts) == ("Running", 2, 2, 3)


def test_restarts_cell_and_wide_columns():
    status = running(restarts=5, lastState={"terminated": {"finishedAt": ago(5)}})
    p = pod(statuses=[status], nodeName="node-a",
            readinessGates=[{"conditionType": "x/ready"}, {"conditionType": "x/other"}],
            conditions=[{"type": "x/ready", "status": "True"}])
    p["status"]["podIPs"] = [{"ip": "10.0.0.9"}]
    assert cells(rt("", "pods"), p) == ["p", "1/1", "Running", "5 (5s ago)", "5m", "10.0.0.9",
                                        "node-a", "<none>", "1/2"]
    bare = cells(rt("", "pods"), pod(phase="Pending", statuses=[running(restarts=2)]))
    assert bare[3] == "2" and bare[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_row_conditions():
    rtype = rt("", "pods")
    done = to_table(rtype, [pod(phase="Succeeded")], version="v1", now=NOW)["rows"][0]
    assert done["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                   "message": "The pod has completed successfully."}]
    failed = to_table(rtype, [pod(phase="Failed")], version="v1", now=NOW)["rows"][0]
    assert failed["conditions"][0]["reason"] == "Failed"
    live = to_table(rtype, [pod()], version="v1", now=NOW)["rows"][0]
    assert "conditions" not in live


# -- services, workloads --------------------------------------------------------------------

def test_service():
    svc = {"metadata": meta("sched", 120), "spec": {
        "type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
        "ports": [{"port": 8786, "protocol": "TCP"}, {"port": 8787}],
        "selector": {"role": "scheduler", "app": "dask"}}}
    table = to_table(rt("", "services"), [svc], version="v1", now=NOW)
    assert names(table) == ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age",
                            "Selector"]
    assert table["columnDefinitions"][-1]["priority"] == 1
    assert table["rows"][0]["cells"] == ["sched", "ClusterIP", "10.96.0.10", "<none>",
                                         "8786/TCP,8787/TCP", "2m", "app=dask,role=scheduler"]


@pytest.mark.parametrize("spec, status, external, ports", [
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}, {},
     "<none>", "80:30080/TCP"),
    ({"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "UDP"}]}, {}, "<pending>",
     "80/UDP"),
    ({"type": "LoadBalancer"}, {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"},
                                                             {"hostname": "lb.example"}]}},
     "1.2.3.4,lb.example", "<none>"),
    ({"type": "ClusterIP", "externalIPs": ["5.6.7.8"]}, {}, "5.6.7.8", "<none>"),
    ({"type": "ExternalName", "externalName": "db.example"}, {}, "db.example", "<none>"),
])
def test_service_external_ip(spec, status, external, ports):
    row = cells(rt("", "services"), {"metadata": meta("s"), "spec": spec, "status": status})
    assert (row[2], row[3], row[4], row[6]) == ("<none>", external, ports, "<none>")


def test_deployment_and_replicaset():
    template = {"spec": {"containers": [{"name": "a", "image": "img:1"},
                                        {"name": "b", "image": "img:2"}]}}
    dep = {"metadata": meta("d", 60), "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    table = to_table(rt("apps", "deployments"), [dep], version="v1", now=NOW)
    assert names(table) == ["Name", "Ready", "Up-to-date", "Available", "Age", "Containers",
                            "Images", "Selector"]
    assert table["rows"][0]["cells"] == ["d", "2/3", 3, 2, "60s", "a,b", "img:1,img:2", "app=x"]
    rs = {"metadata": meta("d-abc", 60), "spec": {
        "replicas": 3, "selector": {"matchLabels": {"app": "x"}}, "template": template},
        "status": {"replicas": 3, "readyReplicas": 1}}
    table = to_table(rt("apps", "replicasets"), [rs], version="v1", now=NOW)
    assert names(table)[:5] == ["Name", "Desired", "Current", "Ready", "Age"]
    assert [c["type"] for c in table["columnDefinitions"][1:4]] == ["integer"] * 3
    assert table["rows"][0]["cells"][:5] == ["d-abc", 3, 3, 1, "60s"]
    # no status yet
    assert cells(rt("apps", "deployments"), {"metadata": meta("d"), "spec": {}})[:4] == \
        ["d", "0/1", 0, 0]


def test_endpoints():
    ep = {"metadata": meta("e"), "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
         "ports": [{"port": 8786}, {"port": 8787}]}]}
    assert format_endpoints(ep) == "10.0.0.1:8786,10.0.0.2:8786,10.0.0.1:8787 + 1 more..."
    assert format_endpoints({"subsets": [{"addresses": [{"ip": "fd00::1"}],
                                          "ports": [{"port": 80}]}]}) == "[fd00::1]:80"
    assert format_endpoints({"subsets": [{"addresses": [{"ip": "10.0.0.3"}]}]}) == "10.0.0.3"
    assert format_endpoints({}) == "<none>"
    assert cells(rt("", "endpoints"), ep)[0] == "e"


def test_endpointslices():
    """kube-apiserver's columns; ports by number, else name, else ``*``; ``<unset>`` if none."""
    eps = {"metadata": meta("s-abcde"), "addressType": "IPv4",
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dash"}, {},
                     {"port": 9}],
           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]},
                         {"addresses": ["10.0.0.4"]}]}
    table = to_table(rt("discovery.k8s.io", "endpointslices"), [eps], version="v1", now=NOW)
    assert names(table) == ["Name", "AddressType", "Ports", "Endpoints", "Age"]
    assert table["rows"][0]["cells"] == [
        "s-abcde", "IPv4", "80,dash,* + 1 more...", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
        "60s"]
    empty = {"metadata": meta("e"), "addressType": "FQDN", "endpoints": []}
    assert cells(rt("discovery.k8s.io", "endpointslices"), empty)[1:4] == \
        ["FQDN", "<unset>", "<unset>"]


# -- cluster and config kinds ---------------------------------------------------------------

def test_namespace_node():
    assert cells(rt("", "namespaces"), {"metadata": meta("default", 90),
                                        "status": {"phase": "Active"}}) == \
        ["default", "Active", "90s"]
    node = {"metadata": meta("n1", 3600, labels={"node-role.kubernetes.io/control-plane": "",
                                                 "kubernetes.io/role": "worker"}),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0"},
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}}
    table = to_table(rt("", "nodes"), [node], version="v1", now=NOW)
    assert names(table)[:5] == ["Name", "Status", "Roles", "Age", "Version"]
    assert table["rows"][0]["cells"] == [
        "n1", "Ready,SchedulingDisabled", "control-plane,worker", "60m", "v1.32.0",
        "192.168.1.2", "<none>", "<unknown>", "<unknown>", "<unknown>"]
    assert cells(rt("", "nodes"), {"metadata": meta("n2")})[1:3] == ["Unknown", "<none>"]
    node["status"]["conditions"][0]["status"] = "False"
    assert cells(rt("", "nodes"), node)[1] == "NotReady,SchedulingDisabled"


def test_secret_serviceaccount_lease():
    secret = {"metadata": meta("s"), "type": "Opaque", "data": {"a": "eA==", "b": "eQ=="}}
    table = to_table(rt("", "secrets"), [secret], version="v1", now=NOW)
    assert names(table) == ["Name", "Type", "Data", "Age"]
    assert table["rows"][0]["cells"] == ["s", "Opaque", 2, "60s"]
    table = to_table(rt("", "serviceaccounts"), [{"metadata": meta("default")}], version="v1",
                     now=NOW)
    assert names(table) == ["Name", "Secrets", "Age"]
    assert table["rows"][0]["cells"] == ["default", 0, "60s"]
    lease = {"metadata": meta("l"), "spec": {"holderIdentity": "op-1"}}
    table = to_table(rt("coordination.k8s.io", "leases"), [lease], version="v1", now=NOW)
    assert names(table) == ["Name", "Holder", "Age"] and table["rows"][0]["cells"][1] == "op-1"


def test_rbac_and_crd_created_at():
    for plural in ("roles", "clusterroles"):
        table = to_table(rt("rbac.authorization.k8s.io", plural),
                         [{"metadata": meta("r", 10)}], version="v1", now=NOW)
        assert names(table) == ["Name", "Created At"]
        assert table["columnDefinitions"][1]["type"] == "date"
        assert table["rows"][0]["cells"] == ["r", ago(10)]
    crd = {"metadata": meta("things.example.com", 10)}
    table = to_table(rt("apiextensions.k8s.io", "customresourcedefinitions"), [crd],
                     version="v1", now=NOW)
    assert names(table) == ["Name", "Created At"]
    binding = {"metadata": meta("b", 10), "roleRef": {"kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "op", "namespace": "ops"},
                            {"kind": "User", "name": "bob"}]}
    for plural in ("rolebindings", "clusterrolebindings"):
        table = to_table(rt("rbac.authorization.k8s.io", plural), [binding], version="v1",
                         now=NOW)
        assert names(table) == ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
        assert table["rows"][0]["cells"] == ["b", "ClusterRole/view", "10s", "alice, bob",
                                             "devs", "ops/op"]


def test_pdb():
    pdb = {"metadata": meta("pdb"), "spec": {"minAvailable": 1},
           "status": {"disruptionsAllowed": 0}}
    assert cells(rt("policy", "poddisruptionbudgets"), pdb) == ["pdb", "1", "N/A", 0, "60s"]


# -- events ---------------------------------------------------------------------------------

def test_core_event():
    ev = {"metadata": meta("p.17a"), "type": "Warning", "reason": "BackOff",
          "message": "  Back-off restarting  \n", "count": 4,
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
          "source": {"component": "kubelet", "host": "node-a"},
          "firstTimestamp": ago(600), "lastTimestamp": ago(30)}
    table = to_table(rt("", "events"), [ev], version="v1", now=NOW)
    assert names(table) == ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source",
                            "Message", "First Seen", "Count", "Name"]
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    assert table["rows"][0]["cells"] == ["30s", "Warning", "BackOff", "pod/web",
                                         "spec.containers{c}", "kubelet, node-a",
                                         "Back-off restarting", "10m", 4, "p.17a"]


def test_new_style_events():
    ev = {"metadata": meta("e"), "type": "Normal", "reason": "Logging", "note": "hello",
          "regarding": {"kind": "DaskJob", "name": "j"}, "reportingController": "kopf",
          "eventTime": "2024-05-01T11:59:00.000000Z"}
    expected = ["60s", "Normal", "Logging", "daskjob/j", "", "kopf", "hello", "60s", 1, "e"]
    assert to_table(rt("events.k8s.io", "events"), [ev], version="v1",
                    now=NOW)["rows"][0]["cells"] == expected
    core = {"metadata": meta("e"), "type": "Normal", "reason": "Logging", "message": "hello",
            "involvedObject": {"kind": "Namespace"}, "reportingComponent": "kopf",
            "eventTime": "2024-05-01T11:59:00.000000Z",
            "series": {"count": 9, "lastObservedTime": ago(3)}}
    row = cells(rt("", "events"), core)
    assert row[0] == "3s" and row[3] == "namespace" and row[8] == 9
    assert cells(rt("", "events"), {"metadata": meta("x")})[0] == "<unknown>"


# -- custom resources -----------------------------------------------------------------------

def _stub_jsonpath(obj, path):
    """Dotted paths only: enough to test the column logic without the real evaluator."""
    cur = obj
    for part in path.strip(".").split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


@pytest.fixture
def jsonpath(monkeypatch):
    if not hasattr(structural, "evaluate_jsonpath"):
        monkeypatch.setattr(structural, "evaluate_jsonpath", _stub_jsonpath, raising=False)


def crd(columns=None):
    version = {"name": "v1", "served": True, "storage": True,
               "schema": {"openAPIV3Schema": {"type": "object"}}}
    if columns is not None:
        version["additionalPrinterColumns"] = columns
    return type_from_crd({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced", "versions": [version],
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"}}})


WIDGET = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta("w", 150),
          "spec": {"size": 3, "ratio": 1.5, "flag": True, "color": "blue",
                   "tags": {"a": 1}, "when": ago(30), "bad": "yesterday"},
          "status": {"phase": "Ready"}}


def test_cr_without_printer_columns_gets_age(jsonpath):
    table = to_table(crd(), [WIDGET], version="v1", now=NOW)
    assert names(table) == ["Name", "Age"]
    assert table["columnDefinitions"][1]["type"] == "date"
    assert table["rows"][0]["cells"] == ["w", "2m30s"]


def test_cr_printer_columns(jsonpath):
    columns = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": 1,
         "description": "How big"},
        {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio"},
        {"name": "Flag", "type": "boolean", "jsonPath": ".spec.flag"},
        {"name": "SizeText", "type": "string", "jsonPath": ".spec.size"},
        {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
        {"name": "When", "type": "date", "jsonPath": ".spec.when"},
        {"name": "Bad", "type": "date", "jsonPath": ".spec.bad"},
        {"name": "Missing", "type": "string", "jsonPath": ".status.nothing"},
        {"name": "WrongType", "type": "integer", "jsonPath": ".spec.color"},
    ]
    table = to_table(crd(columns), [WIDGET], version="v1", now=NOW)
    assert names(table) == ["Name"] + [c["name"] for c in columns]  # no Age added
    size = table["columnDefinitions"][2]
    assert size == {"name": "Size", "type": "integer", "format": "", "description": "How big",
                    "priority": 1}
    assert table["columnDefinitions"][1]["description"] == \
        "Custom resource definition column (in JSONPath format): .status.phase"
    assert table["rows"][0]["cells"] == ["w", "Ready", 3, 1.5, True, "3", '{"a":1}', "30s",
                                         "<invalid>", None, None]


def test_cr_unknown_version_falls_back_to_storage(jsonpath):
    table = to_table(crd([{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}]),
                     [WIDGET], version="v9", now=NOW)
    assert names(table) == ["Name", "Phase"]


# -- watch events ---------------------------------------------------------------------------

def test_table_watch_events():
    rtype = rt("", "configmaps")
    obj = {"metadata": meta("cfg")}
    first = table_watch_event(rtype, "ADDED", obj, "v1", now=NOW)
    assert first["type"] == "ADDED"
    table = first["object"]
    assert table["kind"] == "Table" and names(table) == ["Name", "Data", "Age"]
    assert table["metadata"] == {"resourceVersion": "7"}
    assert table["rows"][0]["cells"] == ["cfg", 0, "60s"]
    later = table_watch_event(rtype, "MODIFIED", obj, "v1", headers=False, now=NOW)["object"]
    assert later["columnDefinitions"] is None and len(later["rows"]) == 1
    status = {"kind": "Status", "code": 410}
    assert table_watch_event(rtype, "ERROR", status, "v1") == {"type": "ERROR", "object": status}
    bookmark = table_watch_event(rtype, "BOOKMARK", {"kind": "ConfigMap", "apiVersion": "v1",
                                                     "metadata": {"resourceVersion": "99"}}, "v1")
    assert bookmark["object"]["rows"] == [] and bookmark["object"]["metadata"] == {
        "resourceVersion": "99"}


def test_cr_columns_with_real_jsonpath_filters():
    if not hasattr(structural, "evaluate_jsonpath"):
        pytest.skip("structural.evaluate_jsonpath not available")
    rtype = crd([{"name": "Ready", "type": "string",
                  "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                 {"name": "First", "type": "string", "jsonPath": ".spec.items[*].name"}])
    obj = {"metadata": meta("w"), "spec": {"items": [{"name": "a"}, {"name": "b"}]},
           "status": {"conditions": [{"type": "Other", "status": "False"},
                                     {"type": "Ready", "status": "True"}]}}
    assert to_table(rtype, [obj], version="v1", now=NOW)["rows"][0]["cells"] == ["w", "True", "a"]
