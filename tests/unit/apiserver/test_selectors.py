"""Label and field selectors: grammar, matching, normalised strings and kube-apiserver's errors."""

from __future__ import annotations

import pytest

from dask_kube_jobs.local.apiserver import errors
from dask_kube_jobs.local.apiserver.fieldselectors import (
    SUPPORTED_FIELDS,
    FieldSelector,
    parse_field_selector,
    supported_fields,
)
from dask_kube_jobs.local.apiserver.selectors import (
    LabelSelector,
    format_labels,
    label_selector_from_dict,
    label_selector_from_set,
    parse_label_selector,
    selector_to_string,
)


def bad(fn, *args, **kwargs) -> str:
    with pytest.raises(errors.APIError) as info:
        fn(*args, **kwargs)
    assert info.value.code == 400 and info.value.reason == "BadRequest"
    return info.value.message


# -- label selectors: parsing ---------------------------------------------------------------

@pytest.mark.parametrize("text, normalised", [
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("x in (c,b,b)", "x in (b,c)"),
    ("env notin ( prod , dev )", "env notin (dev,prod)"),
    ("key", "key"),
    ("!key", "!key"),
    ("n>5", "n>5"),
    ("n<3", "n<3"),
    ("  z = 1 ,  a , !b  ", "a,!b,z=1"),  # whitespace tolerant, sorted by key
    ("app.kubernetes.io/name=dask", "app.kubernetes.io/name=dask"),
    ("a=", "a="),
    ("a in ()", "a in ()"),
    ("a in (,x,)", "a in (,x)"),
    ("in=notin", "in=notin"),  # keywords are plain words in key and value positions
    ("a in (in,notin)", "a in (in,notin)"),
])
def test_parse_and_normalise(text, normalised):
    assert str(parse_label_selector(text)) == normalised


@pytest.mark.parametrize("text", ["", "   ", None])
def test_empty_selector_matches_everything(text):
    sel = parse_label_selector(text)
    assert sel.empty and isinstance(sel, LabelSelector)
    assert sel.matches({}) and sel.matches({"a": "b"}) and sel.matches(None)


@pytest.mark.parametrize("text, message", [
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a=b,", "found '', expected: identifier after ','"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("=a", "found '=', expected: !, identifier, or 'end of string'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a =!b", "unable to parse requirement: found '!', expected: identifier"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a>b", "unable to parse requirement: values[0]: Invalid value: \"b\": "
            "for 'Gt', 'Lt' operators, the value must be an integer"),
])
def test_parse_errors_are_kubernetes_messages(text, message):
    assert bad(parse_label_selector, text) == message


def test_invalid_key_and_value_are_rejected():
    msg = bad(parse_label_selector, "a/b/c=d")
    assert msg.startswith('unable to parse requirement: <nil>: Invalid value: "a/b/c": '
                          "a qualified name must consist of")
    msg = bad(parse_label_selector, "a=b/c")
    assert msg.startswith('unable to parse requirement: values[0][a]: Invalid value: "b/c": '
                          "a valid label must be an empty string")
    assert "name part must be no more than 63 characters" in bad(
        parse_label_selector, "x" * 64)
    assert "prefix part a lowercase RFC 1123 subdomain" in bad(parse_label_selector, "A_B/c")


# -- label selectors: matching --------------------------------------------------------------

LABELS = {"app": "dask", "role": "worker", "n": "7", "empty": ""}


@pytest.mark.parametrize("text, expected", [
    ("app=dask", True),
    ("app==dask", True),
    ("app=other", False),
    ("missing=", False),  # equality needs the key
    ("empty=", True),
    ("app!=other", True),
    ("app!=dask", False),
    ("missing!=x", True),  # inequality holds for a missing key
    ("role in (worker,scheduler)", True),
    ("role in (scheduler)", False),
    ("missing in (x)", False),
    ("role notin (scheduler)", True),
    ("role notin (worker)", False),
    ("missing notin (x)", True),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("n>5", True),
    ("n>7", False),
    ("n<8", True),
    ("app>1", False),  # a non-integer label never compares
    ("missing<100", False),
    ("app=dask,role=worker", True),
    ("app=dask,role=scheduler", False),
])
def test_matching(text, expected):
    assert parse_label_selector(text).matches(LABELS) is expected


# -- metav1.LabelSelector -------------------------------------------------------------------

def test_from_dict_match_labels_and_expressions():
    sel = label_selector_from_dict({
        "matchLabels": {"app": "dask", "component": "worker"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["b", "a"]},
            {"key": "gpu", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "Exists"},
            {"key": "env", "operator": "NotIn", "values": ["prod"]},
        ],
    })
    assert str(sel) == "app=dask,component=worker,env notin (prod),!gpu,tier in (a,b),zone"
    ok = {"app": "dask", "component": "worker", "tier": "a", "zone": "z1"}
    assert sel.matches(ok)
    assert not sel.matches({**ok, "gpu": "yes"})
    assert not sel.matches({**ok, "tier": "c"})
    assert not sel.matches({k: v for k, v in ok.items() if k != "zone"})
    assert not sel.matches({**ok, "env": "prod"})


def test_from_dict_empty_and_null():
    assert label_selector_from_dict({}).matches({"x": "y"})
    assert label_selector_from_dict({"matchLabels": {}}).matches({})
    nothing = label_selector_from_dict(None)
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})
    assert not nothing.empty


def test_from_dict_errors():
    assert bad(label_selector_from_dict, {"matchExpressions": [
        {"key": "a", "operator": "Gt", "values": ["1"]}]}) == \
        '"Gt" is not a valid label selector operator'
    assert "values set can't be empty" in bad(label_selector_from_dict, {
        "matchExpressions": [{"key": "a", "operator": "In", "values": []}]})
    assert "values set must be empty for exists" in bad(label_selector_from_dict, {
        "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})
    assert "a valid label must be" in bad(label_selector_from_dict,
                                          {"matchLabels": {"a": "not valid"}})


def test_selector_to_string_for_scale():
    assert selector_to_string({"matchLabels": {"dask.org/cluster-name": "c", "app": "x"}}) == \
        "app=x,dask.org/cluster-name=c"
    assert selector_to_string({}) == ""
    assert selector_to_string(None) == ""
    # the string form parses back to an equivalent selector
    text = selector_to_string({"matchExpressions": [
        {"key": "a", "operator": "In", "values": ["y", "x"]}, {"key": "b", "operator": "Exists"}]})
    assert text == "a in (x,y),b"
    assert str(parse_label_selector(text)) == text


def test_selector_from_set_and_format_labels():
    sel = label_selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"}) and not sel.matches({"a": "1"})
    assert label_selector_from_set({}).matches({})
    assert format_labels({"b": "2", "a": "1"}) == "a=1,b=2"
    assert format_labels({}) == "<none>" and format_labels(None) == "<none>"


# -- field selectors ------------------------------------------------------------------------

POD = {
    "metadata": {"name": "web-1", "namespace": "default"},
    "spec": {"nodeName": "node-a", "schedulerName": "default-scheduler",
             "restartPolicy": "Always", "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "podIP": "10.0.0.5"},
}


def test_field_selector_parse_and_string():
    sel = parse_field_selector("status.phase!=Failed,metadata.name=web-1")
    assert isinstance(sel, FieldSelector)
    assert str(sel) == "metadata.name=web-1,status.phase!=Failed"  # sorted like Kubernetes
    assert sel.exact("metadata.name") == "web-1" and sel.exact("status.phase") is None
    assert parse_field_selector("").empty and parse_field_selector(None).matches(POD)
    assert str(parse_field_selector("a==b")) == "a=b"


def test_field_selector_escapes():
    sel = parse_field_selector(r"metadata.name=a\,b\=c\\d")
    assert sel.exact("metadata.name") == "a,b=c\\d"
    assert str(sel) == r"metadata.name=a\,b\=c\\d"


@pytest.mark.parametrize("text, message", [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
    ("a=b=c", "invalid field selector: unescaped character in value: ="),
    (r"a=b\q", r"invalid field selector: invalid escape sequence: \q"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_syntax_errors(text, message):
    assert bad(parse_field_selector, text) == message


@pytest.mark.parametrize("text, expected", [
    ("metadata.name=web-1", True),
    ("metadata.name=web-2", False),
    ("metadata.namespace=default", True),
    ("metadata.name!=web-2", True),
    ("status.phase=Running", True),
    ("status.phase=Running,spec.nodeName=node-b", False),
    ("spec.nodeName=node-a", True),
    ("spec.nodeName=", False),
    ("spec.schedulerName=default-scheduler", True),
    ("status.podIP=10.0.0.5", True),
    ("status.nominatedNodeName=", True),  # missing reads as ""
    ("spec.hostNetwork=false", True),  # defaulted boolean
    ("spec.host=node-a", True),  # old spelling of spec.nodeName
])
def test_pod_fields(text, expected):
    assert parse_field_selector(text, group="", plural="pods").matches(POD) is expected


def test_pod_ip_from_pod_ips_or_pod_ip():
    sel = parse_field_selector("status.podIP=10.1.1.1", group="", plural="pods")
    assert sel.matches({"status": {"podIP": "10.1.1.1"}})
    assert sel.matches({"status": {"podIPs": [{"ip": "10.1.1.1"}, {"ip": "fd00::1"}]}})
    assert not sel.matches({"status": {}})


def test_without_kind_any_dotted_path_resolves():
    obj = {"spec": {"replicas": 3, "paused": True, "nested": {"x": "y"}}}
    assert parse_field_selector("spec.replicas=3").matches(obj)
    assert parse_field_selector("spec.paused=true").matches(obj)
    assert parse_field_selector("spec.nested.x=y").matches(obj)
    assert parse_field_selector("spec.nope=").matches(obj)
    assert parse_field_selector("spec.replicas.deeper=").matches(obj)


def test_unsupported_fields_are_400():
    assert bad(parse_field_selector, "spec.foo=x", group="", plural="pods") == \
        "field label not supported: spec.foo"
    assert bad(parse_field_selector, "spec.color=red", group="example.com", plural="widgets") \
        == "field label not supported: spec.color"
    assert bad(parse_field_selector, "metadata.namespace=x", group="", plural="nodes") == \
        "field label not supported: metadata.namespace"
    assert bad(parse_field_selector, "involvedObject.name=x", group="events.k8s.io",
               plural="events") == "field label not supported: involvedObject.name"
    # a CRD's selectableFields widen the set
    sel = parse_field_selector("spec.color=red", group="example.com", plural="widgets",
                               extra_fields=["spec.color"])
    assert sel.matches({"spec": {"color": "red"}})


def test_everything_supports_name_and_namespace():
    for key in [("", "configmaps"), ("example.com", "daskclusters"), ("apps", "deployments")]:
        sel = parse_field_selector("metadata.name=a,metadata.namespace=ns", group=key[0],
                                   plural=key[1])
        assert sel.matches({"metadata": {"name": "a", "namespace": "ns"}})
    assert {"metadata.name", "metadata.namespace"} <= supported_fields("x.io", "things")


def test_per_kind_lists():
    assert SUPPORTED_FIELDS[("", "secrets")] >= {"type"}
    assert SUPPORTED_FIELDS[("apps", "replicasets")] >= {"status.replicas"}
    assert SUPPORTED_FIELDS[("", "namespaces")] == {"metadata.name", "status.phase"}
    assert SUPPORTED_FIELDS[("", "services")] >= {"spec.clusterIP", "spec.type"}


def test_core_event_fields():
    event = {"metadata": {"name": "e1", "namespace": "default"},
             "involvedObject": {"kind": "Pod", "name": "web-1", "uid": "u1",
                                "namespace": "default"},
             "reason": "Started", "type": "Normal", "source": {"component": "kubelet"}}
    for text in ["involvedObject.name=web-1", "involvedObject.kind=Pod", "involvedObject.uid=u1",
                 "involvedObject.namespace=default", "reason=Started", "type=Normal",
                 "source=kubelet", "involvedObject.fieldPath="]:
        assert parse_field_selector(text, group="", plural="events").matches(event), text
    assert not parse_field_selector("type=Warning", group="", plural="events").matches(event)


def test_events_k8s_io_fields():
    event = {"metadata": {"name": "e1", "namespace": "default"},
             "regarding": {"kind": "Pod", "name": "web-1"}, "reason": "Started",
             "type": "Normal", "reportingController": "kopf"}
    for text in ["regarding.name=web-1", "regarding.kind=Pod", "reason=Started",
                 "reportingController=kopf", "type=Normal"]:
        assert parse_field_selector(text, group="events.k8s.io", plural="events").matches(event)
    # the same fields read an event stored in the core shape
    core = {"involvedObject": {"name": "web-1"}, "reportingComponent": "kopf"}
    sel = parse_field_selector("regarding.name=web-1,reportingController=kopf",
                               group="events.k8s.io", plural="events")
    assert sel.matches(core)


def test_node_secret_namespace_replicaset_fields():
    node = {"metadata": {"name": "n1"}, "spec": {}}
    assert parse_field_selector("spec.unschedulable=false", group="", plural="nodes").matches(node)
    node["spec"]["unschedulable"] = True
    assert parse_field_selector("spec.unschedulable=true", group="", plural="nodes").matches(node)
    secret = {"metadata": {"name": "s"}, "type": "kubernetes.io/tls"}
    sel = parse_field_selector("type=kubernetes.io/tls", group="", plural="secrets")
    assert sel.matches(secret)
    ns = {"metadata": {"name": "default"}, "status": {"phase": "Active"}}
    assert parse_field_selector("status.phase=Active", group="", plural="namespaces").matches(ns)
    rs = {"metadata": {"name": "r"}, "status": {}}
    sel = parse_field_selector("status.replicas=0", group="apps", plural="replicasets")
    assert sel.matches(rs)
    assert not sel.matches({"status": {"replicas": 2}})
    svc = {"spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1"}}
    assert parse_field_selector("spec.clusterIP=10.96.0.1,spec.type=ClusterIP", group="",
                                plural="services").matches(svc)
