"""Conformance of the local API server through kr8s, the client our operator is built on."""

from __future__ import annotations

import asyncio
import ssl

import httpx
import kr8s
import pytest
import yaml
from kr8s.asyncio.objects import ConfigMap, Deployment, Pod, new_class

from .test_kubectl_conformance import WIDGET_CRD

Widget = new_class("Widget", "conformance.example.com/v1", namespaced=True,
                   scalable=True, scalable_spec="replicas", plural="widgets")


@pytest.fixture
async def api(local_control_plane):  # type: ignore[no-untyped-def]
    return await kr8s.asyncio.api(kubeconfig=local_control_plane.kubeconfig)


@pytest.fixture
async def widgets(api):  # type: ignore[no-untyped-def]
    crd = await kr8s.asyncio.objects.CustomResourceDefinition(yaml.safe_load(WIDGET_CRD), api=api)
    if not await crd.exists():
        try:
            await crd.create()
        except kr8s.ServerError as exc:  # another test module made it first
            if exc.response is None or exc.response.status_code != 409:
                raise
    await crd.wait("condition=Established", timeout=30)
    return Widget


def cm(name: str, namespace: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "labels": labels}, "data": {"k": "v"}}


async def test_create_get_and_list_with_selectors(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    for name, tier in (("a", "web"), ("b", "db"), ("c", "web")):
        await ConfigMap(cm(name, namespace, tier=tier), api=api).create()
    got = await ConfigMap.get("b", namespace=namespace, api=api)
    assert got.raw["data"] == {"k": "v"} and got.metadata.uid
    web = [o.name async for o in api.async_get("configmaps", namespace=namespace,
                                                 label_selector={"tier": "web"})]
    assert sorted(web) == ["a", "c"]
    named = [o.name async for o in api.async_get("configmaps", namespace=namespace,
                                                   field_selector="metadata.name=c")]
    assert named == ["c"]


async def test_pagination_with_limit_and_continue(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    for i in range(7):
        await ConfigMap(cm(f"page-{i}", namespace, paged="yes"), api=api).create()
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        params = {"limit": "3", "labelSelector": "paged=yes"} | ({"continue": token} if token else {})
        async with api.call_api("GET", url="configmaps", namespace=namespace, params=params) as r:
            body = r.json()
        pages += 1
        names += [i["metadata"]["name"] for i in body["items"]]
        token = body["metadata"].get("continue", "")
        if not token:
            break
    assert pages == 3 and names == [f"page-{i}" for i in range(7)]


async def test_watch_from_a_resource_version_replays_and_filters(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    async with api.call_api("GET", url="configmaps", namespace=namespace) as r:
        start = r.json()["metadata"]["resourceVersion"]
    await ConfigMap(cm("w1", namespace, watch="yes"), api=api).create()
    await ConfigMap(cm("w2", namespace, watch="no"), api=api).create()
    obj = await ConfigMap.get("w1", namespace=namespace, api=api)
    await obj.label({"watch": "gone"})  # leaves the selector: the watcher sees DELETED
    seen: list[tuple[str, str]] = []

    async def collect() -> None:
        async for event, o in api.async_watch("configmaps", namespace=namespace,
                                               label_selector="watch=yes", since=start):
            seen.append((event, o.name))
            if len(seen) == 2:
                return

    await asyncio.wait_for(collect(), timeout=15)
    assert seen == [("ADDED", "w1"), ("DELETED", "w1")]


async def test_optimistic_concurrency(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    obj = await ConfigMap(cm("occ", namespace), api=api)
    await obj.create()
    stale = dict(obj.raw)
    await obj.patch({"data": {"k": "new"}})
    stale["data"] = {"k": "stale"}
    with pytest.raises(kr8s.ServerError) as err:
        async with api.call_api("PUT", url="configmaps/occ", namespace=namespace, json=stale):
            pass
    assert err.value.response is not None and err.value.response.status_code == 409
    assert err.value.status["reason"] == "Conflict"


async def test_json_patch_test_failure_is_422_not_500(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    obj = await ConfigMap(cm("jp", namespace), api=api)
    await obj.create()
    with pytest.raises(kr8s.ServerError) as err:
        await obj.patch([{"op": "test", "path": "/data/k", "value": "nope"},
                         {"op": "replace", "path": "/data/k", "value": "x"}], type="json")
    assert err.value.response is not None and err.value.response.status_code == 422
    await obj.refresh()
    assert obj.raw["data"] == {"k": "v"}


async def test_custom_resource_lifecycle(api, widgets, namespace: str) -> None:  # type: ignore[no-untyped-def]
    w = await widgets({"apiVersion": "conformance.example.com/v1", "kind": "Widget",
                       "metadata": {"name": "kw", "namespace": namespace},
                       "spec": {"color": "red", "replicas": 1}}, api=api)
    await w.create()
    assert w.raw["spec"]["size"] == 1  # defaulted by the schema
    assert w.raw["metadata"]["generation"] == 1
    await w.patch({"status": {"phase": "Up", "replicas": 1}}, subresource="status")
    await w.refresh()
    assert w.raw["status"]["phase"] == "Up" and w.raw["metadata"]["generation"] == 1
    await w.patch({"spec": {"size": 3}})
    assert w.raw["metadata"]["generation"] == 2
    with pytest.raises(kr8s.ServerError) as err:
        await w.patch({"spec": {"color": "pink"}})
    assert err.value.response is not None and err.value.response.status_code == 422
    assert 'spec.color: Unsupported value: "pink"' in err.value.status["message"]
    await w.delete()
    assert not await w.exists()


async def test_deleting_a_missing_object_is_404(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(kr8s.NotFoundError):
        await ConfigMap.get("never-was", namespace=namespace, api=api)


async def test_pod_defaults_and_status_subresource(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    pod = await Pod({"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": "p", "namespace": namespace},
                     # a scheduler nobody runs keeps the Pod unbound
                     "spec": {"schedulerName": "nobody", "containers": [{"name": "c", "image": "python:3.11"}]},
                     "status": {"phase": "Running"}}, api=api)
    await pod.create()
    assert pod.raw["status"]["phase"] == "Pending"  # status on create is the server's
    assert pod.raw["spec"]["serviceAccountName"] == "default"
    assert pod.raw["spec"]["restartPolicy"] == "Always"
    assert pod.raw["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # an unbound Pod is deleted at once, as no kubelet has to stop it
    await pod.delete()
    assert not await pod.exists()


async def test_deployment_scale_subresource(api, namespace: str) -> None:  # type: ignore[no-untyped-def]
    d = await Deployment({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": "d", "namespace": namespace},
                          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                                   "template": {"metadata": {"labels": {"app": "d"}},
                                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}},
                         api=api)
    await d.create()
    async with api.call_api("PATCH", version="apps/v1", url="deployments/d/scale", namespace=namespace,
                            headers={"Content-Type": "application/merge-patch+json"},
                            content='{"spec":{"replicas":4}}') as r:
        scale = r.json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 4
    assert scale["status"]["selector"] == "app=d"
    await d.refresh()
    assert d.raw["spec"]["replicas"] == 4


async def test_unknown_namespace_is_404(api) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(kr8s.ServerError) as err:
        await ConfigMap(cm("x", "no-such-namespace"), api=api).create()
    assert err.value.response is not None and err.value.response.status_code == 404


def test_official_kubernetes_client_lists_namespaces(local_control_plane) -> None:  # type: ignore[no-untyped-def]
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=local_control_plane.kubeconfig)
    with api_client:
        names = [ns.metadata.name for ns in client.CoreV1Api(api_client).list_namespace().items]
    assert {"default", "kube-system", "kube-public"} <= set(names)


def test_healthz_needs_no_token(local_control_plane) -> None:  # type: ignore[no-untyped-def]
    server = local_control_plane.server
    ca = ssl.create_default_context(cafile=str(local_control_plane.state.ca_cert))
    assert httpx.get(f"{server}/readyz", verify=ca).text == "ok"
    assert httpx.get(f"{server}/api/v1/namespaces", verify=ca).status_code == 401

