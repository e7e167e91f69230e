"""Node lifecycle: notices kubelets that stopped heartbeating, as kcm's node lifecycle controller.

A kubelet proves it is alive by renewing its Lease in ``kube-node-lease`` (same name as the Node)
and by posting ``status.conditions`` with a fresh ``lastHeartbeatTime``. When neither has moved
for ``GRACE_SECONDS`` (kcm's ``node-monitor-grace-period``, 40s), the Node's conditions become
``Unknown`` with reason ``NodeStatusUnknown`` ("Kubelet stopped posting node status.") — or
``NodeStatusNeverUpdated`` if it never posted any. The ``NoSchedule`` taints follow the Ready
condition as kcm's taint-by-condition does: ``node.kubernetes.io/unreachable`` for Unknown,
``node.kubernetes.io/not-ready`` for False, none for True; so the scheduler stops placing Pods on
the node, and places them again once the kubelet reports Ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ...contract.conditions import condition
from ...contract.times import fmt_time, now, parse_time
from ...kube import (
    LEASES,
    NODES,
    Client,
    Informer,
    NotFound,
    Obj,
    WorkQueue,
    run_informers,
    wait_synced,
)

log = logging.getLogger("dask_kube_jobs.local.controllers.nodes")

GRACE_SECONDS = 40.0
MONITOR_PERIOD = 5.0
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
NODE_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")


class NodeLifecycleController:
    name = "node-lifecycle"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nodes = Informer(client, NODES)
        self.leases = Informer(client, LEASES, namespace="kube-node-lease")
        self.queue = WorkQueue("node-lifecycle")
        self.nodes.on_change(lambda kind, node, old: kind != "DELETED" and self.queue.add(
            node["metadata"]["name"]))
        self.leases.on_change(lambda kind, lease, old: kind != "DELETED" and self.queue.add(
            lease["metadata"]["name"]))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.nodes, self.leases))
            await wait_synced(self.nodes, self.leases)
            tg.create_task(self.queue.work(self.sync, workers=2))
            while True:  # the monitor period: look at every node, events or not
                for node in self.nodes.items():
                    self.queue.add(node["metadata"]["name"])
                await asyncio.sleep(MONITOR_PERIOD)

    def _last_heartbeat(self, node: Obj) -> float | None:
        """Seconds since the kubelet last showed a sign of life (None: never)."""
        stamps = []
        lease = self.leases.get("kube-node-lease", node["metadata"]["name"])
        if lease is not None:
            stamps.append(parse_time((lease.get("spec") or {}).get("renewTime")))
        for c in (node.get("status") or {}).get("conditions") or []:
            if c.get("type") == "Ready":
                stamps.append(parse_time(c.get("lastHeartbeatTime")))
        known = [s for s in stamps if s is not None]
        if not known:
            return None
        return (now() - max(known)).total_seconds()

    async def sync(self, name: str) -> float | None:
        node = self.nodes.get(None, name)
        if node is None:
            return None
        ready = condition(node, "Ready")
        age = self._last_heartbeat(node)
        if age is None:
            created = parse_time(node["metadata"].get("creationTimestamp"))
            age = (now() - created).total_seconds() if created else 0.0
            reason, message = "NodeStatusNeverUpdated", "Kubelet never posted node status."
        else:
            reason, message = "NodeStatusUnknown", "Kubelet stopped posting node status."
        if age > GRACE_SECONDS and (ready or {}).get("status") != "Unknown":
            node = await self._mark_unknown(node, reason, message) or node
            ready = condition(node, "Ready")
        await self._sync_taints(node, (ready or {}).get("status"))
        return max(0.5, min(MONITOR_PERIOD, GRACE_SECONDS - age + 0.1)) if age <= GRACE_SECONDS else None

    async def _mark_unknown(self, node: Obj, reason: str, message: str) -> Obj | None:
        stamp = fmt_time()
        existing = {c.get("type"): c for c in (node.get("status") or {}).get("conditions") or []}
        conditions = []
        for ctype in NODE_CONDITIONS:
            old = existing.pop(ctype, None)
            if old is None and ctype != "Ready" and reason == "NodeStatusUnknown":
                continue  # only conditions the kubelet posted become Unknown
            conditions.append({"type": ctype, "status": "Unknown",
                               "lastHeartbeatTime": (old or {}).get("lastHeartbeatTime"),
                               "lastTransitionTime": stamp, "reason": reason, "message": message})
        conditions.extend(existing.values())
        log.info("node %s: %s", node["metadata"]["name"], message)
        try:
            return await self.client.patch(NODES, None, node["metadata"]["name"],
                                           {"status": {"conditions": conditions}}, sub="status")
        except NotFound:
            return None

    async def _sync_taints(self, node: Obj, ready: str | None) -> None:
        taints = list((node.get("spec") or {}).get("taints") or [])
        wanted = {"Unknown": UNREACHABLE, "False": NOT_READY}.get(ready or "")
        kept = [t for t in taints if not (t.get("key") in (UNREACHABLE, NOT_READY)
                                          and t.get("effect") == "NoSchedule"
                                          and t.get("key") != wanted)]
        if wanted and not any(t.get("key") == wanted and t.get("effect") == "NoSchedule" for t in kept):
            kept.append({"key": wanted, "effect": "NoSchedule"})
        if kept == taints:
            return
        # a merge patch: Nodes registered without a spec need one created
        with contextlib.suppress(NotFound):
            await self.client.patch(NODES, None, node["metadata"]["name"],
                                    {"spec": {"taints": kept or None}})
