"""EndpointSlices follow a Service's Pods as kcm's endpointslice controller writes them."""

from __future__ import annotations

from dask_kube_jobs.kube import ENDPOINTSLICES, PODS, SERVICES

from .conftest import FakeKubelet, eventually, pod_manifest

SLICES_OF_WEB = "kubernetes.io/service-name=web"


def web_pod(name: str, port: int) -> dict:
    pod = pod_manifest(name, labels={"app": "web"})
    pod["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": port}]
    return pod


async def test_a_service_gets_its_slice_which_follows_the_pods_and_goes_with_it(
        client, controllers, ns, nodes, kubectl):
    node = (await nodes())["metadata"]["name"]
    service = await client.create(SERVICES, ns, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "labels": {"tier": "front"}},
        "spec": {"selector": {"app": "web"}, "ports": [
            {"name": "http", "port": 80, "targetPort": "http", "appProtocol": "http"}]}})
    async with FakeKubelet(client, node) as kubelet:
        kubelet.not_ready.add("b")
        for name in ("a", "b"):
            await client.create(PODS, ns, web_pod(name, 8080))
        await client.create(PODS, ns, pod_manifest("other", labels={"app": "db"}))

        async def slices_naming(*pods: str):
            slices, _ = await client.list(ENDPOINTSLICES, ns, label_selector=SLICES_OF_WEB)
            names = sorted(e["targetRef"]["name"] for s in slices for e in s["endpoints"] or [])
            return slices if names == sorted(pods) else None
        [eps] = await eventually(lambda: slices_naming("a", "b"), what="a slice of a and b")
        pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, ns))[0]}
        meta = eps["metadata"]
        assert meta["name"].startswith("web-") and len(meta["name"]) == len("web-") + 5
        assert meta["labels"] == {"tier": "front", "kubernetes.io/service-name": "web",
                                  "endpointslice.kubernetes.io/managed-by":
                                      "endpointslice-controller.k8s.io"}
        assert meta["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "Service", "name": "web",
            "uid": service["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
        assert eps["addressType"] == "IPv4"
        assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP",
                                 "appProtocol": "http"}]
        a, b = sorted(eps["endpoints"], key=lambda e: e["targetRef"]["name"])
        assert a == {"addresses": [pods["a"]["status"]["podIP"]],
                     "conditions": {"ready": True, "serving": True, "terminating": False},
                     "nodeName": node, "targetRef": {
                         "kind": "Pod", "namespace": ns, "name": "a",
                         "uid": pods["a"]["metadata"]["uid"]}}
        assert b["conditions"] == {"ready": False, "serving": False, "terminating": False}

        kubelet.not_ready.clear()

        async def b_ready():
            [eps] = await slices_naming("a", "b") or [None]
            return eps and all(e["conditions"]["ready"] for e in eps["endpoints"])
        await eventually(b_ready, what="b ready in the slice")
        await client.delete(PODS, ns, "a")
        await eventually(lambda: slices_naming("b"), what="a gone from the slice")
        table = (await kubectl("get", "endpointslices")).stdout.splitlines()
        assert table[1].split()[:4] == [meta["name"], "IPv4", "8080",
                                        pods["b"]["status"]["podIP"]]

        await kubectl("delete", "service", "web")

        async def gone():
            slices, _ = await client.list(ENDPOINTSLICES, ns, label_selector=SLICES_OF_WEB)
            return not slices
        await eventually(gone, what="the slice deleted with the service")
