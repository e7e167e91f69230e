"""CRD validation and structural-schema pruning, defaulting and validation, against the paths and
messages kube-apiserver produces."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dask_kube_jobs.local.apiserver import crd_validation, errors, objectmeta, structural
from dask_kube_jobs.local.apiserver.errors import Cause

POD_SPEC = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["scheduler"],
            "properties": {
                "idleTimeout": {"type": "integer", "minimum": 0, "default": 0},
                "image": {"type": "string", "maxLength": 20, "pattern": "^[a-z]"},
                "protocol": {"type": "string", "enum": ["tcp", "tls", "ws"], "default": "tcp"},
                "port": {"x-kubernetes-int-or-string": True},
                "scheduler": {
                    "type": "object",
                    "properties": {
                        "spec": POD_SPEC,
                        "service": {"type": "object", "x-kubernetes-embedded-resource": True,
                                    "x-kubernetes-preserve-unknown-fields": True},
                    },
                },
                "worker": {
                    "type": "object",
                    "default": {},
                    "properties": {
                        "replicas": {"type": "integer", "format": "int32", "default": 1,
                                     "minimum": 0, "maximum": 100},
                        "spec": POD_SPEC,
                        "memory": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                    },
                },
                "env": {
                    "type": "array",
                    "maxItems": 3,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {"name": {"type": "string", "minLength": 2},
                                       "value": {"type": "string", "default": ""}},
                    },
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "minItems": 1,
                         "items": {"type": "string"}},
                "labels": {"type": "object", "maxProperties": 2,
                           "additionalProperties": {"type": "string", "maxLength": 5}},
                "deadline": {"type": "string", "format": "date-time", "nullable": True},
                "x-kubernetes-validations": {"type": "string"},
            },
            "x-kubernetes-validations": [{"rule": "self.idleTimeout < 10", "message": "never"}],
        },
        "status": {
            "type": "object",
            "properties": {"phase": {"type": "string"}, "replicas": {"type": "integer"},
                           "selector": {"type": "string"}},
        },
    },
}

CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "daskclusters.kubernetes.dask.org"},
    "spec": {
        "group": "kubernetes.dask.org",
        "scope": "Namespaced",
        "names": {"plural": "daskclusters", "kind": "DaskCluster", "shortNames": ["daskcluster"]},
        "versions": [{
            "name": "v1",
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": SCHEMA},
            "subresources": {"status": {}, "scale": {
                "specReplicasPath": ".spec.worker.replicas",
                "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.selector"}},
            "additionalPrinterColumns": [
                {"name": "Workers", "type": "integer", "jsonPath": ".spec.worker.replicas"},
                {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
        }],
    },
}


def cluster(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
            "metadata": {"name": "demo", "namespace": "default"},
            "spec": {"scheduler": {"spec": {}}, **spec}}


def crd_with(mutate: Any) -> dict[str, Any]:
    crd = copy.deepcopy(CRD)
    mutate(crd)
    return crd_validation.default_crd(crd)


def messages(causes: list[Cause]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def schema_path(rest: str = "") -> str:
    return "spec.versions[0].schema.openAPIV3Schema" + rest


def version(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]


def root_schema(crd: dict[str, Any]) -> dict[str, Any]:
    return version(crd)["schema"]["openAPIV3Schema"]


def spec_props(crd: dict[str, Any]) -> dict[str, Any]:
    return root_schema(crd)["properties"]["spec"]["properties"]


# ---------------------------------------------------------------- CRD defaulting


def test_default_crd_fills_names_conversion_and_version_flags() -> None:
    raw = copy.deepcopy(CRD)
    del raw["spec"]["versions"][0]["served"]
    out = crd_validation.default_crd(raw)
    names = out["spec"]["names"]
    assert names["singular"] == "daskcluster"
    assert names["listKind"] == "DaskClusterList"
    assert out["spec"]["conversion"] == {"strategy": "None"}
    assert version(out)["served"] is False  # Go's zero value, as a real apiserver stores it
    assert "served" not in raw["spec"]["versions"][0], "input must not be modified"
    assert "singular" not in raw["spec"]["names"]


def test_default_crd_keeps_explicit_values_and_defaults_webhook_port() -> None:
    raw = copy.deepcopy(CRD)
    raw["spec"]["names"].update(singular="dc", listKind="DaskClusters")
    raw["spec"]["conversion"] = {"strategy": "Webhook", "webhook": {
        "conversionReviewVersions": ["v1"],
        "clientConfig": {"service": {"name": "conv", "namespace": "dask"}}}}
    out = crd_validation.default_crd(raw)
    assert out["spec"]["names"]["singular"] == "dc"
    assert out["spec"]["names"]["listKind"] == "DaskClusters"
    assert out["spec"]["conversion"]["webhook"]["clientConfig"]["service"]["port"] == 443
    assert crd_validation.validate_crd(out) == []


# ---------------------------------------------------------------- CRD validation


def test_realistic_crd_is_valid() -> None:
    crd = crd_validation.default_crd(CRD)
    assert crd_validation.validate_crd(crd) == []
    assert objectmeta.validate_object_meta(crd["metadata"], namespaced=False) == []


def test_crd_name_must_be_plural_dot_group() -> None:
    crd = crd_with(lambda c: c["metadata"].update(name="daskclusters.dask.org"))
    assert messages(crd_validation.validate_crd(crd)) == [
        'metadata.name: Invalid value: "daskclusters.dask.org": '
        'must be spec.names.plural+"."+spec.group']


@pytest.mark.parametrize("group, detail", [
    ("dask", "should be a domain with at least one dot"),
    ("Dask.org", "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"),
])
def test_crd_group_checks(group: str, detail: str) -> None:
    def mutate(c: dict[str, Any]) -> None:
        c["spec"]["group"] = group
        c["metadata"]["name"] = f"daskclusters.{group}"

    assert f'spec.group: Invalid value: "{group}": {detail}' in messages(
        crd_validation.validate_crd(crd_with(mutate)))


def test_crd_group_and_scope_required_and_scope_supported() -> None:
    crd = crd_with(lambda c: (c["spec"].pop("group"), c["spec"].pop("scope")))
    out = messages(crd_validation.validate_crd(crd))
    assert "spec.group: Required value" in out
    assert "spec.scope: Required value" in out
    crd = crd_with(lambda c: c["spec"].update(scope="Global"))
    assert messages(crd_validation.validate_crd(crd)) == [
        'spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"']


def test_crd_needs_exactly_one_storage_version() -> None:
    def two(c: dict[str, Any]) -> None:
        c["spec"]["versions"].append({**copy.deepcopy(version(c)), "name": "v2"})

    for mutate in (two, lambda c: version(c).update(storage=False),
                   lambda c: c["spec"].update(versions=[])):
        causes = crd_validation.validate_crd(crd_with(mutate))
        assert [c.field for c in causes] == ["spec.versions"]
        assert causes[0].message.endswith(": must have exactly one version marked as storage "
                                          "version")


def test_crd_version_names_unique_and_dns1035() -> None:
    def dup(c: dict[str, Any]) -> None:
        c["spec"]["versions"].append({**copy.deepcopy(version(c)), "storage": False})

    assert any(m.endswith("must contain unique version names")
               for m in messages(crd_validation.validate_crd(crd_with(dup))))
    out = messages(crd_validation.validate_crd(crd_with(lambda c: version(c).update(name="1v"))))
    assert out == ['spec.versions[0].name: Invalid value: "1v": a DNS-1035 label must consist of '
                   "lower case alphanumeric characters or '-', start with an alphabetic "
                   "character, and end with an alphanumeric character (e.g. 'my-name',  or "
                   "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"]


def test_crd_names_checks() -> None:
    crd = crd_with(lambda c: c["spec"]["names"].update(
        plural="DaskClusters", singular="dc", kind="Dask_Cluster", listKind="Dask_Cluster",
        shortNames=["dc", "D C"], categories=["all"]))
    crd["metadata"]["name"] = "DaskClusters.kubernetes.dask.org"
    out = messages(crd_validation.validate_crd(crd))
    fields = [m.split(":")[0] for m in out]
    assert fields == ["spec.names.plural", "spec.names.kind", "spec.names.listKind",
                      "spec.names.shortNames[1]", "spec.names.listKind"]
    assert out[1].startswith('spec.names.kind: Invalid value: "Dask_Cluster": may have mixed '
                             "case, but should otherwise match: a DNS-1035 label")
    assert out[-1] == ('spec.names.listKind: Invalid value: "Dask_Cluster": kind and listKind '
                       "may not be the same")


def test_crd_names_required() -> None:
    raw = copy.deepcopy(CRD)
    raw["spec"]["names"] = {}
    raw["metadata"]["name"] = ".kubernetes.dask.org"
    out = messages(crd_validation.validate_crd(crd_validation.default_crd(raw)))
    assert [m for m in out if m.startswith("spec.names")] == [
        "spec.names.plural: Required value", "spec.names.singular: Required value",
        "spec.names.kind: Required value", "spec.names.listKind: Required value"]


def test_crd_schema_is_required() -> None:
    crd = crd_with(lambda c: version(c).pop("schema"))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{schema_path()}: Required value: schemas are required"]


def test_non_structural_schema_missing_type() -> None:
    crd = crd_with(lambda c: spec_props(c).update(extra={"description": "no type"},
                                                  items={"type": "array"}))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{schema_path('.properties[spec].properties[extra].type')}: Required value: must not "
        "be empty for specified object fields",
        f"{schema_path('.properties[spec].properties[items].items')}: Required value: must be "
        "specified",
    ]
    crd = crd_with(lambda c: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].pop("type"))
    assert f"{schema_path('.type')}: Required value: must not be empty at the root" in messages(
        crd_validation.validate_crd(crd))


def test_preserve_unknown_fields_and_int_or_string_need_no_type() -> None:
    crd = crd_with(lambda c: spec_props(c).update(
        free={"x-kubernetes-preserve-unknown-fields": True},
        port2={"x-kubernetes-int-or-string": True,
               "anyOf": [{"type": "integer"}, {"type": "string"}]}))
    assert crd_validation.validate_crd(crd) == []


def test_structural_value_validation_rules() -> None:
    crd = crd_with(lambda c: spec_props(c).update(
        choice={"type": "object", "properties": {"a": {"type": "string"}},
                "anyOf": [{"type": "object", "required": ["a"]},
                          {"properties": {"b": {"type": "string"}}}]}))
    base = schema_path(".properties[spec].properties[choice]")
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{base}.anyOf[0].type: Forbidden: must be empty to be structural",
        f"{base}.anyOf[1].properties[b].type: Forbidden: must be empty to be structural",
        f"{base}.properties[b]: Required value: because it is defined in "
        f"{base}.anyOf[1].properties[b]",
    ]


def test_schema_openapi_restrictions() -> None:
    crd = crd_with(lambda c: spec_props(c).update(
        both={"type": "object", "properties": {"a": {"type": "string"}},
              "additionalProperties": {"type": "string"}},
        ref={"$ref": "#/definitions/x", "type": "string"},
        odd={"type": "strin"},
        keep={"type": "object", "x-kubernetes-preserve-unknown-fields": False},
        uniq={"type": "array", "items": {"type": "string"}, "uniqueItems": True}))
    base = schema_path(".properties[spec].properties")
    out = messages(crd_validation.validate_crd(crd))
    assert out[:5] == [
        f"{base}[both].additionalProperties: Forbidden: additionalProperties and properties are "
        "mutual exclusive",
        f"{base}[ref].$ref: Forbidden: $ref is not supported",
        f'{base}[odd].type: Unsupported value: "strin": supported values: "array", "boolean", '
        '"integer", "number", "object", "string"',
        f"{base}[keep].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true "
        "or undefined",
        f"{base}[uniq].uniqueItems: Forbidden: uniqueItems cannot be set to true since the "
        "runtime complexity becomes quadratic",
    ]


def test_root_schema_restrictions() -> None:
    crd = crd_with(lambda c: root_schema(c)["properties"].update(
        metadata={"type": "object", "properties": {"labels": {"type": "object"}}}))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{schema_path('.properties[metadata]')}: Forbidden: must not specify anything other "
        "than name and generateName, but metadata is implicitly specified"]
    crd = crd_with(lambda c: root_schema(c)["properties"].update(
        metadata={"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}}}))
    assert crd_validation.validate_crd(crd) == []
    crd = crd_with(lambda c: root_schema(c).update(nullable=True, type="array"))
    out = messages(crd_validation.validate_crd(crd))
    assert f'{schema_path(".type")}: Invalid value: "array": only "object" is allowed as the ' \
           "type at the root of the schema if the status subresource is enabled" in out
    assert f"{schema_path('.nullable')}: Forbidden: nullable cannot be true at the root" in out
    assert f'{schema_path(".type")}: Invalid value: "array": must be object at the root' in out


def test_root_fields_limited_when_status_enabled() -> None:
    crd = crd_with(lambda c: root_schema(c).update(enum=[{}]))
    (cause,) = crd_validation.validate_crd(crd)
    assert cause.field == schema_path()
    assert cause.message.endswith("fields are allowed at the root of the schema if the status "
                                  "subresource is enabled")
    crd = crd_with(lambda c: (root_schema(c).update(enum=[{}]), version(c).pop("subresources")))
    assert crd_validation.validate_crd(crd) == []


def test_defaults_must_validate_and_be_pruned() -> None:
    def bad(c: dict[str, Any]) -> None:
        spec_props(c)["worker"]["properties"]["replicas"]["default"] = "one"
        spec_props(c)["worker"]["default"] = {"replicas": 2, "bogus": True}
        spec_props(c)["protocol"]["default"] = "udp"

    base = schema_path(".properties[spec].properties")
    assert messages(crd_validation.validate_crd(crd_with(bad))) == [
        f'{base}[protocol].default: Unsupported value: "udp": supported values: "tcp", "tls", '
        '"ws"',
        f"{base}[worker].default: Invalid value: map[string]interface {{}}{{\"bogus\":true, "
        '"replicas":2}: must not have unknown fields',
        f'{base}[worker].properties[replicas].default: Invalid value: "string":  in body must be '
        'of type integer: "string"',
    ]


def test_default_forbidden_in_top_level_metadata() -> None:
    crd = crd_with(lambda c: root_schema(c)["properties"].update(
        kind={"type": "string", "default": "DaskCluster"}))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{schema_path('.properties[kind].default')}: Forbidden: must not be set in top-level "
        "kind"]


def test_list_type_rules() -> None:
    crd = crd_with(lambda c: spec_props(c).update(
        ports={"type": "array", "x-kubernetes-list-type": "map",
               "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
        keyed={"type": "array", "x-kubernetes-list-type": "map",
               "x-kubernetes-list-map-keys": ["port"],
               "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
        odd={"type": "array", "x-kubernetes-list-type": "bag", "items": {"type": "string"}}))
    base = schema_path(".properties[spec].properties")
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{base}[ports].x-kubernetes-list-map-keys: Required value: must not be empty if "
        "x-kubernetes-list-type is map",
        f"{base}[keyed].items.properties[port].default: Required value: this property is in "
        "x-kubernetes-list-map-keys, so it must have a default or be a required property",
        f'{base}[odd].x-kubernetes-list-type: Unsupported value: "bag": supported values: '
        '"atomic", "set", "map"',
    ]


def test_cel_rules_must_not_be_blank() -> None:
    crd = crd_with(lambda c: root_schema(c)["properties"]["spec"].update(
        {"x-kubernetes-validations": [{"rule": "  "}]}))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{schema_path('.properties[spec].x-kubernetes-validations[0].rule')}: Required value: "
        "rule is not specified"]


def test_scale_subresource_paths() -> None:
    crd = crd_with(lambda c: version(c)["subresources"].update(scale={
        "specReplicasPath": ".status.replicas", "statusReplicasPath": "status.replicas",
        "labelSelectorPath": ".metadata.labels"}))
    base = "spec.versions[0].subresources.scale"
    assert messages(crd_validation.validate_crd(crd)) == [
        f'{base}.specReplicasPath: Invalid value: ".status.replicas": should be a json path '
        "under .spec",
        f'{base}.statusReplicasPath: Invalid value: "status.replicas": must be a simple json '
        "path starting with .",
        f'{base}.labelSelectorPath: Invalid value: ".metadata.labels": should be a json path '
        "under either .spec or .status",
    ]
    crd = crd_with(lambda c: version(c)["subresources"].update(scale={}))
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{base}.specReplicasPath: Required value", f"{base}.statusReplicasPath: Required value"]


def test_printer_columns() -> None:
    crd = crd_with(lambda c: version(c).update(additionalPrinterColumns=[
        {"type": "integer", "jsonPath": ".spec.worker.replicas"},
        {"name": "Ready", "type": "bool", "jsonPath": ".status.ready", "format": "yes"},
        {"name": "Phase", "type": "string"},
        {"name": "Phase", "jsonPath": "status.phase"}]))
    base = "spec.versions[0].additionalPrinterColumns"
    assert messages(crd_validation.validate_crd(crd)) == [
        f"{base}[0].name: Required value",
        f'{base}[1].type: Invalid value: "bool": must be one of '
        "boolean,date,integer,number,string",
        f'{base}[1].format: Invalid value: "yes": must be one of '
        "byte,date,date-time,double,float,int32,int64,password",
        f"{base}[2].JSONPath: Required value",
        f"{base}[3].type: Required value: must be one of boolean,date,integer,number,string",
        f'{base}[3].JSONPath: Invalid value: "status.phase": must be a simple json path '
        "starting with .",
    ]


def test_conversion_webhook_needs_config() -> None:
    crd = crd_with(lambda c: c["spec"].update(conversion={"strategy": "Webhook"}))
    assert messages(crd_validation.validate_crd(crd)) == [
        "spec.conversion.webhookClientConfig: Required value: required when strategy is set to "
        "Webhook",
        "spec.conversion.conversionReviewVersions: Required value"]
    crd = crd_with(lambda c: c["spec"].update(conversion={"strategy": "Magic"}))
    assert messages(crd_validation.validate_crd(crd)) == [
        'spec.conversion.strategy: Unsupported value: "Magic": supported values: "None", '
        '"Webhook"']


def test_crd_errors_format_as_a_422() -> None:
    crd = crd_with(lambda c: c["spec"].update(scope="Global"))
    err = errors.invalid("CustomResourceDefinition", crd["metadata"]["name"],
                         crd_validation.validate_crd(crd), "apiextensions.k8s.io")
    assert err.code == 422
    assert err.message == (
        'CustomResourceDefinition.apiextensions.k8s.io "daskclusters.kubernetes.dask.org" is '
        'invalid: spec.scope: Unsupported value: "Global": supported values: "Cluster", '
        '"Namespaced"')
    assert err.status()["details"]["causes"][0]["reason"] == "FieldValueNotSupported"


# ---------------------------------------------------------------- pruning


def test_prune_drops_unknown_fields_and_keeps_resource_meta() -> None:
    obj = cluster(bogus=1, worker={"replicas": 2, "typo": 3, "spec": {"containers": [
        {"name": "w", "anything": {"goes": True}}]}})
    obj["metadata"]["whatever"] = "metadata is not pruned by the schema"
    obj["status"] = {"phase": "Running", "junk": 1}
    obj["extra"] = {"a": 1}
    out = structural.prune(obj, SCHEMA)
    assert "extra" not in out and "bogus" not in out["spec"]
    assert out["spec"]["worker"] == {"replicas": 2, "spec": {"containers": [
        {"name": "w", "anything": {"goes": True}}]}}
    assert out["status"] == {"phase": "Running"}
    assert out["metadata"] == obj["metadata"]
    assert out["apiVersion"] == obj["apiVersion"] and out["kind"] == "DaskCluster"
    assert obj["spec"]["bogus"] == 1, "input must not be modified"


def test_prune_without_declared_meta_properties_keeps_them_at_root_only() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "inner": {"type": "object", "properties": {"x": {"type": "string"}}}}}}}
    obj = {"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"},
           "spec": {"inner": {"x": "1", "kind": "dropped", "metadata": {}}}}
    out = structural.prune(obj, schema)
    assert out == {"apiVersion": "a/v1", "kind": "K", "metadata": {"name": "n"},
                   "spec": {"inner": {"x": "1"}}}


def test_prune_embedded_resource_and_maps_and_lists() -> None:
    obj = cluster(scheduler={"service": {"apiVersion": "v1", "kind": "Service",
                                         "metadata": {"name": "s"}, "spec": {"ports": []}}},
                  labels={"a": "x", "b": "y"},
                  env=[{"name": "A", "value": "1", "secret": True}])
    out = structural.prune(obj, SCHEMA)
    assert out["spec"]["scheduler"]["service"] == obj["spec"]["scheduler"]["service"]
    assert out["spec"]["labels"] == {"a": "x", "b": "y"}
    assert out["spec"]["env"] == [{"name": "A", "value": "1"}]


def test_prune_under_preserve_unknown_still_prunes_declared_fields() -> None:
    schema = {"type": "object", "properties": {"spec": {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True,
        "properties": {"known": {"type": "object", "properties": {"a": {"type": "string"}}}}}}}
    out = structural.prune({"spec": {"free": {"x": 1}, "known": {"a": "1", "b": 2}}}, schema)
    assert out == {"spec": {"free": {"x": 1}, "known": {"a": "1"}}}


# ---------------------------------------------------------------- defaulting


def test_defaults_apply_to_existing_objects_and_nested_defaults() -> None:
    out = structural.apply_defaults(cluster(), SCHEMA)
    spec = out["spec"]
    assert spec["idleTimeout"] == 0 and spec["protocol"] == "tcp"
    assert spec["worker"] == {"replicas": 1}, "default {} of worker gets its own defaults"
    assert "status" not in out, "no default for status, so it stays absent"
    out = structural.apply_defaults(cluster(worker={"replicas": 5}), SCHEMA)
    assert out["spec"]["worker"]["replicas"] == 5


def test_defaults_apply_to_array_items() -> None:
    out = structural.apply_defaults(cluster(env=[{"name": "A"}, {"name": "B", "value": "b"}]),
                                    SCHEMA)
    assert out["spec"]["env"] == [{"name": "A", "value": ""}, {"name": "B", "value": "b"}]


def test_defaults_and_nulls() -> None:
    obj = cluster(protocol=None, image=None, deadline=None, worker={"replicas": None})
    out = structural.apply_defaults(obj, SCHEMA)
    assert out["spec"]["protocol"] == "tcp", "null of a non-nullable field is defaulted"
    assert "image" not in out["spec"], "null without default is dropped"
    assert out["spec"]["deadline"] is None, "nullable null is kept"
    assert out["spec"]["worker"]["replicas"] == 1
    assert obj["spec"]["protocol"] is None, "input must not be modified"


def test_defaults_do_not_create_missing_parents_without_default() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "a": {"type": "object", "properties": {"b": {"type": "integer", "default": 1}}}}}}}
    assert structural.apply_defaults({"spec": {}}, schema) == {"spec": {}}
    assert structural.apply_defaults({"spec": {"a": {}}}, schema) == {"spec": {"a": {"b": 1}}}


def test_normalize_defaults_then_prunes() -> None:
    out = structural.normalize(cluster(bogus=1), SCHEMA)
    assert out["spec"]["worker"] == {"replicas": 1} and "bogus" not in out["spec"]


# ---------------------------------------------------------------- validating custom objects


def check(obj: dict[str, Any]) -> list[str]:
    return messages(structural.validate(structural.normalize(obj, SCHEMA), SCHEMA))


def test_valid_object() -> None:
    obj = cluster(worker={"replicas": 3, "memory": 1.5, "spec": {"containers": []}},
                  env=[{"name": "AB"}], tags=["x"], labels={"a": "b"},
                  deadline="2024-01-02T03:04:05Z", port="http", image="ghcr.io/dask")
    assert check(obj) == []
    assert check(cluster(port=8786, deadline=None)) == []


def test_type_error_message_matches_kubernetes() -> None:
    causes = structural.validate(cluster(worker={"replicas": "string"}), SCHEMA)
    assert messages(causes) == [
        'spec.worker.replicas: Invalid value: "string": spec.worker.replicas in body must be of '
        'type integer: "string"']
    assert causes[0].reason == "FieldValueTypeInvalid"
    assert check(cluster(worker={"replicas": 2.0})) == []
    assert check(cluster(worker={"replicas": 2.5})) == [
        'spec.worker.replicas: Invalid value: "number": spec.worker.replicas in body must be of '
        'type integer: "number"']


def test_required_enum_and_int_or_string() -> None:
    obj = cluster(protocol="udp", port=True)
    del obj["spec"]["scheduler"]
    causes = structural.validate(structural.normalize(obj, SCHEMA), SCHEMA)
    assert messages(causes) == [
        "spec.scheduler: Required value",
        'spec.protocol: Unsupported value: "udp": supported values: "tcp", "tls", "ws"',
        'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: '
        '"boolean"',
    ]
    assert [c.reason for c in causes] == ["FieldValueRequired", "FieldValueNotSupported",
                                          "FieldValueTypeInvalid"]


def test_numbers_strings_and_formats() -> None:
    obj = cluster(idleTimeout=-1, worker={"replicas": 101, "memory": 0}, image="Ab" * 11,
                  deadline="yesterday")
    assert check(obj) == [  # in the order of the object's fields
        "spec.idleTimeout: Invalid value: -1: spec.idleTimeout in body should be greater than "
        "or equal to 0",
        "spec.worker.replicas: Invalid value: 101: spec.worker.replicas in body should be less "
        "than or equal to 100",
        "spec.worker.memory: Invalid value: 0: spec.worker.memory in body should be greater "
        "than 0",
        "spec.image: Too long: may not be more than 20 bytes",
        'spec.image: Invalid value: "AbAbAbAbAbAbAbAbAbAbAb": spec.image in body should match '
        "'^[a-z]'",
        'spec.deadline: Invalid value: "yesterday": spec.deadline in body must be of type '
        'date-time: "yesterday"',
    ]


def test_arrays_maps_and_list_types() -> None:
    obj = cluster(env=[{"name": "A"}, {"name": "AB"}, {"name": "AB"}, {"name": "CD"}],
                  tags=[], labels={"a": "toolong", "b": "x", "c": "y"})
    assert check(obj) == [
        "spec.env: Too many: 4: must have at most 3 items",
        'spec.env[0].name: Invalid value: "A": spec.env[0].name in body should be at least 2 '
        "chars long",
        "spec.tags: Invalid value: 0: spec.tags in body should have at least 1 items",
        "spec.labels: Too many: 3: must have at most 2 items",
        "spec.labels.a: Too long: may not be more than 5 bytes",
        'spec.env[2]: Duplicate value: map[string]interface {}{"name":"AB"}',
    ]
    assert check(cluster(tags=["x", "y", "x"])) == ['spec.tags[2]: Duplicate value: "x"']


def test_nullable_and_null_values() -> None:
    assert structural.validate(cluster(deadline=None), SCHEMA) == []
    assert messages(structural.validate(cluster(image=None), SCHEMA)) == [
        'spec.image: Invalid value: "null": spec.image in body must be of type string: "null"']


def test_embedded_resource_needs_apiversion_and_kind() -> None:
    obj = cluster(scheduler={"service": {"metadata": {"name": "bad/name"}, "spec": {}}})
    assert check(obj) == [
        "spec.scheduler.service.apiVersion: Required value",
        "spec.scheduler.service.kind: Required value",
        "spec.scheduler.service.metadata.name: Invalid value: \"bad/name\": may not contain '/'",
    ]


def test_cel_rules_are_not_evaluated() -> None:
    assert check(cluster(idleTimeout=50)) == []


def test_junctors_multiple_of_and_property_counts() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "n": {"type": "integer", "multipleOf": 5},
        "choice": {"type": "object", "minProperties": 1,
                   "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "oneOf": [{"required": ["a"]}, {"required": ["b"]}]},
        "v": {"x-kubernetes-int-or-string": True,
              "anyOf": [{"type": "integer"}, {"type": "string"}]}}}}}
    obj = {"spec": {"n": 7, "choice": {}, "v": 1}}
    assert messages(structural.validate(obj, schema)) == [
        "spec.n: Invalid value: 7: spec.n in body should be a multiple of 5",
        'spec.choice: Invalid value: "": spec.choice in body must validate one and only one '
        "schema (oneOf)",
        "spec.choice: Invalid value: 0: spec.choice in body should have at least 1 properties",
    ]
    assert messages(structural.validate({"spec": {"choice": {"a": "x", "b": "y"}}}, schema)) == [
        'spec.choice: Invalid value: "": spec.choice in body must validate one and only one '
        "schema (oneOf)"]


def test_validation_errors_format_as_a_422() -> None:
    causes = structural.validate(cluster(worker={"replicas": "string"}), SCHEMA)
    err = errors.invalid("DaskCluster", "demo", causes, "kubernetes.dask.org")
    assert err.message == (
        'DaskCluster.kubernetes.dask.org "demo" is invalid: spec.worker.replicas: Invalid value: '
        '"string": spec.worker.replicas in body must be of type integer: "string"')


def test_root_metadata_schema_constrains_name() -> None:
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["metadata"] = {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 3}}}
    assert messages(structural.validate(cluster(), schema)) == [
        "metadata.name: Too long: may not be more than 3 bytes"]


# ---------------------------------------------------------------- names, labels, object meta

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    r"for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


def test_validate_metadata_name() -> None:
    assert objectmeta.validate_metadata_name("my-cluster.v1") == []
    assert messages(objectmeta.validate_metadata_name("Bad_Name")) == [
        f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    assert messages(objectmeta.validate_metadata_name("a" * 254)) == [
        f'metadata.name: Invalid value: "{"a" * 254}": must be no more than 253 characters']
    assert messages(objectmeta.validate_metadata_name("")) == [
        "metadata.name: Required value: name or generateName is required"]


def test_dns_labels() -> None:
    assert objectmeta.validate_dns_label("kube-system") == []
    assert messages(objectmeta.validate_dns_label("a.b")) == [
        'metadata.name: Invalid value: "a.b": a lowercase RFC 1123 label must consist of lower '
        "case alphanumeric characters or '-', and must start and end with an alphanumeric "
        "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
    assert objectmeta.validate_dns1035_label("scheduler") == []
    assert messages(objectmeta.validate_dns1035_label("1st")) == [
        'metadata.name: Invalid value: "1st": a DNS-1035 label must consist of lower case '
        "alphanumeric characters or '-', start with an alphabetic character, and end with an "
        "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
        "'[a-z]([-a-z0-9]*[a-z0-9])?')"]
    assert objectmeta.name_is_dns_subdomain("dask-", prefix=True) == []
    assert objectmeta.name_is_dns_subdomain("dask-") != []


def test_label_keys_and_values() -> None:
    assert objectmeta.validate_label_key("app.kubernetes.io/name") == []
    assert messages(objectmeta.validate_label_key("a/b/c")) == [
        'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
        "'/' (e.g. 'example.com/MyName')"]
    assert messages(objectmeta.validate_label_key("/x")) == [
        'metadata.labels: Invalid value: "/x": prefix part must be non-empty']
    assert objectmeta.validate_label_value("") == []
    assert messages(objectmeta.validate_label_value("-bad")) == [
        'metadata.labels: Invalid value: "-bad": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
        "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
    assert messages(objectmeta.validate_label_value("x" * 64))[0].endswith(
        "must be no more than 63 characters")


def test_validate_object_meta() -> None:
    good = {"name": "demo", "namespace": "default", "labels": {"app": "dask"},
            "annotations": {"Example.com/Note": "ok"}, "finalizers": ["kubernetes.dask.org/x"],
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": "1",
                                 "controller": True}]}
    assert objectmeta.validate_object_meta(good, namespaced=True) == []
    assert messages(objectmeta.validate_object_meta({"generateName": "Dask-"},
                                                    namespaced=True)) == [
        f'metadata.generateName: Invalid value: "Dask-": {SUBDOMAIN_MSG}',
        "metadata.name: Required value: name or generateName is required",
        "metadata.namespace: Required value",
    ]
    assert messages(objectmeta.validate_object_meta({"name": "x", "namespace": "default"},
                                                    namespaced=False)) == [
        "metadata.namespace: Forbidden: not allowed on this type"]


def test_object_meta_annotations_owners_finalizers() -> None:
    meta = {"name": "x", "annotations": {"big": "x" * (256 * 1024)},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "A", "name": "a", "uid": "1",
                                 "controller": True},
                                {"apiVersion": "", "kind": "B", "name": "b", "uid": "2",
                                 "controller": True}],
            "finalizers": ["orphan", "foregroundDeletion"], "generation": -1}
    out = messages(objectmeta.validate_object_meta(meta, namespaced=False))
    assert out[0] == "metadata.generation: Invalid value: -1: must be greater than or equal to 0"
    assert "metadata.annotations: Too long: may not be more than 262144 bytes" in out
    assert 'metadata.ownerReferences.apiVersion: Invalid value: "": version must not be empty' \
        in out
    assert any(m.endswith('Only one reference can have Controller set to true. Found "true" in '
                          "references for A/a and B/b") for m in out)
    assert out[-1].endswith("finalizer orphan and foregroundDeletion cannot be both set")


# ---------------------------------------------------------------- re-exported JSON paths


def test_scale_paths_and_printer_jsonpath_are_reexported() -> None:
    obj = structural.apply_defaults(cluster(), SCHEMA)
    assert structural.get_path(obj, ".spec.worker.replicas") == 1
    scaled = structural.set_path(obj, ".spec.worker.replicas", 4)
    assert structural.get_path(scaled, ".spec.worker.replicas") == 4
    assert obj["spec"]["worker"]["replicas"] == 1
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    assert structural.evaluate_jsonpath(
        obj, '.status.conditions[?(@.type=="Ready")].status') == "True"
