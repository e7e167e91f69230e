"""Server-side apply, field sets and managedFields bookkeeping."""

from __future__ import annotations

import copy
import datetime as dt

import pytest

from dask_kube_jobs.crds import k8s_schemas
from dask_kube_jobs.local.apiserver.apply import (
    apply_patch,
    fields_of,
    from_fields_v1,
    path_string,
    record_update,
    to_fields_v1,
    value_at,
)
from dask_kube_jobs.local.apiserver.errors import APIError

DEPLOYMENT = k8s_schemas.schema_for("apps", "v1", "Deployment")
POD = k8s_schemas.schema_for("", "v1", "Pod")
CONFIGMAP = k8s_schemas.schema_for("", "v1", "ConfigMap")
NOW = "2025-01-01T00:00:00Z"
LATER = "2025-01-02T00:00:00Z"


def deployment(replicas=2, image="nginx:1", labels=None, containers=None):
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": labels or {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers or [
                    {"name": "web", "image": image, "ports": [{"containerPort": 80}]}]},
            },
        },
    }


def stored(obj, rv="1"):
    """What the store would hold: identity fields filled in."""
    obj = copy.deepcopy(obj)
    obj["metadata"].update(uid="u-1", resourceVersion=rv, creationTimestamp=NOW)
    return obj


def managers(obj):
    return {(e["manager"], e["operation"]): from_fields_v1(e["fieldsV1"])
            for e in obj["metadata"].get("managedFields", [])}


REPLICAS = ("f:spec", "f:replicas")


# --------------------------------------------------------------------------- field sets


def test_fields_of_deployment_uses_real_encoding():
    fields = fields_of(stored(deployment()), DEPLOYMENT)
    container = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}')
    assert REPLICAS in fields
    assert ("f:spec", "f:selector") in fields  # LabelSelector is an atomic map
    assert ("f:metadata", "f:labels", "f:app") in fields
    assert container in fields and container + ("f:image",) in fields
    assert container + ("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}') in fields
    # Identity and bookkeeping are never owned.
    assert not [p for p in fields if p[:2] in (("f:metadata", "f:name"),
                                               ("f:metadata", "f:uid"),
                                               ("f:metadata", "f:resourceVersion"))]
    assert ("f:kind",) not in fields and ("f:apiVersion",) not in fields


def test_fields_v1_round_trip_and_dot_marker():
    fields = fields_of(deployment(), DEPLOYMENT)
    encoded = to_fields_v1(fields)
    assert from_fields_v1(encoded) == fields
    item = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"web"}']
    assert item["."] == {} and item["f:image"] == {}
    assert list(item)[0] == "."
    assert encoded["f:spec"]["f:replicas"] == {}
    assert "." not in encoded["f:spec"]  # plain maps are not members themselves


def test_fields_of_sets_and_unknown_schema():
    obj = {"metadata": {"finalizers": ["a", "b"]}, "spec": {"list": [1, 2], "m": {}}}
    fields = fields_of(obj, POD)
    assert ("f:metadata", "f:finalizers", 'v:"a"') in fields
    assert ("f:metadata", "f:finalizers", 'v:"b"') in fields
    # No schema: maps are granular, lists atomic, empty maps are leaves.
    loose = fields_of(obj, None)
    assert ("f:spec", "f:list") in loose and ("f:spec", "f:m") in loose
    assert ("f:metadata", "f:finalizers") in loose


def test_fields_of_crd_schema_with_list_map_keys():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "workers": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}
    obj = {"spec": {"workers": [{"name": "a", "n": 1}], "extra": {"x": [1]}}}
    fields = fields_of(obj, schema)
    assert ("f:spec", "f:workers", 'k:{"name":"a"}', "f:n") in fields
    assert ("f:spec", "f:extra", "f:x") in fields


def test_value_at_and_path_string():
    obj = deployment()
    path = ("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"web"}', "f:image")
    assert value_at(obj, path) == "nginx:1"
    assert path_string(path) == '.spec.template.spec.containers[name="web"].image'
    assert path_string(("f:metadata", "f:finalizers", 'v:"x"')) == '.metadata.finalizers[="x"]'


# --------------------------------------------------------------------------- apply: create


def test_apply_create():
    applied = deployment()
    result = apply_patch(None, applied, manager="kubectl", schema=DEPLOYMENT, now=NOW)
    assert result["spec"] == applied["spec"]
    (entry,) = result["metadata"]["managedFields"]
    assert entry["manager"] == "kubectl" and entry["operation"] == "Apply"
    assert entry["apiVersion"] == "apps/v1" and entry["time"] == NOW
    assert entry["fieldsType"] == "FieldsV1"
    assert from_fields_v1(entry["fieldsV1"]) == fields_of(applied, DEPLOYMENT)
    assert "managedFields" not in applied["metadata"]  # input untouched


def test_apply_ignores_managed_fields_and_identity_in_applied():
    applied = deployment()
    applied["metadata"].update(
        managedFields=[{"manager": "evil", "operation": "Apply", "fieldsV1": {}}],
        uid="other-uid", creationTimestamp="1999-01-01T00:00:00Z")
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    result = apply_patch(live, applied, manager="kubectl", schema=DEPLOYMENT, now=LATER)
    assert result["metadata"]["uid"] == "u-1"
    assert result["metadata"]["creationTimestamp"] == NOW
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == ["kubectl"]


def test_apply_resource_version_mismatch_is_409():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW),
                  rv="7")
    applied = deployment()
    applied["metadata"]["resourceVersion"] = "6"
    with pytest.raises(APIError) as info:
        apply_patch(live, applied, manager="kubectl", schema=DEPLOYMENT, now=LATER,
                    resource="deployments", group="apps")
    assert info.value.code == 409
    assert 'deployments.apps "web"' in info.value.message
    applied["metadata"]["resourceVersion"] = "7"
    result = apply_patch(live, applied, manager="kubectl", schema=DEPLOYMENT, now=LATER)
    assert result["metadata"]["resourceVersion"] == "7"


# --------------------------------------------------------------------------- apply: update


def test_apply_update_changes_and_merges_lists_by_key():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    applied = deployment(image="nginx:2", containers=[
        {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "sidecar", "image": "busybox"}])
    result = apply_patch(live, applied, manager="kubectl", schema=DEPLOYMENT, now=LATER)
    containers = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["image"] == "nginx:2"
    assert containers[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    (entry,) = result["metadata"]["managedFields"]
    assert entry["time"] == LATER


def test_apply_keeps_fields_of_other_managers():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    live = record_update(live, _with(live, ("metadata", "annotations"), {"note": "x"}),
                         manager="controller", schema=DEPLOYMENT, now=NOW)
    result = apply_patch(live, deployment(replicas=3), manager="kubectl", schema=DEPLOYMENT,
                         now=LATER)
    assert result["metadata"]["annotations"] == {"note": "x"}
    assert result["spec"]["replicas"] == 3


def test_apply_removes_fields_the_manager_dropped():
    first = deployment(labels={"app": "web", "tier": "front"}, containers=[
        {"name": "web", "image": "nginx:1"}, {"name": "sidecar", "image": "busybox"}])
    live = stored(apply_patch(None, first, manager="kubectl", schema=DEPLOYMENT, now=NOW))
    second = deployment(containers=[{"name": "web", "image": "nginx:1"}])
    del second["spec"]["replicas"]
    result = apply_patch(live, second, manager="kubectl", schema=DEPLOYMENT, now=LATER)
    assert result["metadata"]["labels"] == {"app": "web"}
    assert "replicas" not in result["spec"]
    assert [c["name"] for c in result["spec"]["template"]["spec"]["containers"]] == ["web"]
    assert REPLICAS not in managers(result)[("kubectl", "Apply")]


def test_apply_does_not_remove_dropped_fields_someone_else_owns():
    live = stored(apply_patch(None, deployment(labels={"app": "web", "tier": "front"}),
                              manager="kubectl", schema=DEPLOYMENT, now=NOW))
    # helm applies the same tier label: shared ownership.
    live = apply_patch(live, {"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "web", "labels": {"tier": "front"}}},
                       manager="helm", schema=DEPLOYMENT, now=NOW)
    result = apply_patch(live, deployment(labels={"app": "web"}), manager="kubectl",
                         schema=DEPLOYMENT, now=LATER)
    assert result["metadata"]["labels"] == {"app": "web", "tier": "front"}
    owners = managers(result)
    assert ("f:metadata", "f:labels", "f:tier") in owners[("helm", "Apply")]
    assert ("f:metadata", "f:labels", "f:tier") not in owners[("kubectl", "Apply")]


def test_apply_keeps_list_item_when_another_manager_owns_part_of_it():
    two = [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "b"}]
    live = stored(apply_patch(None, deployment(containers=two), manager="kubectl",
                              schema=DEPLOYMENT, now=NOW))
    patched = copy.deepcopy(live)
    patched["spec"]["template"]["spec"]["containers"][1]["resources"] = {"limits": {"cpu": "1"}}
    live = record_update(live, patched, manager="vpa", schema=DEPLOYMENT, now=NOW)
    result = apply_patch(live, deployment(containers=two[:1]), manager="kubectl",
                         schema=DEPLOYMENT, now=LATER)
    side = result["spec"]["template"]["spec"]["containers"][1]
    assert side == {"name": "side", "resources": {"limits": {"cpu": "1"}}}


# --------------------------------------------------------------------------- apply: conflicts


def test_apply_conflict_with_other_apply_manager():
    live = stored(apply_patch(None, deployment(replicas=2), manager="kubectl",
                              schema=DEPLOYMENT, now=NOW))
    with pytest.raises(APIError) as info:
        apply_patch(live, deployment(replicas=5), manager="helm", schema=DEPLOYMENT, now=LATER)
    err = info.value
    assert err.code == 409 and err.reason == "Conflict"
    assert err.message == ('Apply failed with 1 conflict: conflict with "kubectl" using apps/v1: '
                           ".spec.replicas")
    assert [c.field for c in err.causes] == [".spec.replicas"]
    assert err.causes[0].reason == "FieldManagerConflict"


def test_apply_conflict_lists_every_field():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    with pytest.raises(APIError) as info:
        apply_patch(live, deployment(replicas=5, image="nginx:9"), manager="helm",
                    schema=DEPLOYMENT, now=LATER)
    assert info.value.message.startswith(
        'Apply failed with 2 conflicts: conflicts with "kubectl" using apps/v1:')
    assert '- .spec.template.spec.containers[name="web"].image' in info.value.message
    assert "- .spec.replicas" in info.value.message


def test_apply_same_value_is_shared_not_a_conflict():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    result = apply_patch(live, deployment(), manager="helm", schema=DEPLOYMENT, now=LATER)
    owners = managers(result)
    assert REPLICAS in owners[("kubectl", "Apply")] and REPLICAS in owners[("helm", "Apply")]


def test_apply_force_transfers_ownership():
    live = stored(apply_patch(None, deployment(replicas=2), manager="kubectl",
                              schema=DEPLOYMENT, now=NOW))
    result = apply_patch(live, deployment(replicas=5), manager="helm", schema=DEPLOYMENT,
                         force=True, now=LATER)
    assert result["spec"]["replicas"] == 5
    owners = managers(result)
    assert REPLICAS in owners[("helm", "Apply")]
    assert REPLICAS not in owners[("kubectl", "Apply")]
    # kubectl dropping replicas later no longer removes it: helm owns it now.
    again = apply_patch(result, _without(deployment(), "spec", "replicas"), manager="kubectl",
                        schema=DEPLOYMENT, now=LATER)
    assert again["spec"]["replicas"] == 5


def test_update_manager_fields_do_not_conflict_but_move():
    live = stored(apply_patch(None, deployment(replicas=2), manager="kubectl",
                              schema=DEPLOYMENT, now=NOW))
    scaled = record_update(live, _with(live, ("spec", "replicas"), 7), manager="kubectl-scale",
                           schema=DEPLOYMENT, now=NOW)
    owners = managers(scaled)
    assert owners[("kubectl-scale", "Update")] == {REPLICAS}
    assert REPLICAS not in owners[("kubectl", "Apply")]
    result = apply_patch(scaled, deployment(replicas=3), manager="kubectl", schema=DEPLOYMENT,
                         now=LATER)
    assert result["spec"]["replicas"] == 3
    owners = managers(result)
    assert REPLICAS in owners[("kubectl", "Apply")]
    assert ("kubectl-scale", "Update") not in owners  # its only field moved away


def test_apply_to_object_without_managed_fields():
    live = stored(deployment(labels={"app": "web", "old": "1"}))
    result = apply_patch(live, deployment(replicas=4), manager="kubectl", schema=DEPLOYMENT,
                         now=LATER)
    assert result["spec"]["replicas"] == 4
    assert result["metadata"]["labels"] == {"app": "web", "old": "1"}
    owners = managers(result)
    assert ("f:metadata", "f:labels", "f:old") in owners[("before-first-apply", "Update")]
    assert REPLICAS not in owners[("before-first-apply", "Update")]


def test_apply_sets_union_and_null_removes():
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "c", "finalizers": ["a"]}, "data": {"x": "1", "y": "2"}}
    live = stored(apply_patch(None, cm, manager="m1", schema=CONFIGMAP, now=NOW))
    applied = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "finalizers": ["b"]}, "data": {"y": None, "z": "3"}}
    with pytest.raises(APIError) as info:  # removing m1's field is a change too
        apply_patch(live, applied, manager="m2", schema=CONFIGMAP, now=LATER)
    assert info.value.message.endswith(": .data.y")
    result = apply_patch(live, applied, manager="m2", schema=CONFIGMAP, now=LATER, force=True)
    assert result["metadata"]["finalizers"] == ["a", "b"]
    assert result["data"] == {"x": "1", "z": "3"}


def test_apply_does_not_mutate_inputs():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    applied = deployment(replicas=9, containers=[{"name": "new", "image": "x"}])
    l0, a0 = copy.deepcopy(live), copy.deepcopy(applied)
    result = apply_patch(live, applied, manager="kubectl", schema=DEPLOYMENT, now=LATER)
    result["spec"]["template"]["spec"]["containers"][0]["image"] = "mutated"
    assert live == l0 and applied == a0


def test_apply_accepts_datetime_now():
    result = apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT,
                         now=dt.datetime(2025, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc))
    assert result["metadata"]["managedFields"][0]["time"] == "2025-03-04T05:06:07Z"


# --------------------------------------------------------------------------- record_update


def test_record_update_create_owns_everything():
    obj = deployment()
    result = record_update(None, obj, manager="kubectl-create", schema=DEPLOYMENT, now=NOW)
    (entry,) = result["metadata"]["managedFields"]
    assert entry["operation"] == "Update" and entry["time"] == NOW
    assert from_fields_v1(entry["fieldsV1"]) == fields_of(obj, DEPLOYMENT)


def test_record_update_without_manager_is_a_copy():
    live = stored(apply_patch(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW))
    new = _with(live, ("spec", "replicas"), 9)
    result = record_update(live, new, manager=None, schema=DEPLOYMENT, now=LATER)
    assert result == new and result is not new


def test_record_update_accumulates_and_drops_removed_fields():
    live = record_update(None, deployment(), manager="kubectl-create", schema=DEPLOYMENT, now=NOW)
    new = _with(live, ("metadata", "annotations"), {"a": "1"})
    result = record_update(live, new, manager="kopf", schema=DEPLOYMENT, now=LATER,
                           operation="Update")
    owners = managers(result)
    assert owners[("kopf", "Update")] == {("f:metadata", "f:annotations", "f:a")}
    # Removing the annotation drops kopf's entry altogether.
    gone = record_update(result, _without(result, "metadata", "annotations"), manager="other",
                         schema=DEPLOYMENT, now=LATER)
    assert ("kopf", "Update") not in managers(gone)


def test_record_update_status_subresource_entry():
    live = record_update(None, deployment(), manager="kubectl", schema=DEPLOYMENT, now=NOW)
    new = _with(live, ("status",), {"readyReplicas": 2})
    result = record_update(live, new, manager="controller", schema=DEPLOYMENT, now=LATER,
                           subresource="status")
    entry = result["metadata"]["managedFields"][-1]
    assert entry["subresource"] == "status"
    assert from_fields_v1(entry["fieldsV1"]) == {("f:status", "f:readyReplicas")}


def test_record_update_client_reset_of_managed_fields():
    live = record_update(None, deployment(), manager="a", schema=DEPLOYMENT, now=NOW)
    new = copy.deepcopy(live)
    new["metadata"]["managedFields"] = []
    result = record_update(live, new, manager="b", schema=DEPLOYMENT, now=LATER)
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == ["b"]


def test_record_update_same_manager_keeps_position():
    live = record_update(None, deployment(), manager="a", schema=DEPLOYMENT, now=NOW)
    live = record_update(live, _with(live, ("metadata", "annotations"), {"x": "1"}),
                         manager="b", schema=DEPLOYMENT, now=NOW)
    result = record_update(live, _with(live, ("spec", "replicas"), 4), manager="a",
                           schema=DEPLOYMENT, now=LATER)
    assert [e["manager"] for e in result["metadata"]["managedFields"]] == ["a", "b"]
    assert result["metadata"]["managedFields"][0]["time"] == LATER


# --------------------------------------------------------------------------- helpers


def _with(obj, path, value):
    obj = copy.deepcopy(obj)
    node = obj
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return obj


def _without(obj, *path):
    obj = copy.deepcopy(obj)
    node = obj
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return obj
