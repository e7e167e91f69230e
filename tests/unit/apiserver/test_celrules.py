"""CRD CEL rules (x-kubernetes-validations): evaluated on every write of a custom object and
compiled when the CRD is stored, with kube-apiserver 1.32's paths and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dask_kube_jobs import crds
from dask_kube_jobs.local.apiserver import celrules, crd_validation, errors
from dask_kube_jobs.local.apiserver.core import APICore

CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
RANGE_RULE = {"rule": "self.minimum <= self.maximum", "message": "minimum must not exceed maximum"}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [RANGE_RULE],
            "properties": {
                "minimum": {"type": "integer"}, "maximum": {"type": "integer"},
                "ratio": {"type": "number", "x-kubernetes-validations": [
                    {"rule": "self <= 1.5", "messageExpression": "'ratio ' + string(self) + ' is too high'"}]},
                "mode": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self == oldSelf", "message": "mode is immutable"},
                    {"rule": "self.lowerAscii() == self", "reason": "FieldValueForbidden",
                     "message": "must be lower case"}]},
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                          "x-kubernetes-list-map-keys": ["name"],
                          "items": {"type": "object", "required": ["name"], "properties": {
                              "name": {"type": "string"}, "size": {"type": "integer"}},
                              "x-kubernetes-validations": [
                                  {"rule": "self.size >= oldSelf.size", "fieldPath": ".size",
                                   "message": "may not shrink"}]}},
                "tags": {"type": "array", "items": {"type": "string"},
                         "x-kubernetes-validations": [{"rule": "self.all(t, t.split('=').size() == 2)"}]},
            },
        },
    },
    "x-kubernetes-validations": [
        {"rule": "self.metadata.name.size() <= 10 && self.metadata.name.matches('^[a-z]+$')",
         "message": "bad name"}],
}


def obj(name: str = "ok", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "example.com/v1", "kind": "Range", "metadata": {"name": name},
            "spec": {"minimum": 1, "maximum": 2, **spec}}


def messages(causes: list[errors.Cause]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def test_a_passing_object_has_no_errors() -> None:
    assert celrules.validate(obj(ratio=1, mode="a", tags=["a=b"]), None, SCHEMA) == []


def test_failing_rules_are_reported_as_kube_apiserver_words_them() -> None:
    got = messages(celrules.validate(obj("Bad_Name", minimum=5, maximum=2, ratio=2, mode="A",
                                         tags=["x"]), None, SCHEMA))
    assert got == [
        '<nil>: Invalid value: "object": bad name',
        'spec: Invalid value: "object": minimum must not exceed maximum',
        'spec.ratio: Invalid value: "number": ratio 2 is too high',
        "spec.mode: Forbidden: must be lower case",
        "spec.tags: Invalid value: \"array\": failed rule: self.all(t, t.split('=').size() == 2)",
    ]


def test_transition_rules_run_only_against_a_correlated_old_value() -> None:
    old = obj(mode="a", items=[{"name": "x", "size": 3}])
    assert celrules.validate(obj(mode="b", items=[{"name": "y", "size": 1}]), None, SCHEMA) == []
    got = messages(celrules.validate(obj(mode="b", items=[{"name": "x", "size": 1},
                                                           {"name": "y", "size": 0}]), old, SCHEMA))
    assert got == ['spec.mode: Invalid value: "string": mode is immutable',
                   'spec.items[0].size: Invalid value: "object": may not shrink']


def test_an_evaluation_error_is_reported_never_passed() -> None:
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"a": {"type": "integer"}},
        "x-kubernetes-validations": [{"rule": "self.b > 0"}, {"rule": "self.a.nope()"}]}}}
    got = messages(celrules.validate({"spec": {"a": 1}}, None, schema))
    assert got[0] == 'spec: Invalid value: "object": no such key: b'
    assert got[1].startswith('spec: Invalid value: "object": ') and "nope" in got[1]


def test_a_rule_that_does_not_compile_refuses_the_crd() -> None:
    crd = copy.deepcopy(crds.load_crd("DaskAutoscaler"))
    spec_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec_schema["x-kubernetes-validations"] = [{"rule": "self.minimum <= ", "message": "m"}]
    got = messages(crd_validation.validate_crd(crd))
    assert len(got) == 1
    assert got[0].startswith(
        "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"
        '.rule: Invalid value: apiextensions.ValidationRule{Rule:"self.minimum <= ", '
        'Message:"m", MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), '
        'FieldPath:"", OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:17: '
        "Syntax error: ")


@pytest.fixture
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    return core


def test_the_api_server_enforces_the_project_crds_rules(core: APICore) -> None:
    crd_type = core.registry.get(*CRDS)
    assert crd_type is not None
    for kind in ("DaskAutoscaler", "DaskCluster"):
        core.create(crd_type, "v1", None, crds.load_crd(kind))
    autoscalers = core.registry.get("kubernetes.dask.org", "daskautoscalers")
    assert autoscalers is not None
    body = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
            "metadata": {"name": "a"}, "spec": {"cluster": "c", "minimum": 5, "maximum": 2}}
    with pytest.raises(errors.APIError) as refused:
        core.create(autoscalers, "v1", "default", body)
    assert refused.value.code == 422
    assert refused.value.message == ('DaskAutoscaler.kubernetes.dask.org "a" is invalid: spec: '
                                     'Invalid value: "object": minimum must not exceed maximum')
    body["spec"]["maximum"] = 5
    core.create(autoscalers, "v1", "default", body)
    clusters = core.registry.get("kubernetes.dask.org", "daskclusters")
    assert clusters is not None
    long_name = "c" * 54
    with pytest.raises(errors.APIError) as refused:
        core.create(clusters, "v1", "default", {
            "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
            "metadata": {"name": long_name}, "spec": {}})
    assert '<nil>: Invalid value: "object": metadata.name must start with a letter' \
        in refused.value.message


def test_type_errors_keep_the_rules_from_running(core: APICore) -> None:
    crd_type = core.registry.get(*CRDS)
    assert crd_type is not None
    core.create(crd_type, "v1", None, crds.load_crd("DaskAutoscaler"))
    autoscalers = core.registry.get("kubernetes.dask.org", "daskautoscalers")
    assert autoscalers is not None
    with pytest.raises(errors.APIError) as refused:
        core.create(autoscalers, "v1", "default", {
            "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
            "metadata": {"name": "a"}, "spec": {"cluster": "c", "minimum": "x", "maximum": 2}})
    assert refused.value.message.endswith(
        '<nil>: Invalid value: "null": some validation rules were not checked because the '
        "object was invalid; correct the existing errors to complete validation]")


def test_an_unknown_reason_refuses_the_crd() -> None:
    assert messages(celrules.compile_errors([{"rule": "true", "reason": "Oops"}], "p")) == [
        'p.x-kubernetes-validations[0].reason: Unsupported value: "Oops": supported values: '
        '"FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"']
