"""Namespace deletion removes everything in it; every namespace gets its SA and CA bundle."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import yaml

from dask_kube_jobs.kube import (
    CONFIGMAPS,
    CRDS,
    NAMESPACES,
    PODS,
    SERVICEACCOUNTS,
    Client,
    Obj,
    Resource,
)

from .conftest import FakeKubelet, eventually, pod_manifest


async def test_every_namespace_gets_a_default_service_account_and_the_root_ca(
        client, controllers, ns, plane):
    sa = await eventually(lambda: client.get(SERVICEACCOUNTS, ns, "default"), what="default SA")
    assert sa["metadata"]["name"] == "default"
    await client.delete(SERVICEACCOUNTS, ns, "default")

    async def recreated():
        new = await client.get(SERVICEACCOUNTS, ns, "default")
        return new if new and new["metadata"]["uid"] != sa["metadata"]["uid"] else None
    await eventually(recreated, what="default SA recreated")

    config = yaml.safe_load(Path(plane.kubeconfig).read_text())
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    cm = await eventually(lambda: client.get(CONFIGMAPS, ns, "kube-root-ca.crt"), what="root CA")
    assert cm["data"] == {"ca.crt": ca}
    await client.patch(CONFIGMAPS, ns, "kube-root-ca.crt", {"data": {"ca.crt": "tampered"}})

    async def restored():
        cm = await client.get(CONFIGMAPS, ns, "kube-root-ca.crt")
        return cm and cm["data"]["ca.crt"] == ca
    await eventually(restored, what="root CA restored")


async def _doomed_namespace(client: Client, nodes, kubectl):
    """A namespace with a ConfigMap, a running Pod and two custom objects (one with a finalizer)."""
    name = f"doomed-{uuid.uuid4().hex[:6]}"
    await client.create(NAMESPACES, None, {"metadata": {"name": name}})
    group = f"g{uuid.uuid4().hex[:6]}.example.com"
    await client.create(CRDS, None, {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": True}}}]}})
    gadgets = Resource(group, "v1", "gadgets", "Gadget", True)

    async def make(gname: str, **meta: object) -> Obj:
        return await client.create(gadgets, name, {"apiVersion": f"{group}/v1", "kind": "Gadget",
                                                   "metadata": {"name": gname, **meta}})
    await eventually(lambda: make("plain"), what="CR served")
    await make("held", finalizers=["example.com/hold"])
    await client.create(CONFIGMAPS, name, {"metadata": {"name": "settings"}, "data": {"a": "b"}})
    node = (await nodes())["metadata"]["name"]
    await client.create(PODS, name, pod_manifest("running"))
    return name, group, gadgets, node


async def test_deleting_a_namespace_deletes_its_content_including_custom_resources(
        client, controllers, nodes, kubectl):
    name, group, gadgets, node = await _doomed_namespace(client, nodes, kubectl)
    async with FakeKubelet(client, node):
        await eventually(lambda: _running(client, name, "running"), what="pod running")
        await kubectl("delete", "namespace", name, "--wait=false")

        async def only_held_left():
            return all([await client.get(CONFIGMAPS, name, "settings") is None,
                        await client.get(PODS, name, "running") is None,
                        await client.get(gadgets, name, "plain") is None])
        await eventually(only_held_left, timeout=15, what="namespace content deleted")
        held = await client.get(gadgets, name, "held")
        assert held is not None and held["metadata"]["deletionTimestamp"]
        ns_obj = await client.get(NAMESPACES, None, name)
        assert ns_obj is not None, "an object with a finalizer holds its namespace"
        assert ns_obj["status"]["phase"] == "Terminating"
        await client.patch(gadgets, name, "held", {"metadata": {"finalizers": None}})
        await kubectl("wait", "--for=delete", f"namespace/{name}", "--timeout=20s")
    await client.delete(CRDS, None, f"gadgets.{group}")


async def test_terminating_namespace_reports_what_remains_in_its_conditions(
        client, controllers, nodes, kubectl):
    name, group, gadgets, node = await _doomed_namespace(client, nodes, kubectl)
    try:
        async with FakeKubelet(client, node):
            await kubectl("delete", "namespace", name, "--wait=false")

            async def blocked_by_finalizer():
                obj = await client.get(NAMESPACES, None, name)
                conds = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
                c = conds.get("NamespaceFinalizersRemaining")
                content = (conds.get("NamespaceContentRemaining") or {}).get("message", "")
                # the running Pod takes a moment to stop; then only the held gadget remains
                return conds if c and c["status"] == "True" and "pods" not in content else None
            conds = await eventually(blocked_by_finalizer, timeout=10, what="namespace conditions")
            assert conds["NamespaceFinalizersRemaining"]["message"] == (
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 "
                "resource instances")
            assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
            assert conds["NamespaceContentRemaining"]["message"] == \
                f"Some resources are remaining: gadgets.{group} has 1 resource instances"
            assert conds["NamespaceContentRemaining"]["reason"] == "SomeResourcesRemain"
    finally:
        await client.patch(gadgets, name, "held", {"metadata": {"finalizers": None}})
        await client.delete(CRDS, None, f"gadgets.{group}")


async def _running(client: Client, ns: str, name: str) -> bool:
    pod = await client.get(PODS, ns, name)
    return bool(pod and pod.get("status", {}).get("phase") == "Running")
