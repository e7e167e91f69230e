"""Cascading deletion through real ``kubectl delete --cascade=...``, dangling owners, PodGC, CRDs."""

from __future__ import annotations

import asyncio
import uuid

from dask_kube_jobs.kube import CONFIGMAPS, CRDS, NODES, PODS, Client, Obj, Resource

from .conftest import eventually, pod_manifest


def owned(ref_obj: Obj, *, block: bool = True, controller: bool = True) -> Obj:
    return {"apiVersion": ref_obj["apiVersion"], "kind": ref_obj["kind"],
            "name": ref_obj["metadata"]["name"], "uid": ref_obj["metadata"]["uid"],
            "controller": controller, "blockOwnerDeletion": block}


async def cm(client: Client, ns: str, name: str, *owners: Obj, finalizers: list[str] | None = None,
             block: bool = True) -> Obj:
    meta: Obj = {"name": name}
    if owners:
        meta["ownerReferences"] = [owned(o, block=block, controller=i == 0)
                                   for i, o in enumerate(owners)]
    if finalizers:
        meta["finalizers"] = finalizers
    obj = await client.create(CONFIGMAPS, ns, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    obj.setdefault("apiVersion", "v1")
    obj.setdefault("kind", "ConfigMap")
    return obj


async def gone(client: Client, res: Resource, ns: str | None, name: str) -> bool:
    return await client.get(res, ns, name) is None


async def test_background_cascade_deletes_the_tree_but_keeps_objects_with_a_live_owner(
        client, controllers, ns, kubectl):
    parent = await cm(client, ns, "parent")
    other = await cm(client, ns, "other")
    child = await cm(client, ns, "child", parent)
    await cm(client, ns, "grandchild", child)
    await cm(client, ns, "shared", parent, other)
    await kubectl("delete", "configmap", "parent", "--cascade=background")
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "child"), what="child collected")
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "grandchild"), what="grandchild collected")

    async def shared_released():
        obj = await client.get(CONFIGMAPS, ns, "shared")
        assert obj is not None, "an object with a live owner must stay"
        return [r["name"] for r in obj["metadata"].get("ownerReferences") or []] == ["other"]
    await eventually(shared_released, what="the dangling reference removed from 'shared'")
    await asyncio.sleep(0.5)
    assert await client.get(CONFIGMAPS, ns, "shared") is not None


async def test_foreground_cascade_waits_for_blocking_dependents(client, controllers, ns, kubectl):
    parent = await cm(client, ns, "parent")
    await cm(client, ns, "held", parent, finalizers=["example.com/hold"])
    await cm(client, ns, "free", parent)
    await kubectl("delete", "configmap", "parent", "--cascade=foreground", "--wait=false")
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "free"), what="free dependent deleted")

    async def held_terminating():
        obj = await client.get(CONFIGMAPS, ns, "held")
        return obj and obj["metadata"].get("deletionTimestamp")
    await eventually(held_terminating, what="held dependent marked for deletion")
    owner = await client.get(CONFIGMAPS, ns, "parent")
    assert owner is not None, "the owner must wait for its blocking dependent"
    assert owner["metadata"]["deletionTimestamp"]
    assert owner["metadata"]["finalizers"] == ["foregroundDeletion"]
    await client.patch(CONFIGMAPS, ns, "held", {"metadata": {"finalizers": None}})
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "held"))
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "parent"), what="owner finally deleted")


async def test_foreground_cascade_through_kubectl_wait(client, controllers, ns, kubectl):
    parent = await cm(client, ns, "parent")
    child = await cm(client, ns, "child", parent)
    await cm(client, ns, "grandchild", child)
    result = await kubectl("delete", "configmap", "parent", "--cascade=foreground", "--timeout=20s")
    assert 'configmap "parent" deleted' in result.stdout
    assert await gone(client, CONFIGMAPS, ns, "child")
    assert await gone(client, CONFIGMAPS, ns, "grandchild")


async def test_orphan_cascade_keeps_dependents_without_the_reference(client, controllers, ns, kubectl):
    parent = await cm(client, ns, "parent")
    other = await cm(client, ns, "other")
    await cm(client, ns, "child", parent)
    await cm(client, ns, "twice", parent, other)
    await kubectl("delete", "configmap", "parent", "--cascade=orphan", "--timeout=20s")
    assert await gone(client, CONFIGMAPS, ns, "parent")
    child = await client.get(CONFIGMAPS, ns, "child")
    assert child is not None and not child["metadata"].get("ownerReferences")
    twice = await client.get(CONFIGMAPS, ns, "twice")
    assert [r["name"] for r in twice["metadata"]["ownerReferences"]] == ["other"]
    await asyncio.sleep(0.5)
    assert await client.get(CONFIGMAPS, ns, "child") is not None


async def test_object_created_with_a_dangling_owner_is_collected(client, controllers, ns):
    ghost = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "ghost", "uid": str(uuid.uuid4())}}
    await cm(client, ns, "orphaned", ghost)
    real = await cm(client, ns, "real")
    await cm(client, ns, "kept", real)
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "orphaned"), what="dangling dependent collected")
    assert await client.get(CONFIGMAPS, ns, "kept") is not None


async def test_custom_resources_own_and_are_collected_and_crd_deletion_cleans_up(
        client, controllers, ns, kubectl):
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": f"widgets.{group}"},
           "spec": {"group": group, "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True}}}]}}
    await client.create(CRDS, None, crd)
    widgets = Resource(group, "v1", "widgets", "Widget", True)

    async def create_widget(name: str, **meta: object) -> Obj:
        return await client.create(widgets, ns, {"apiVersion": f"{group}/v1", "kind": "Widget",
                                                 "metadata": {"name": name, **meta}})
    owner = await eventually(lambda: create_widget("owner"), what="CR served")
    owner.setdefault("apiVersion", f"{group}/v1")
    owner.setdefault("kind", "Widget")
    await client.create(PODS, ns, {**pod_manifest("owned-pod"), "metadata": {
        "name": "owned-pod", "ownerReferences": [owned(owner)]}})
    await cm(client, ns, "owned-cm", owner)
    await kubectl("delete", f"widgets.{group}", "owner")
    await eventually(lambda: gone(client, PODS, ns, "owned-pod"), what="pod owned by a CR collected")
    await eventually(lambda: gone(client, CONFIGMAPS, ns, "owned-cm"))

    await create_widget("held", finalizers=["example.com/hold"])
    await create_widget("plain")
    await kubectl("delete", "crd", f"widgets.{group}", "--wait=false")
    await eventually(lambda: gone(client, widgets, ns, "plain"), what="CRD cleanup deletes CRs")
    held = await client.get(widgets, ns, "held")
    assert held is not None and held["metadata"]["deletionTimestamp"]
    assert await client.get(CRDS, None, f"widgets.{group}") is not None, "the CRD waits for its objects"
    await client.patch(widgets, ns, "held", {"metadata": {"finalizers": None}})
    await eventually(lambda: gone(client, CRDS, None, f"widgets.{group}"), what="CRD removed")


async def test_pods_of_a_deleted_node_are_force_deleted(client, controllers, ns, nodes):
    node = (await nodes())["metadata"]["name"]
    await client.create(PODS, ns, pod_manifest("stranded", nodeName=node))
    await client.patch(PODS, ns, "stranded", {"status": {"phase": "Running"}}, sub="status")
    await client.create(PODS, ns, pod_manifest("unbound", schedulerName="nobody"))
    await client.delete(NODES, None, node)
    await eventually(lambda: gone(client, PODS, ns, "stranded"), timeout=15, what="PodGC")
    assert await client.get(PODS, ns, "unbound") is not None
