"""DaskWorkerGroup: keep ``spec.worker.replicas`` worker Pods, and shrink without losing work.

Scaling up creates Pods (counted against expectations until the informer shows them, so a
slow watch never causes duplicates). Scaling down first drops Pods that never joined (nothing
to lose), then asks the scheduler to retire the least busy workers *of this group only*; the
scheduler moves their data elsewhere and closes them, and only then are their Pods deleted. If
the scheduler cannot be reached, nothing is deleted: the group says so in an Event and its
``ScaleDownBlocked`` condition, and tries again on the next pass.
"""

from __future__ import annotations

import uuid
from typing import Any

from ..kube import PODS, APIError, owner_ref, pod_ready
from . import builders, conditions, names, scheduler_comm
from .cluster import create_if_missing
from .runtime import DASKCLUSTERS, DASKWORKERGROUPS, Runtime

Obj = dict[str, Any]

RESYNC = 10.0


def _active(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and \
        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _joined(pod: Obj) -> bool:
    """Running and ready: the worker may hold data the scheduler must move before it goes."""
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)


async def _adopt(rt: Runtime, group: Obj, cluster: Obj) -> None:
    """A group created on its own is adopted by its cluster, as upstream does, so deleting the
    cluster removes it too."""
    refs = group["metadata"].get("ownerReferences") or []
    if any(r.get("uid") == cluster["metadata"]["uid"] for r in refs):
        return
    ref = owner_ref(cluster, controller=True, block=True)
    await rt.client.patch(DASKWORKERGROUPS, group["metadata"]["namespace"], group["metadata"]["name"],
                          {"metadata": {"ownerReferences": [*refs, ref]}})


async def reconcile(rt: Runtime, group: Obj) -> float:
    meta, spec = group["metadata"], group.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    key = (ns, "DaskWorkerGroup", name)
    status = group.get("status") or {}
    if meta.get("deletionTimestamp"):
        return RESYNC
    cluster_name = spec.get("cluster")
    cluster = await rt.client.get(DASKCLUSTERS, ns, cluster_name) if cluster_name else None
    conds = status.get("conditions")
    if cluster is None:
        conds = conditions.put(conds, "ClusterFound", False, "ClusterMissing",
                               f'DaskCluster "{cluster_name}" does not exist in {ns}', meta.get("generation"))
        await rt.patch_status(DASKWORKERGROUPS, group, {"conditions": conds,
                                                        "observedGeneration": meta.get("generation")})
        return RESYNC
    await _adopt(rt, group, cluster)
    conds = conditions.put(conds, "ClusterFound", True, "ClusterFound",
                           f'member of DaskCluster "{cluster_name}"', meta.get("generation"))

    pods = rt.pods(ns, **{names.LABEL_WORKER_GROUP: name, names.LABEL_COMPONENT: names.COMPONENT_WORKER})
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            await rt.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"])
            await rt.event(group, "WorkerReplaced", f"worker Pod {pod['metadata']['name']} ended ({phase}); replacing it")
    active = [p for p in pods if _active(p)]
    desired = int(((spec.get("worker") or {}).get("replicas")) or 0)
    blocked: str | None = None
    if rt.expectations_met(key, ns):
        if len(active) < desired:
            await _scale_up(rt, group, desired - len(active))
        elif len(active) > desired:
            blocked = await _scale_down(rt, group, cluster, active, len(active) - desired)
    conds = conditions.put(conds, "ScaleDownBlocked", blocked is not None,
                           "SchedulerUnreachable" if blocked else "NotBlocked",
                           blocked or "scale-down can proceed", meta.get("generation"))
    new_status: Obj = {
        "replicas": len(active),
        "readyReplicas": sum(1 for p in active if pod_ready(p)),
        "selector": f"{names.LABEL_WORKER_GROUP}={name},{names.LABEL_COMPONENT}={names.COMPONENT_WORKER}",
        "observedGeneration": meta.get("generation"),
        "conditions": conds,
    }
    if any(status.get(k) != v for k, v in new_status.items()):
        await rt.patch_status(DASKWORKERGROUPS, group, new_status)
    return 2.0 if blocked else RESYNC


async def _scale_up(rt: Runtime, group: Obj, count: int) -> None:
    ns, name = group["metadata"]["namespace"], group["metadata"]["name"]
    made = []
    for _ in range(count):
        pod = builders.worker_pod(group, uuid.uuid4().hex[:10])
        rt.expect((ns, "DaskWorkerGroup", name), [pod["metadata"]["name"]])
        try:
            await create_if_missing(rt, PODS, pod)
        except APIError:
            rt.expectations_met((ns, "DaskWorkerGroup", name), ns)
            raise
        made.append(pod["metadata"]["name"])
    await rt.event(group, "ScaledUp", f"created {len(made)} worker Pod(s)")


async def _scale_down(rt: Runtime, group: Obj, cluster: Obj, active: list[Obj],
                      excess: int) -> str | None:
    """Remove ``excess`` workers; returns why it could not, or None."""
    ns, _name = group["metadata"]["namespace"], group["metadata"]["name"]
    idle = [p for p in active if not _joined(p)]
    doomed = sorted(idle, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True)[:excess]
    for pod in doomed:
        await rt.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"])
    if doomed:
        await rt.event(group, "ScaledDown", f"deleted {len(doomed)} worker Pod(s) that had not joined yet")
    remaining = excess - len(doomed)
    if remaining <= 0:
        return None
    scheduler = rt.pod(ns, names.scheduler_name(cluster["metadata"]["name"]))
    address = scheduler_comm.scheduler_rpc_address(scheduler) if scheduler else None
    if address is None:
        message = "the scheduler Pod has no address yet; not deleting workers that may hold data"
        await rt.event(group, "ScaleDownBlocked", message, warning=True)
        return message
    ours = {p["metadata"]["name"]: p for p in active if _joined(p)}
    try:
        known = [w for w in await scheduler_comm.workers(address) if w.name in ours]
        chosen = scheduler_comm.choose_to_retire(known, remaining)
        retired = await scheduler_comm.retire_workers(address, [w.name for w in chosen])
    except scheduler_comm.SchedulerUnreachable as exc:
        await rt.event(group, "ScaleDownBlocked", str(exc), warning=True)
        return str(exc)
    for worker in retired:
        pod = ours.get(worker)
        if pod is not None:
            await rt.client.delete(PODS, ns, worker, uid=pod["metadata"]["uid"])
    if retired:
        await rt.event(group, "ScaledDown",
                       f"retired {len(retired)} worker(s) through the scheduler: {', '.join(sorted(retired))}")
    return None
