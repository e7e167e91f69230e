"""The scheduler binds Pods to fitting Nodes and explains, as kube-scheduler does, why not."""

from __future__ import annotations

from dask_kube_jobs.kube import EVENTS, NODES, PODS, Client

from .conftest import eventually, pod_manifest


async def _pod(client: Client, ns: str, name: str) -> dict:
    pod = await client.get(PODS, ns, name)
    assert pod is not None
    return pod


async def _bound(client: Client, ns: str, name: str) -> str | None:
    return (await _pod(client, ns, name))["spec"].get("nodeName")


async def _scheduled_condition(client: Client, ns: str, name: str) -> dict | None:
    pod = await _pod(client, ns, name)
    return next((c for c in pod.get("status", {}).get("conditions") or []
                 if c["type"] == "PodScheduled"), None)


async def test_pod_with_node_selector_is_bound_to_the_matching_node(client, controllers, ns, nodes):
    plain = await nodes()
    ssd = await nodes(labels={"disktype": "ssd"})
    await client.create(PODS, ns, pod_manifest("picky", nodeSelector={"disktype": "ssd"}))
    await client.create(PODS, ns, pod_manifest("easy"))
    assert await eventually(lambda: _bound(client, ns, "picky")) == ssd["metadata"]["name"]
    assert await eventually(lambda: _bound(client, ns, "easy")) in (
        plain["metadata"]["name"], ssd["metadata"]["name"])
    cond = await _scheduled_condition(client, ns, "picky")
    assert cond and cond["status"] == "True"

    async def scheduled_event():
        events, _ = await client.list(EVENTS, ns, field_selector="involvedObject.name=picky")
        return [e for e in events if e["reason"] == "Scheduled"]
    [event] = await eventually(scheduled_event, what="Scheduled event")
    assert event["message"] == f"Successfully assigned {ns}/picky to {ssd['metadata']['name']}"
    assert event["source"]["component"] == "default-scheduler"


async def test_gpu_pod_stays_pending_with_kubernetes_reason_then_binds_when_a_gpu_node_joins(
        client, controllers, ns, nodes, kubectl):
    await nodes()
    await client.create(PODS, ns, pod_manifest("trainer", limits={"nvidia.com/gpu": "1"}))
    expected = ("0/1 nodes are available: 1 Insufficient nvidia.com/gpu. preemption: 0/1 nodes "
                "are available: 1 No preemption victims found for incoming pod.")

    async def unschedulable():
        cond = await _scheduled_condition(client, ns, "trainer")
        return cond if cond and cond.get("reason") == "Unschedulable" else None
    cond = await eventually(unschedulable, what="PodScheduled=False")
    assert cond["status"] == "False" and cond["message"] == expected
    assert (await _pod(client, ns, "trainer"))["status"]["phase"] == "Pending"

    async def failed_event():
        result = await kubectl("get", "events", "--field-selector",
                               "involvedObject.name=trainer,reason=FailedScheduling", "-o", "json")
        return result.json()["items"]
    [event] = await eventually(failed_event, what="FailedScheduling event")
    assert event["type"] == "Warning" and event["message"] == expected
    assert event["involvedObject"]["kind"] == "Pod"
    assert event["reportingComponent"] == "default-scheduler"
    assert event["source"]["component"] == "default-scheduler"

    gpu = await nodes(extra={"nvidia.com/gpu": "1"})
    assert await eventually(lambda: _bound(client, ns, "trainer"), timeout=15) == gpu["metadata"]["name"]
    # the one GPU is taken: a second GPU pod does not fit anywhere
    await client.create(PODS, ns, pod_manifest("second", requests={"nvidia.com/gpu": "1"},
                                               limits={"nvidia.com/gpu": "1"}))
    cond = await eventually(lambda: _scheduled_condition(client, ns, "second"))
    assert cond["message"].startswith("0/2 nodes are available: 2 Insufficient nvidia.com/gpu.")


async def test_cpu_fit_counts_running_pods_and_a_freed_node_takes_the_waiting_pod(
        client, controllers, ns, nodes):
    node = (await nodes(cpu="1"))["metadata"]["name"]
    await client.create(PODS, ns, pod_manifest("first", requests={"cpu": "600m"}))
    assert await eventually(lambda: _bound(client, ns, "first")) == node
    await client.create(PODS, ns, pod_manifest("second", requests={"cpu": "0.6"}))
    cond = await eventually(lambda: _scheduled_condition(client, ns, "second"))
    assert cond["reason"] == "Unschedulable"
    assert "1 Insufficient cpu" in cond["message"]
    await client.delete(PODS, ns, "first", grace_period=0)
    assert await eventually(lambda: _bound(client, ns, "second"), timeout=15) == node


async def test_affinity_taints_and_tolerations_filter_nodes(client, controllers, ns, nodes):
    tainted = (await nodes(labels={"zone": "a"}))["metadata"]["name"]
    await client.patch(NODES, None, tainted, {"spec": {"taints": [
        {"key": "dedicated", "value": "dask", "effect": "NoSchedule"}]}})
    other = (await nodes(labels={"zone": "b"}))["metadata"]["name"]
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "gpu", "operator": "DoesNotExist"}]}]}}}
    await client.create(PODS, ns, pod_manifest("intolerant", affinity=affinity))
    cond = await eventually(lambda: _scheduled_condition(client, ns, "intolerant"))
    assert cond["message"] == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {dedicated: dask}. preemption: 0/2 nodes are available: "
        "2 Preemption is not helpful for scheduling.")
    await client.create(PODS, ns, pod_manifest(
        "tolerant", affinity=affinity,
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "dask", "effect": "NoSchedule"}]))
    assert await eventually(lambda: _bound(client, ns, "tolerant")) == tainted
    await client.create(PODS, ns, pod_manifest("anti", affinity={"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}))
    assert await eventually(lambda: _bound(client, ns, "anti")) == other


async def test_other_schedulers_pods_are_left_alone(client, controllers, ns, nodes):
    await nodes()
    await client.create(PODS, ns, pod_manifest("custom", schedulerName="my-scheduler"))
    await client.create(PODS, ns, pod_manifest("default"))
    await eventually(lambda: _bound(client, ns, "default"))
    assert await _bound(client, ns, "custom") is None


async def test_without_any_node_the_pod_waits_with_kubernetes_wording(client, controllers, ns):
    existing, _ = await client.list(NODES)
    if existing:  # another test's node still being deleted
        import pytest
        pytest.skip("the cluster has nodes")
    await client.create(PODS, ns, pod_manifest("lonely"))

    async def unschedulable():
        cond = await _scheduled_condition(client, ns, "lonely")
        return cond if cond and cond.get("reason") == "Unschedulable" else None
    cond = await eventually(unschedulable)
    assert cond["message"] == "no nodes available to schedule pods"
