"""Endpoints follow Pod readiness; silent kubelets make Nodes NotReady; ClusterRoles aggregate."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from dask_kube_jobs.contract.times import fmt_time
from dask_kube_jobs.kube import (
    CLUSTERROLES,
    ENDPOINTS,
    ENDPOINTSLICES,
    EVENTS,
    LEASES,
    NODES,
    PODS,
    SERVICES,
    Client,
)

from .conftest import FakeKubelet, eventually, pod_manifest


def web_pod(name: str, port: int) -> dict:
    pod = pod_manifest(name, labels={"app": "web"})
    pod["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": port}]
    return pod


async def test_endpoints_follow_pod_readiness_and_resolve_named_ports(
        client, controllers, ns, nodes, kubectl):
    node = (await nodes())["metadata"]["name"]
    await client.create(SERVICES, ns, {"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "web", "labels": {"tier": "front"}},
                                       "spec": {"selector": {"app": "web"}, "ports": [
                                           {"name": "http", "port": 80, "targetPort": "http"}]}})
    async with FakeKubelet(client, node) as kubelet:
        kubelet.not_ready.add("b")
        await client.create(PODS, ns, web_pod("a", 8080))
        await client.create(PODS, ns, web_pod("b", 8080))
        await client.create(PODS, ns, web_pod("c", 9090))
        await client.create(PODS, ns, pod_manifest("other", labels={"app": "db"}))

        async def endpoints_with(n: int):
            ep = await client.get(ENDPOINTS, ns, "web")
            subsets = (ep or {}).get("subsets") or []
            total = sum(len(s.get("addresses", [])) + len(s.get("notReadyAddresses", []))
                        for s in subsets)
            return ep if total == n else None
        ep = await eventually(lambda: endpoints_with(3), what="endpoints of 3 pods")
        pods = {p["metadata"]["name"]: p for p in (await client.list(PODS, ns))[0]}
        by_port = {s["ports"][0]["port"]: s for s in ep["subsets"]}
        assert set(by_port) == {8080, 9090}
        assert by_port[8080]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
        [a] = by_port[8080]["addresses"]
        assert a == {"ip": pods["a"]["status"]["podIP"], "nodeName": node, "targetRef": {
            "kind": "Pod", "namespace": ns, "name": "a", "uid": pods["a"]["metadata"]["uid"]}}
        assert [x["targetRef"]["name"] for x in by_port[8080]["notReadyAddresses"]] == ["b"]
        assert [x["targetRef"]["name"] for x in by_port[9090]["addresses"]] == ["c"]
        assert ep["metadata"]["labels"] == {"tier": "front"}

        kubelet.not_ready.clear()

        async def b_ready():
            ep = await client.get(ENDPOINTS, ns, "web")
            s = next(s for s in ep["subsets"] if s["ports"][0]["port"] == 8080)
            return "notReadyAddresses" not in s and len(s["addresses"]) == 2
        await eventually(b_ready, what="b ready")
        result = await kubectl("get", "endpoints", "web", "-o", "jsonpath={.subsets[*].addresses[*].targetRef.name}")
        assert sorted(result.stdout.split()) == ["a", "b", "c"]

        await client.delete(PODS, ns, "c")
        await eventually(lambda: endpoints_with(2), what="c removed")
        await kubectl("delete", "service", "web")
        await eventually(lambda: _gone(client, ns), what="endpoints deleted with the service")


async def test_pods_with_loopback_ips_are_left_out_once_said_and_nothing_loops(
        client, controllers, ns, nodes):
    """A real server refuses loopback endpoint addresses; the Endpoints and EndpointSlice
    controllers write what it accepts (the other Pods), each says once per Pod why one is
    missing, and neither writes again."""
    node = (await nodes())["metadata"]["name"]
    await client.create(SERVICES, ns, {"apiVersion": "v1", "kind": "Service",
                                       "metadata": {"name": "web"},
                                       "spec": {"selector": {"app": "web"}, "ports": [
                                           {"name": "http", "port": 80, "targetPort": "http"}]}})
    async with FakeKubelet(client, node) as kubelet:
        kubelet.ips["lo"] = "127.244.9.9"
        await client.create(PODS, ns, web_pod("lo", 8080))
        await client.create(PODS, ns, web_pod("ok", 8080))

        async def only_ok():
            ep = await client.get(ENDPOINTS, ns, "web")
            names = [a["targetRef"]["name"] for s in (ep or {}).get("subsets") or []
                     for a in s.get("addresses") or []]
            return ep if names == ["ok"] else None
        ep = await eventually(only_ok, what="endpoints of the non-loopback Pod only")

        async def only_ok_sliced():
            slices, _ = await client.list(ENDPOINTSLICES, ns,
                                          label_selector="kubernetes.io/service-name=web")
            names = [e["targetRef"]["name"] for s in slices for e in s.get("endpoints") or []]
            return slices if names == ["ok"] else None
        [eps] = await eventually(only_ok_sliced, what="a slice of the non-loopback Pod only")

        async def warnings(component: str):
            events, _ = await client.list(EVENTS, ns)
            return [e for e in events if e.get("reason") == "AddressNotAllowed"
                    and e["source"]["component"] == component]
        for component, kind in (("endpoint-controller", "Endpoints"),
                                ("endpointslice-controller", "EndpointSlices")):
            [event] = await eventually(lambda c=component: warnings(c),
                                       what=f"the AddressNotAllowed Event of the {component}")
            assert event["type"] == "Warning" and event["involvedObject"]["name"] == "web"
            assert event["message"] == (
                f'Pod lo is left out of the {kind}: its IP "127.244.9.9" may not be in the '
                f"loopback range (127.0.0.0/8, ::1/128), which the API server refuses in {kind}")
        # more syncs of the Service (a Pod change) neither repeat an Event nor rewrite anything
        kubelet.not_ready.add("lo")
        await asyncio.sleep(2)
        for component in ("endpoint-controller", "endpointslice-controller"):
            [again] = await warnings(component)
            assert again.get("count", 1) == 1
        assert (await client.get(ENDPOINTS, ns, "web"))["metadata"]["resourceVersion"] == \
            ep["metadata"]["resourceVersion"]
        assert (await client.get(ENDPOINTSLICES, ns, eps["metadata"]["name"]))["metadata"][
            "resourceVersion"] == eps["metadata"]["resourceVersion"]


async def _gone(client: Client, ns: str) -> bool:
    return await client.get(ENDPOINTS, ns, "web") is None


async def test_a_node_that_stops_heartbeating_becomes_unknown_and_tainted_until_it_reports_again(
        client, controllers, ns, nodes):
    stale = fmt_time(dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=90))
    quiet = (await nodes(heartbeat=stale))["metadata"]["name"]
    # a stale status but a fresh Lease: still alive (kubelets renew the Lease more often)
    leased = f"leased-{uuid.uuid4().hex[:6]}"
    await client.create(LEASES, "kube-node-lease", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": leased},
        "spec": {"holderIdentity": leased, "leaseDurationSeconds": 40,
                 "renewTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
    await nodes(leased, heartbeat=stale)

    async def unknown():
        node = await client.get(NODES, None, quiet)
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        taints = node.get("spec", {}).get("taints") or []
        return (ready, taints) if ready["status"] == "Unknown" and taints else None
    ready, taints = await eventually(unknown, what="node marked Unknown")
    assert ready["reason"] == "NodeStatusUnknown"
    assert ready["message"] == "Kubelet stopped posting node status."
    assert taints == [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    alive = await client.get(NODES, None, leased)
    assert [c["status"] for c in alive["status"]["conditions"] if c["type"] == "Ready"] == ["True"]
    assert not alive.get("spec", {}).get("taints")
    await client.delete(LEASES, "kube-node-lease", leased)
    await client.delete(NODES, None, leased)

    await client.create(PODS, ns, pod_manifest("waiting"))

    async def unschedulable():
        pod = await client.get(PODS, ns, "waiting")
        return next((c for c in pod.get("status", {}).get("conditions") or []
                     if c["type"] == "PodScheduled" and c["status"] == "False"), None)
    cond = await eventually(unschedulable, what="pod unschedulable on an unreachable node")
    assert "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }" in cond["message"]

    now = fmt_time()
    await client.patch(NODES, None, quiet, {"status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}}, sub="status")

    async def untainted():
        node = await client.get(NODES, None, quiet)
        return not node.get("spec", {}).get("taints")
    await eventually(untainted, what="taint removed")

    async def bound():
        pod = await client.get(PODS, ns, "waiting")
        return pod["spec"].get("nodeName")
    assert await eventually(bound, timeout=15) == quiet


async def test_aggregated_cluster_role_collects_the_rules_of_matching_roles(client, controllers):
    label = "rbac.example.com/aggregate-to-monitoring"
    try:
        await client.create(CLUSTERROLES, None, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "t-monitoring"},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]},
            "rules": []})
        await client.create(CLUSTERROLES, None, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "t-monitoring-pods", "labels": {label: "true"}},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]})

        async def rules(n: int):
            role = await client.get(CLUSTERROLES, None, "t-monitoring")
            return role.get("rules") if len(role.get("rules") or []) == n else None
        assert await eventually(lambda: rules(1)) == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
        await client.create(CLUSTERROLES, None, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "t-monitoring-svc", "labels": {label: "true"}},
            "rules": [{"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]})
        got = await eventually(lambda: rules(2))
        assert {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]} in got
        await client.delete(CLUSTERROLES, None, "t-monitoring-pods")
        assert await eventually(lambda: rules(1)) == [
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]}]
    finally:
        for name in ("t-monitoring", "t-monitoring-pods", "t-monitoring-svc"):
            await client.delete(CLUSTERROLES, None, name)
