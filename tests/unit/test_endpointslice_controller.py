"""What the local EndpointSlice controller writes for a Service and its Pods (pure decisions)."""

from __future__ import annotations

import json
from typing import Any

from dask_kube_jobs.local.controllers.endpointslices import chunked, desired_groups


def service(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "svc"},
            "spec": {"selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}], **spec}}


def pod(name: str, ip: str | list[str], *, port: int = 8080, ready: bool = True,
        deleting: bool = False, phase: str = "Running", app: str = "web") -> dict[str, Any]:
    ips = [ip] if isinstance(ip, str) else ip
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                            "labels": {"app": app}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "n1", "containers": [
                {"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": phase, "podIP": ips[0], "podIPs": [{"ip": i} for i in ips],
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def conditions(groups: dict, name: str) -> dict[str, bool]:
    return next(e["conditions"] for eps in groups.values() for e in eps
                if e["targetRef"]["name"] == name)


def test_conditions_follow_readiness_and_termination_as_kcm_sets_them() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
            pod("c", "10.0.0.3", deleting=True), pod("done", "10.0.0.4", phase="Succeeded"),
            pod("other", "10.0.0.5", app="db")]
    groups = desired_groups(service(), pods)
    [(key, endpoints)] = groups.items()
    assert key == ("IPv4", json.dumps([{"name": "http", "port": 8080, "protocol": "TCP"}]))
    assert [e["targetRef"]["name"] for e in endpoints] == ["a", "b", "c"]
    assert conditions(groups, "a") == {"ready": True, "serving": True, "terminating": False}
    assert conditions(groups, "b") == {"ready": False, "serving": False, "terminating": False}
    assert conditions(groups, "c") == {"ready": False, "serving": True, "terminating": True}
    published = desired_groups(service(publishNotReadyAddresses=True), pods)
    assert conditions(published, "b") == {"ready": True, "serving": True, "terminating": False}
    assert conditions(published, "c") == {"ready": True, "serving": True, "terminating": True}


def test_pods_group_by_resolved_ports_and_address_family() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", port=9090),
            pod("dual", ["10.0.0.3", "fd00::3"])]
    groups = desired_groups(service(ipFamilies=["IPv4", "IPv6"]), pods)
    by_key = {(t, json.loads(p)[0]["port"]): [e["addresses"] for e in eps]
              for (t, p), eps in groups.items()}
    assert by_key == {("IPv4", 8080): [["10.0.0.1"], ["10.0.0.3"]], ("IPv4", 9090): [["10.0.0.2"]],
                      ("IPv6", 8080): [["fd00::3"]]}


def test_refused_addresses_are_left_out_and_a_service_without_endpoints_keeps_a_placeholder() -> None:
    refused: list = []
    groups = desired_groups(service(), [pod("lo", "127.201.0.9")], refused)
    assert groups == {("IPv4", "null"): []}
    assert [(p["metadata"]["name"], why) for p, why in refused] == [
        ("lo", "may not be in the loopback range (127.0.0.0/8, ::1/128)")]


def test_at_most_100_endpoints_a_slice() -> None:
    assert [len(c) for c in chunked([{}] * 250)] == [100, 100, 50]
    assert chunked([]) == [[]]


async def test_no_new_slice_for_a_service_pending_deletion() -> None:
    """As kcm's reconciler: the garbage collector deletes a Service's slices in a foreground
    delete; making them again would hold the Service (and a DaskCluster owning it) up."""
    from dask_kube_jobs.local.controllers.endpointslices import EndpointSliceController

    class Writes:
        def __init__(self) -> None:
            self.created: list[Any] = []

        async def create(self, resource: Any, namespace: str, body: Any) -> Any:
            self.created.append(body)
            return {**body, "metadata": {**body["metadata"], "name": "web-abcde"}}

    client = Writes()
    controller = EndpointSliceController(client)  # type: ignore[arg-type]
    group = ("IPv4", json.dumps([]))
    going = service()
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    await controller._write(going, group, [], None)
    assert client.created == []
    await controller._write(service(), group, [], None)  # a live Service still gets its slice
    assert len(client.created) == 1
