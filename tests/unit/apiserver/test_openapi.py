"""OpenAPI documents: what kubectl explain, validation and client-side apply read from them."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.apiserver import openapi
from dask_kube_jobs.local.apiserver.registry import Registry, type_from_crd

WIDGET_SCHEMA = {
    "type": "object",
    "description": "A widget.",
    "properties": {
        "spec": {"type": "object", "properties": {
            "replicas": {"type": "integer"},
            "port": {"x-kubernetes-int-or-string": True},
        }},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}


def widget_crd(schema=WIDGET_SCHEMA) -> dict:
    version = {"name": "v1", "served": True, "storage": True,
               "subresources": {"status": {}, "scale": {}}}
    if schema is not None:
        version["schema"] = {"openAPIV3Schema": schema}
    return {
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
                 "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                 "versions": [version]},
    }


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(type_from_crd(widget_crd()))
    return reg


def all_refs(node, found=None) -> set[str]:
    found = set() if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            all_refs(value, found)
    elif isinstance(node, list):
        for value in node:
            all_refs(value, found)
    return found


def all_types(node, found=None) -> list:
    found = [] if found is None else found
    if isinstance(node, dict):
        if "type" in node and not isinstance(node.get("type"), dict):
            found.append(node["type"])
        for key, value in node.items():
            if key == "properties":
                for prop in value.values():
                    all_types(prop, found)
            elif key != "x-kubernetes-group-version-kind":
                all_types(value, found)
    elif isinstance(node, list):
        for value in node:
            all_types(value, found)
    return found


def schema_by_gvk(doc: dict, group: str, version: str, kind: str) -> dict:
    for schema in doc["components"]["schemas"].values():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            if gvk == {"group": group, "version": version, "kind": kind}:
                return schema
    raise AssertionError(f"no schema for {group}/{version} {kind}")


def patch_operation(doc: dict, group: str, version: str, kind: str) -> dict:
    for item in doc["paths"].values():
        op = item.get("patch")
        if op and op["x-kubernetes-group-version-kind"] == {
                "group": group, "version": version, "kind": kind}:
            return op
    raise AssertionError(f"no PATCH operation for {kind}")


@pytest.mark.parametrize("path", ["api/v1", "apis/apps/v1", "apis/example.com/v1",
                                  "apis/rbac.authorization.k8s.io/v1"])
def test_v3_document_refs_resolve_and_types_are_openapi30(registry, path):
    doc = openapi.v3_document(registry, path)
    assert doc["openapi"] == "3.0.0"
    assert doc["info"]["title"]
    schemas = doc["components"]["schemas"]
    for ref in all_refs(doc):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    for t in all_types(schemas):
        assert isinstance(t, str) and t != "null", t
    assert "$defs" not in json.dumps(doc)


def test_v3_document_kinds_carry_gvk(registry):
    core = openapi.v3_document(registry, "api/v1")
    pod = schema_by_gvk(core, "", "v1", "Pod")
    assert pod is core["components"]["schemas"]["io.k8s.api.core.v1.Pod"]
    assert "enum" not in pod["properties"]["kind"]
    schema_by_gvk(core, "", "v1", "PodList")
    apps = openapi.v3_document(registry, "apis/apps/v1")
    deployment = schema_by_gvk(apps, "apps", "v1", "Deployment")
    assert "spec" in deployment["properties"]
    # the scale subresource's kind comes along
    assert "io.k8s.api.autoscaling.v1.Scale" in apps["components"]["schemas"]


def test_v3_keeps_strategic_merge_extensions(registry):
    doc = openapi.v3_document(registry, "api/v1")
    containers = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"][
        "containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}


def test_v3_ref_with_siblings_is_wrapped_in_allof(registry):
    doc = openapi.v3_document(registry, "api/v1")
    metadata = doc["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["properties"]["metadata"]
    assert metadata["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert metadata["description"]


def test_int_or_string_is_published_as_string(registry):
    doc = openapi.v3_document(registry, "apis/apps/v1")
    ios = doc["components"]["schemas"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]
    assert ios["type"] == "string" and ios["format"] == "int-or-string"
    assert "oneOf" not in ios


def test_v3_paths_and_operations(registry):
    doc = openapi.v3_document(registry, "apis/apps/v1")
    paths = doc["paths"]
    collection = paths["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert collection["get"]["x-kubernetes-action"] == "list"
    assert collection["post"]["x-kubernetes-action"] == "post"
    item = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert item["get"]["x-kubernetes-group-version-kind"] == {
        "group": "apps", "version": "v1", "kind": "Deployment"}
    assert item["get"]["x-kubernetes-action"] == "get"
    assert "/apis/apps/v1/deployments" in paths
    scale = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["get"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    status = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]
    assert status["patch"]["x-kubernetes-group-version-kind"]["kind"] == "Deployment"


def test_patch_operation_advertises_field_validation(registry):
    """kubectl delegates validation to the server only if PATCH takes ``fieldValidation``."""
    for path, gvk in [("api/v1", ("", "v1", "ConfigMap")),
                      ("apis/apps/v1", ("apps", "v1", "Deployment")),
                      ("apis/example.com/v1", ("example.com", "v1", "Widget"))]:
        op = patch_operation(openapi.v3_document(registry, path), *gvk)
        names = {(p["name"], p["in"]) for p in op["parameters"]}
        assert ("fieldValidation", "query") in names
        content = op["requestBody"]["content"]
        assert "application/merge-patch+json" in content
        assert ("application/strategic-merge-patch+json" in content) == (gvk[0] != "example.com")


def test_crd_schema(registry):
    doc = openapi.v3_document(registry, "apis/example.com/v1")
    schemas = doc["components"]["schemas"]
    widget = schemas["com.example.v1.Widget"]
    assert widget is schema_by_gvk(doc, "example.com", "v1", "Widget")
    assert widget["description"] == "A widget."
    assert widget["properties"]["spec"]["properties"]["replicas"] == {"type": "integer"}
    assert widget["properties"]["apiVersion"]["type"] == "string"
    assert widget["properties"]["kind"]["type"] == "string"
    assert widget["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    widget_list = schema_by_gvk(doc, "example.com", "v1", "WidgetList")
    assert widget_list["properties"]["items"]["items"] == {
        "$ref": "#/components/schemas/com.example.v1.Widget"}
    paths = doc["paths"]
    assert "/apis/example.com/v1/namespaces/{namespace}/widgets/{name}/scale" in paths
    assert "/apis/example.com/v1/widgets" in paths
    # the registry's own copy of the CRD schema is untouched
    assert "metadata" not in WIDGET_SCHEMA["properties"]


def test_crd_without_schema_preserves_unknown_fields():
    reg = Registry()
    reg.add(type_from_crd(widget_crd(schema=None)))
    doc = openapi.v3_document(reg, "apis/example.com/v1")
    widget = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert widget["x-kubernetes-preserve-unknown-fields"] is True


def test_unknown_paths(registry):
    for path in ("api/v2", "apis/nope.example.org/v1", "apis/apps", "version", "", "api"):
        assert openapi.v3_document(registry, path) is None


def test_v3_index(registry):
    index = openapi.v3_index(registry)
    paths = index["paths"]
    assert list(paths)[0] == "api/v1"
    assert {"apis/apps/v1", "apis/example.com/v1", "apis/autoscaling/v2"} <= set(paths)
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    body = openapi.render(openapi.v3_document(registry, "apis/apps/v1"))
    assert url.split("hash=")[1] == openapi.content_hash(body)


def test_index_hash_changes_only_for_the_changed_group_version():
    reg = Registry()
    before = openapi.v3_index(reg)["paths"]
    reg.add(type_from_crd(widget_crd()))
    after = openapi.v3_index(reg)["paths"]
    assert "apis/example.com/v1" not in before and "apis/example.com/v1" in after
    assert before["api/v1"] == after["api/v1"]
    changed = widget_crd(schema={"type": "object", "properties": {"spec": {"type": "object"}}})
    reg.add(type_from_crd(changed))
    assert openapi.v3_index(reg)["paths"]["apis/example.com/v1"] != \
        after["apis/example.com/v1"]


def test_v2_document(registry):
    doc = openapi.v2_document(registry)
    assert doc["swagger"] == "2.0"
    definitions = doc["definitions"]
    for ref in all_refs(doc):
        assert ref.startswith("#/definitions/"), ref
        assert ref.removeprefix("#/definitions/") in definitions, ref
    assert definitions["io.k8s.api.core.v1.Pod"]["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "Pod", "version": "v1"}]
    assert "com.example.v1.Widget" in definitions
    assert "io.k8s.api.apps.v1.Deployment" in definitions
    meta = definitions["io.k8s.api.core.v1.Pod"]["properties"]["metadata"]
    assert meta["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    op = doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"]["kind"] == "Pod"
    assert any(p["in"] == "body" for p in op["parameters"])
    for t in all_types(definitions):
        assert isinstance(t, str) and t != "null", t


def test_cache_memoizes_and_invalidates_on_registry_change():
    reg = Registry()
    cache = openapi.OpenAPICache(reg)
    core = cache.v3("api/v1")
    assert cache.v3("/api/v1/") is core
    assert json.loads(core.body)["openapi"] == "3.0.0"
    assert core.etag.startswith('"') and core.etag.endswith('"')
    index = cache.v3_index()
    assert cache.v3_index() is index
    assert cache.v3("apis/example.com/v1") is None

    reg.add(type_from_crd(widget_crd()))
    assert cache.v3_index() is not index
    assert "apis/example.com/v1" in json.loads(cache.v3_index().body)["paths"]
    widget_doc = cache.v3("apis/example.com/v1")
    assert widget_doc is not None
    assert cache.v3_hash("apis/example.com/v1") in json.loads(cache.v3_index().body)[
        "paths"]["apis/example.com/v1"]["serverRelativeURL"]
    assert json.loads(cache.v3_index().body) == openapi.v3_index(reg)
    # same content, same ETag
    assert cache.v3("api/v1").etag == core.etag
    assert "com.example.v1.Widget" in json.loads(cache.v2().body)["definitions"]

    reg.remove("example.com", "widgets")
    assert cache.v3("apis/example.com/v1") is None
    assert "com.example.v1.Widget" not in json.loads(cache.v2().body)["definitions"]
