"""Merge patch, JSON patch, strategic merge patch and the Content-Type dispatcher."""

from __future__ import annotations

import copy
import json

import pytest

from dask_kube_jobs.crds import k8s_schemas
from dask_kube_jobs.local.apiserver.errors import APIError
from dask_kube_jobs.local.apiserver.patch import (
    PATCH_TYPES,
    apply_patch_body,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)
from dask_kube_jobs.local.apiserver.patchmeta import child_schema, item_schema, list_info

POD = k8s_schemas.schema_for("", "v1", "Pod")
DEPLOYMENT = k8s_schemas.schema_for("apps", "v1", "Deployment")
SERVICE = k8s_schemas.schema_for("", "v1", "Service")
CONFIGMAP = k8s_schemas.schema_for("", "v1", "ConfigMap")


def pod(**spec):
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"app": "x"},
                     "finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "main", "image": "img:1",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 8786}, {"containerPort": 8787}]},
                {"name": "side", "image": "side:1"},
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "tolerations": [{"key": "a", "operator": "Exists"}],
            **spec,
        },
    }


# --------------------------------------------------------------------------- RFC 7386


@pytest.mark.parametrize(("target", "patch", "expected"), [
    # The examples of RFC 7386 appendix A.
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    # A scalar may become an object and back.
    ({"a": 1}, {"a": {"b": 2}}, {"a": {"b": 2}}),
    ({"a": {"b": 2}}, {"a": 1}, {"a": 1}),
    ({"a": 1}, {"a": {"b": None}}, {"a": {}}),
    ({"a": {"b": 1}}, {}, {"a": {"b": 1}}),
])
def test_merge_patch_rfc7386(target, patch, expected):
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_mutate_inputs():
    target = {"a": {"b": [1, 2]}, "c": 1}
    patch = {"a": {"d": {"e": 1}}, "c": None}
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    result = merge_patch(target, patch)
    assert result == {"a": {"b": [1, 2], "d": {"e": 1}}}
    result["a"]["b"].append(3)
    result["a"]["d"]["e"] = 2
    assert target == t0 and patch == p0


def test_merge_patch_replaces_lists_whole():
    result = merge_patch(pod(), {"spec": {"containers": [{"name": "only"}]}})
    assert result["spec"]["containers"] == [{"name": "only"}]


# --------------------------------------------------------------------------- RFC 6902


def test_json_patch_all_operations():
    doc = {"a": {"b": 1}, "l": [1, 2, 3], "s": "x"}
    ops = [
        {"op": "add", "path": "/a/c", "value": 2},
        {"op": "add", "path": "/l/1", "value": 9},
        {"op": "add", "path": "/l/-", "value": 4},
        {"op": "remove", "path": "/l/0"},
        {"op": "replace", "path": "/s", "value": "y"},
        {"op": "move", "from": "/a/b", "path": "/moved"},
        {"op": "copy", "from": "/a", "path": "/copied"},
        {"op": "test", "path": "/s", "value": "y"},
    ]
    result = json_patch(doc, ops)
    assert result == {"a": {"c": 2}, "l": [9, 2, 3, 4], "s": "y", "moved": 1,
                      "copied": {"c": 2}}
    assert doc == {"a": {"b": 1}, "l": [1, 2, 3], "s": "x"}


def test_json_patch_escaped_pointer():
    doc = {"metadata": {"annotations": {"a/b": "1", "m~n": "2"}}}
    ops = [{"op": "remove", "path": "/metadata/annotations/a~1b"},
           {"op": "replace", "path": "/metadata/annotations/m~0n", "value": "3"}]
    assert json_patch(doc, ops) == {"metadata": {"annotations": {"m~n": "3"}}}


def test_json_patch_empty_list_is_identity():
    assert json_patch({"a": 1}, []) == {"a": 1}


def test_json_patch_failed_test_is_422():
    with pytest.raises(APIError) as info:
        json_patch({"metadata": {"resourceVersion": "5"}},
                   [{"op": "test", "path": "/metadata/resourceVersion", "value": "4"},
                    {"op": "replace", "path": "/metadata/resourceVersion", "value": "6"}],
                   kind="Pod", name="p")
    assert info.value.code == 422
    assert info.value.reason == "Invalid"
    assert info.value.message.startswith('Pod "p" is invalid')
    assert "test" in info.value.message


def test_json_patch_test_of_missing_path_is_422():
    with pytest.raises(APIError) as info:
        json_patch({}, [{"op": "test", "path": "/status/x", "value": None}])
    assert info.value.code == 422


@pytest.mark.parametrize("op", [
    {"op": "remove", "path": "/missing"},
    {"op": "replace", "path": "/missing", "value": 1},
    {"op": "add", "path": "/no/such/parent", "value": 1},
    {"op": "move", "from": "/missing", "path": "/x"},
    {"op": "copy", "from": "/missing", "path": "/x"},
    {"op": "remove", "path": "/l/7"},
    {"op": "add", "path": "/l/x", "value": 1},
    {"op": "add", "path": "/s/x", "value": 1},
    {"op": "add", "path": "no-slash", "value": 1},
])
def test_json_patch_missing_paths_are_422(op):
    with pytest.raises(APIError) as info:
        json_patch({"l": [1], "s": "x"}, [op], kind="Pod", name="p")
    assert info.value.code == 422


@pytest.mark.parametrize("ops", [
    {"op": "add", "path": "/a", "value": 1},  # not a list
    "nope",
    [{"path": "/a", "value": 1}],  # op missing
    [{"op": "add", "value": 1}],  # path missing
    [{"op": "frobnicate", "path": "/a"}],
    [{"op": "add", "path": "/a"}],  # value missing
    [{"op": "move", "path": "/a"}],  # from missing
    ["not an object"],
])
def test_json_patch_malformed_is_400(ops):
    with pytest.raises(APIError) as info:
        json_patch({"a": 0}, ops)
    assert info.value.code == 400


# --------------------------------------------------------------------------- schema helpers


def test_child_schema_keeps_extensions_next_to_ref():
    spec = child_schema(DEPLOYMENT, "spec")
    strategy = child_schema(spec, "strategy")
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    assert "rollingUpdate" in strategy["properties"]


def test_list_info():
    spec = child_schema(POD, "spec")
    meta = child_schema(POD, "metadata")
    container = child_schema(spec, "containers")
    assert list_info(container) == ("map", ["name"])
    assert list_info(child_schema(child_schema(container["items"], "ports"), "x")) == ("atomic", [])
    ports = child_schema(item_schema(container), "ports")
    assert list_info(ports) == ("map", ["containerPort", "protocol"])
    assert list_info(child_schema(meta, "finalizers")) == ("set", [])
    assert list_info(child_schema(spec, "tolerations")) == ("atomic", [])
    assert list_info({"x-kubernetes-patch-strategy": "merge",
                      "x-kubernetes-patch-merge-key": "id"}) == ("map", ["id"])
    assert list_info({"x-kubernetes-patch-strategy": "merge"}) == ("set", [])
    assert list_info(None) == ("atomic", [])


# --------------------------------------------------------------------------- strategic merge


def test_smp_merges_containers_by_name():
    result = strategic_merge_patch(
        pod(), {"spec": {"containers": [{"name": "main", "image": "img:2"}]}}, POD)
    main, side = result["spec"]["containers"]
    assert main["image"] == "img:2" and main["env"][0] == {"name": "A", "value": "1"}
    assert side == {"name": "side", "image": "side:1"}


def test_smp_appends_new_container_and_keeps_order():
    result = strategic_merge_patch(
        pod(), {"spec": {"containers": [{"name": "new", "image": "n"}]}}, POD)
    assert [c["name"] for c in result["spec"]["containers"]] == ["main", "side", "new"]


def test_smp_merges_env_by_name():
    patch = {"spec": {"containers": [{"name": "main", "env": [
        {"name": "B", "value": "20"}, {"name": "C", "value": "3"}]}]}}
    env = strategic_merge_patch(pod(), patch, POD)["spec"]["containers"][0]["env"]
    assert env == [{"name": "A", "value": "1"}, {"name": "B", "value": "20"},
                   {"name": "C", "value": "3"}]


def test_smp_null_inside_merged_item_deletes_key():
    patch = {"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": None}]}]}}
    env = strategic_merge_patch(pod(), patch, POD)["spec"]["containers"][0]["env"]
    assert env[0] == {"name": "A"}


def test_smp_patch_delete_list_item():
    patch = {"spec": {"containers": [{"name": "side", "$patch": "delete"},
                                     {"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}}
    result = strategic_merge_patch(pod(), patch, POD)
    assert [c["name"] for c in result["spec"]["containers"]] == ["main"]
    assert result["spec"]["containers"][0]["env"] == [{"name": "B", "value": "2"}]


def test_smp_patch_delete_of_absent_item_is_noop():
    patch = {"spec": {"containers": [{"name": "ghost", "$patch": "delete"}]}}
    assert strategic_merge_patch(pod(), patch, POD) == pod()


def test_smp_patch_replace_list():
    patch = {"spec": {"containers": [{"$patch": "replace"}, {"name": "solo", "image": "s"}]}}
    result = strategic_merge_patch(pod(), patch, POD)
    assert result["spec"]["containers"] == [{"name": "solo", "image": "s"}]


def test_smp_patch_replace_map():
    patch = {"metadata": {"labels": {"$patch": "replace", "new": "1"}}}
    result = strategic_merge_patch(pod(), patch, POD)
    assert result["metadata"]["labels"] == {"new": "1"}


def test_smp_patch_replace_item():
    patch = {"spec": {"containers": [{"name": "main", "$patch": "replace", "image": "x"}]}}
    main = strategic_merge_patch(pod(), patch, POD)["spec"]["containers"][0]
    assert main == {"name": "main", "image": "x"}


def test_smp_patch_delete_map():
    patch = {"metadata": {"labels": {"$patch": "delete"}}}
    assert "labels" not in strategic_merge_patch(pod(), patch, POD)["metadata"]


def test_smp_ports_merge_by_container_port():
    patch = {"spec": {"containers": [{"name": "main", "ports": [
        {"containerPort": 8787, "name": "dashboard"}, {"containerPort": 9000}]}]}}
    ports = strategic_merge_patch(pod(), patch, POD)["spec"]["containers"][0]["ports"]
    assert ports == [{"containerPort": 8786}, {"containerPort": 8787, "name": "dashboard"},
                     {"containerPort": 9000}]


def test_smp_service_ports_merge_by_port():
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
           "spec": {"selector": {"app": "x"}, "ports": [
               {"name": "tcp", "port": 8786, "targetPort": 8786},
               {"name": "http", "port": 8787, "targetPort": 8787}]}}
    patch = {"spec": {"ports": [{"port": 8787, "targetPort": 9999}, {"port": 80, "name": "w"}]}}
    result = strategic_merge_patch(svc, patch, SERVICE)
    assert result["spec"]["ports"] == [
        {"name": "tcp", "port": 8786, "targetPort": 8786},
        {"name": "http", "port": 8787, "targetPort": 9999},
        {"port": 80, "name": "w"}]


def test_smp_primitive_merge_list_is_unioned():
    patch = {"metadata": {"finalizers": ["b", "a", "c", "b"]}}
    result = strategic_merge_patch(pod(), patch, POD)
    assert result["metadata"]["finalizers"] == ["a", "b", "c"]


def test_smp_delete_from_primitive_list():
    target = pod()
    target["metadata"]["finalizers"] = ["a", "b", "c"]
    patch = {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "zz"]}}
    result = strategic_merge_patch(target, patch, POD)
    assert result["metadata"]["finalizers"] == ["a", "c"]
    assert not any(k.startswith("$") for k in result["metadata"])


def test_smp_atomic_lists_replace():
    patch = {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}],
                      "containers": [{"name": "main", "args": ["x"]}]}}
    result = strategic_merge_patch(pod(), patch, POD)
    assert result["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]
    assert result["spec"]["containers"][0]["args"] == ["x"]


def test_smp_volumes_merge_and_retain_keys():
    target = pod()
    target["spec"]["volumes"].append({"name": "cfg", "configMap": {"name": "c"}})
    patch = {"spec": {"volumes": [
        {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/d"}}]}}
    result = strategic_merge_patch(target, patch, POD)
    assert result["spec"]["volumes"] == [
        {"name": "data", "hostPath": {"path": "/d"}},
        {"name": "cfg", "configMap": {"name": "c"}}]


def test_smp_deployment_strategy_retain_keys():
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "strategy": {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"replicas": 3,
                      "strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    result = strategic_merge_patch(dep, patch, DEPLOYMENT)
    assert result["spec"] == {"replicas": 3, "strategy": {"type": "Recreate"}}


def test_smp_deployment_template_containers():
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"template": {"metadata": {"labels": {"a": "1"}}, "spec": {"containers": [
               {"name": "w", "image": "w:1", "resources": {"limits": {"cpu": "1"}}}]}}}}
    patch = {"spec": {"template": {
        "metadata": {"annotations": {"restartedAt": "now"}},
        "spec": {"containers": [{"name": "w", "resources": {"limits": {"memory": "1Gi"}}}]}}}}
    result = strategic_merge_patch(dep, patch, DEPLOYMENT)
    tpl = result["spec"]["template"]
    assert tpl["metadata"] == {"labels": {"a": "1"}, "annotations": {"restartedAt": "now"}}
    assert tpl["spec"]["containers"][0] == {
        "name": "w", "image": "w:1", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}


def test_smp_owner_references_merge_by_uid():
    target = {"metadata": {"name": "p", "ownerReferences": [
        {"uid": "1", "kind": "Job", "name": "j"}]}}
    patch = {"metadata": {"ownerReferences": [{"uid": "2", "kind": "RS", "name": "r"},
                                              {"uid": "1", "controller": True}]}}
    refs = strategic_merge_patch(target, patch, POD)["metadata"]["ownerReferences"]
    assert refs == [{"uid": "1", "kind": "Job", "name": "j", "controller": True},
                    {"uid": "2", "kind": "RS", "name": "r"}]


def test_smp_set_element_order():
    target = pod()
    patch = {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
                      "containers": [{"name": "main", "image": "img:3"}]}}
    result = strategic_merge_patch(target, patch, POD)
    assert [c["name"] for c in result["spec"]["containers"]] == ["side", "main"]
    assert "$setElementOrder/containers" not in result["spec"]


def test_smp_directives_never_leak_into_new_subtrees():
    target = {"metadata": {"name": "p"}, "spec": {}}
    patch = {"spec": {"containers": [{"name": "c", "$patch": "merge",
                                      "env": [{"name": "E", "value": "1"}],
                                      "$retainKeys": ["name", "env"]}],
                      "volumes": [{"$patch": "replace"}, {"name": "v", "emptyDir": {}}],
                      "nodeSelector": {"$patch": "replace", "a": "b", "gone": None}},
             "metadata": {"$deleteFromPrimitiveList/finalizers": ["x"],
                          "$setElementOrder/finalizers": ["y"], "finalizers": ["y"]}}
    result = strategic_merge_patch(target, patch, POD)

    def keys(value):
        if isinstance(value, dict):
            for k, v in value.items():
                yield k
                yield from keys(v)
        elif isinstance(value, list):
            for v in value:
                yield from keys(v)
    assert not [k for k in keys(result) if k.startswith("$")]
    assert result["spec"]["nodeSelector"] == {"a": "b"}
    assert result["spec"]["volumes"] == [{"name": "v", "emptyDir": {}}]
    assert result["metadata"]["finalizers"] == ["y"]
    assert result["spec"]["containers"] == [{"name": "c", "env": [{"name": "E", "value": "1"}]}]


def test_smp_unknown_map_directive_is_400():
    with pytest.raises(APIError) as info:
        strategic_merge_patch(pod(), {"metadata": {"labels": {"$patch": "explode"}}}, POD)
    assert info.value.code == 400


def test_smp_unknown_schema_falls_back_to_merge_patch():
    target = {"spec": {"list": [1, 2], "m": {"a": 1, "b": 2}}}
    patch = {"spec": {"list": [3], "m": {"a": None, "c": 3}}}
    expected = merge_patch(target, patch)
    assert strategic_merge_patch(target, patch, None) == expected
    # Under ConfigMap.data (a map of strings) everything is merge-patch-like too.
    cm = {"data": {"a": "1", "b": "2"}}
    assert strategic_merge_patch(cm, {"data": {"a": None, "c": "3"}}, CONFIGMAP) == {
        "data": {"b": "2", "c": "3"}}


def test_smp_replace_strategy_on_map():
    pdb_schema = k8s_schemas.schema_for("policy", "v1", "PodDisruptionBudget")
    target = {"spec": {"selector": {"matchLabels": {"a": "1"}}}}
    patch = {"spec": {"selector": {"matchLabels": {"b": "2"}}}}
    result = strategic_merge_patch(target, patch, pdb_schema)
    assert result["spec"]["selector"] == {"matchLabels": {"b": "2"}}


def test_smp_does_not_mutate_inputs():
    target, patch = pod(), {"spec": {"containers": [{"name": "main", "env": [
        {"name": "A", "$patch": "delete"}]}]}, "metadata": {"finalizers": ["z"]}}
    t0, p0 = copy.deepcopy(target), copy.deepcopy(patch)
    result = strategic_merge_patch(target, patch, POD)
    result["spec"]["containers"][1]["image"] = "changed"
    assert target == t0 and patch == p0


def test_smp_missing_merge_key_is_400():
    with pytest.raises(APIError) as info:
        strategic_merge_patch(pod(), {"spec": {"containers": [{"image": "x"}]}}, POD)
    assert info.value.code == 400
    with pytest.raises(APIError) as info:
        strategic_merge_patch(pod(), ["not", "a", "map"], POD)
    assert info.value.code == 400


# --------------------------------------------------------------------------- dispatcher


def body(doc):
    return json.dumps(doc).encode()


def test_patch_types_table():
    assert set(PATCH_TYPES) == {
        "application/merge-patch+json", "application/json-patch+json",
        "application/strategic-merge-patch+json", "application/apply-patch+yaml",
        "application/apply-patch+cbor"}


def test_dispatch_each_json_flavour():
    target = pod()
    common = dict(schema=POD, builtin=True, kind="Pod", name="p")
    merged = apply_patch_body("application/merge-patch+json", target,
                              body({"metadata": {"labels": {"b": "2"}}}), **common)
    assert merged["metadata"]["labels"] == {"app": "x", "b": "2"}
    patched = apply_patch_body("application/json-patch+json; charset=utf-8", target,
                               body([{"op": "remove", "path": "/metadata/labels"}]), **common)
    assert "labels" not in patched["metadata"]
    smp = apply_patch_body("application/strategic-merge-patch+json", target,
                           body({"spec": {"containers": [{"name": "side", "image": "s:2"}]}}),
                           **common)
    assert [c["image"] for c in smp["spec"]["containers"]] == ["img:1", "s:2"]
    assert target == pod()


def test_dispatch_strategic_on_custom_resource_is_415():
    with pytest.raises(APIError) as info:
        apply_patch_body("application/strategic-merge-patch+json", {"spec": {}},
                         body({"spec": {"a": 1}}), schema=None, builtin=False,
                         kind="DaskJob", name="j")
    assert info.value.code == 415
    assert info.value.reason == "UnsupportedMediaType"
    assert "application/merge-patch+json" in info.value.message


@pytest.mark.parametrize("ctype", ["application/apply-patch+cbor", "text/plain",
                                   "application/json"])
def test_dispatch_unknown_media_type_is_415(ctype):
    with pytest.raises(APIError) as info:
        apply_patch_body(ctype, {}, b"{}", schema=None, builtin=True, manager="m")
    assert info.value.code == 415


@pytest.mark.parametrize(("ctype", "raw"), [
    ("application/merge-patch+json", b"{not json"),
    ("application/json-patch+json", b"[{]"),
    ("application/strategic-merge-patch+json", b"\xff\xfe"),
    ("application/merge-patch+json", b"[1, 2]"),
    ("application/strategic-merge-patch+json", b"\"str\""),
    ("application/json-patch+json", b"{}"),
    ("application/apply-patch+yaml", b"a: [b"),
    ("application/apply-patch+yaml", b"- a\n- b\n"),
])
def test_dispatch_malformed_bodies_are_400(ctype, raw):
    with pytest.raises(APIError) as info:
        apply_patch_body(ctype, pod(), raw, schema=POD, builtin=True, kind="Pod", name="p",
                         manager="m")
    assert info.value.code == 400
    assert info.value.message


def test_dispatch_json_patch_failed_test_is_422():
    with pytest.raises(APIError) as info:
        apply_patch_body("application/json-patch+json", pod(),
                         body([{"op": "test", "path": "/metadata/name", "value": "q"}]),
                         schema=POD, builtin=True, kind="Pod", name="p")
    assert info.value.code == 422


def test_dispatch_json_patch_must_leave_an_object():
    with pytest.raises(APIError) as info:
        apply_patch_body("application/json-patch+json", pod(),
                         body([{"op": "replace", "path": "", "value": 3}]),
                         schema=POD, builtin=True, kind="Pod", name="p")
    assert info.value.code == 422


def test_dispatch_apply_requires_field_manager_and_force_only_for_apply():
    with pytest.raises(APIError) as info:
        apply_patch_body("application/apply-patch+yaml", None, b"apiVersion: v1\nkind: Pod\n",
                         schema=POD, builtin=True)
    assert info.value.code == 400
    with pytest.raises(APIError) as info:
        apply_patch_body("application/merge-patch+json", pod(), b"{}", schema=POD,
                         builtin=True, manager="m", force=True)
    assert info.value.code == 400


def test_dispatch_apply_yaml_creates_with_managed_fields():
    raw = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n"
    result = apply_patch_body("application/apply-patch+yaml", None, raw, schema=CONFIGMAP,
                              builtin=True, kind="ConfigMap", name="c", manager="helm",
                              now="2025-01-01T00:00:00Z")
    assert result["data"] == {"k": "v"}
    (entry,) = result["metadata"]["managedFields"]
    assert entry["manager"] == "helm" and entry["operation"] == "Apply"
    assert entry["fieldsV1"] == {"f:data": {"f:k": {}}}


def test_dispatch_apply_yaml_keeps_timestamps_as_strings():
    raw = (b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
           b"  annotations:\n    at: 2024-01-01T00:00:00Z\ndata:\n  day: 2024-01-01\n")
    result = apply_patch_body("application/apply-patch+yaml", None, raw, schema=CONFIGMAP,
                              builtin=True, manager="helm", now="t")
    assert result["data"]["day"] == "2024-01-01"
    assert result["metadata"]["annotations"]["at"] == "2024-01-01T00:00:00Z"
    json.dumps(result)


def test_dispatch_apply_accepts_json_body():
    raw = body({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                "data": {"k": "v"}})
    result = apply_patch_body("application/apply-patch+yaml", None, raw, schema=CONFIGMAP,
                              builtin=True, manager="kubectl", now="t")
    assert result["data"] == {"k": "v"}


def test_dispatch_records_update_manager():
    target = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
              "data": {"a": "1"}}
    result = apply_patch_body("application/merge-patch+json", target, body({"data": {"b": "2"}}),
                              schema=CONFIGMAP, builtin=True, manager="kopf", now="t")
    (entry,) = result["metadata"]["managedFields"]
    assert entry["manager"] == "kopf" and entry["operation"] == "Update"
    assert entry["fieldsV1"] == {"f:data": {"f:b": {}}}
    # Without a manager, managed fields stay as the patch leaves them.
    plain = apply_patch_body("application/merge-patch+json", target, body({"data": {"b": "2"}}),
                             schema=CONFIGMAP, builtin=True)
    assert "managedFields" not in plain["metadata"]


def test_dispatch_patch_of_missing_object_is_404():
    with pytest.raises(APIError) as info:
        apply_patch_body("application/merge-patch+json", None, b"{}", schema=None,
                         builtin=False, kind="DaskJob", name="j")
    assert info.value.code == 404
