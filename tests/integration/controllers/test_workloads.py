"""Deployments -> ReplicaSets -> Pods, driven through real kubectl (scale, set image, rollout)."""

from __future__ import annotations

import json

from dask_kube_jobs.kube import DEPLOYMENTS, EVENTS, PODS, REPLICASETS, Client

from .conftest import FakeKubelet, eventually, pod_manifest


def deployment(name: str, *, replicas: int = 2, image: str = "nginx:1.27",
               strategy: dict | None = None) -> str:
    return json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 **({"strategy": strategy} if strategy else {}),
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "main", "image": image,
                                                       "ports": [{"containerPort": 80}]}]}}}})


async def active_pods(client: Client, ns: str, app: str) -> list[dict]:
    pods, _ = await client.list(PODS, ns, label_selector=f"app={app}")
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


async def replicasets(client: Client, ns: str) -> list[dict]:
    items, _ = await client.list(REPLICASETS, ns)
    return sorted(items, key=lambda rs: int(rs["metadata"]["annotations"][
        "deployment.kubernetes.io/revision"]))


async def test_deployment_rolls_out_scales_and_updates_through_kubectl(
        client, controllers, ns, nodes, kubectl):
    node = (await nodes(cpu="16"))["metadata"]["name"]
    async with FakeKubelet(client, node):
        await kubectl("apply", "-f", "-", input=deployment("web"))
        result = await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        assert 'deployment "web" successfully rolled out' in result.stdout
        await kubectl("wait", "--for=condition=Available", "deployment/web", "--timeout=10s")

        [rs] = await replicasets(client, ns)
        h = rs["metadata"]["labels"]["pod-template-hash"]
        assert rs["metadata"]["name"] == f"web-{h}"
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
        [ref] = rs["metadata"]["ownerReferences"]
        assert (ref["kind"], ref["name"], ref["controller"], ref["blockOwnerDeletion"]) == \
            ("Deployment", "web", True, True)
        pods = await active_pods(client, ns, "web")
        assert len(pods) == 2
        for pod in pods:
            assert pod["metadata"]["name"].startswith(f"web-{h}-")
            assert pod["metadata"]["labels"]["pod-template-hash"] == h
            [pref] = pod["metadata"]["ownerReferences"]
            assert (pref["kind"], pref["name"], pref["controller"]) == ("ReplicaSet", rs["metadata"]["name"], True)

        d = await client.get(DEPLOYMENTS, ns, "web")
        status = d["status"]
        assert status["observedGeneration"] == d["metadata"]["generation"]
        assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"],
                status["availableReplicas"]) == (2, 2, 2, 2)
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["Available"]["status"] == "True"
        assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        assert conds["Progressing"]["message"] == f'ReplicaSet "web-{h}" has successfully progressed.'
        assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"

        await kubectl("scale", "deployment/web", "--replicas=4")
        await eventually(lambda: _count(client, ns, "web", 4), what="4 pods")
        await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        await kubectl("scale", "deployment/web", "--replicas=1")
        await eventually(lambda: _count(client, ns, "web", 1), what="1 pod")

        await kubectl("scale", "deployment/web", "--replicas=3")
        await kubectl("set", "image", "deployment/web", "main=nginx:1.28")
        result = await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        assert "successfully rolled out" in result.stdout
        old, new = await replicasets(client, ns)
        assert old["spec"]["replicas"] == 0 and new["spec"]["replicas"] == 3
        assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
        assert new["metadata"]["name"] != old["metadata"]["name"]
        pods = await eventually(lambda: _count(client, ns, "web", 3))
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.28"}
        d = await client.get(DEPLOYMENTS, ns, "web")
        assert d["status"]["updatedReplicas"] == 3 and "unavailableReplicas" not in d["status"]

        events, _ = await client.list(EVENTS, ns, field_selector="involvedObject.name=web")
        messages = {e["message"] for e in events if e["reason"] == "ScalingReplicaSet"}
        assert f"Scaled up replica set {new['metadata']['name']} from 0 to 1" in messages or \
            any(m.startswith(f"Scaled up replica set {new['metadata']['name']} from 0 to") for m in messages)
        assert any(m.startswith(f"Scaled down replica set {old['metadata']['name']}") for m in messages)

        await kubectl("rollout", "undo", "deployment/web")
        await kubectl("rollout", "status", "deployment/web", "--timeout=30s")
        pods = await eventually(lambda: _count(client, ns, "web", 3))
        assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.27"}
        revs = {rs["metadata"]["name"]: rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                for rs in await replicasets(client, ns)}
        assert revs == {old["metadata"]["name"]: "3", new["metadata"]["name"]: "2"}, \
            "a rollback reuses the old ReplicaSet as the newest revision"


async def _count(client: Client, ns: str, app: str, n: int) -> list[dict] | None:
    pods = await active_pods(client, ns, app)
    return pods if len(pods) == n else None


async def test_rolling_update_waits_for_new_pods_to_become_ready(client, controllers, ns, nodes, kubectl):
    node = (await nodes(cpu="16"))["metadata"]["name"]
    async with FakeKubelet(client, node) as kubelet:
        await kubectl("apply", "-f", "-", input=deployment("api", replicas=4, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
        await kubectl("rollout", "status", "deployment/api", "--timeout=30s")
        kubelet.broken_images.add("nginx:broken")  # new pods never become ready
        await kubectl("set", "image", "deployment/api", "main=nginx:broken")

        async def stuck():
            rss = await replicasets(client, ns)
            return rss if len(rss) == 2 and rss[1]["spec"]["replicas"] == 1 else None
        old, new = await eventually(stuck, what="surge of one")
        assert old["spec"]["replicas"] == 4, "maxUnavailable=0: no old pod may go before a new one is ready"

        # The controller scales the new ReplicaSet before it writes the Deployment's status (as
        # kcm's rolloutRolling does), so a reader may see the surge a moment before the condition.
        async def progressing():
            d = await client.get(DEPLOYMENTS, ns, "api")
            conds = {c["type"]: c for c in d["status"]["conditions"]}
            reason = conds["Progressing"]["reason"]
            return conds if reason in ("NewReplicaSetCreated", "ReplicaSetUpdated") else None
        conds = await eventually(progressing, what="Progressing names the rollout")
        assert conds["Available"]["status"] == "True"
        result = await kubectl("rollout", "status", "deployment/api", "--timeout=1s", check=False)
        assert result.returncode != 0
        assert "1 out of 4 new replicas have been updated" in result.stdout
        kubelet.broken_images.clear()
        await kubectl("rollout", "status", "deployment/api", "--timeout=30s")
        old, new = await replicasets(client, ns)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 4)


async def test_recreate_strategy_stops_old_pods_before_starting_new_ones(
        client, controllers, ns, nodes, kubectl):
    node = (await nodes(cpu="16"))["metadata"]["name"]
    async with FakeKubelet(client, node):
        await kubectl("apply", "-f", "-", input=deployment("batch", replicas=2, strategy={"type": "Recreate"}))
        await kubectl("rollout", "status", "deployment/batch", "--timeout=30s")
        await kubectl("set", "image", "deployment/batch", "main=nginx:2")
        await kubectl("rollout", "status", "deployment/batch", "--timeout=30s")
        old, new = await replicasets(client, ns)
        assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (0, 2)
        events, _ = await client.list(EVENTS, ns, field_selector="involvedObject.name=batch")
        scaling = [e["message"] for e in sorted(events, key=lambda e: int(e["metadata"]["resourceVersion"]))
                   if e["reason"] == "ScalingReplicaSet"]
        down = scaling.index(f"Scaled down replica set {old['metadata']['name']} from 2 to 0")
        up = scaling.index(f"Scaled up replica set {new['metadata']['name']} from 0 to 2")
        assert down < up


async def test_replicaset_replaces_deleted_pods_and_scales_down_unready_first(
        client, controllers, ns, nodes, kubectl):
    node = (await nodes(cpu="16"))["metadata"]["name"]
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "plain"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "plain"}},
                   "template": {"metadata": {"labels": {"app": "plain"}},
                                "spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}
    async with FakeKubelet(client, node) as kubelet:
        await kubectl("apply", "-f", "-", input=json.dumps(rs))
        pods = await eventually(lambda: _count(client, ns, "plain", 3))
        victim = pods[0]["metadata"]["name"]
        await kubectl("delete", "pod", victim)

        async def replaced():
            now = await _count(client, ns, "plain", 3)
            return now if now and victim not in {p["metadata"]["name"] for p in now} else None
        pods = await eventually(replaced, what="replacement pod")
        assert all(p["metadata"]["generateName"] == "plain-" for p in pods)

        async def ready_status():
            obj = await client.get(REPLICASETS, ns, "plain")
            s = obj.get("status") or {}
            return s if s.get("readyReplicas") == 3 and s.get("availableReplicas") == 3 else None
        status = await eventually(ready_status, what="status")
        assert status["replicas"] == 3 and status["fullyLabeledReplicas"] == 3

        sick = pods[1]["metadata"]["name"]
        kubelet.not_ready.add(sick)
        await eventually(lambda: _not_ready(client, ns, sick))
        await kubectl("scale", "replicaset/plain", "--replicas=2")
        left = await eventually(lambda: _count(client, ns, "plain", 2))
        assert sick not in {p["metadata"]["name"] for p in left}

        # an orphan pod matching the selector is adopted and counted: one pod too many, so the
        # ReplicaSet deletes the lowest ranked one (often the stray itself, still unscheduled)
        await client.create(PODS, ns, pod_manifest("stray", labels={"app": "plain"}))

        async def settled():
            pods = await _count(client, ns, "plain", 2)
            stray = await client.get(PODS, ns, "stray")
            owners = [[r["name"] for r in p["metadata"].get("ownerReferences") or []] for p in pods or []]
            stray_ok = stray is None or stray["metadata"].get("deletionTimestamp") or \
                [r["name"] for r in stray["metadata"].get("ownerReferences") or []] == ["plain"]
            return pods and owners == [["plain"], ["plain"]] and stray_ok
        await eventually(settled, what="adoption, then back to 2 pods")


async def _not_ready(client: Client, ns: str, name: str) -> bool:
    pod = await client.get(PODS, ns, name)
    return any(c["type"] == "Ready" and c["status"] == "False"
               for c in pod.get("status", {}).get("conditions") or [])
