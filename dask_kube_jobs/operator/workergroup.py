"""DaskWorkerGroup: keep ``spec.worker.replicas`` worker Pods, and shrink without losing work.

Scaling up creates Pods (counted against expectations until the informer shows them, so a
slow watch never causes duplicates). Scaling down first drops Pods that never joined (nothing
to lose), then asks the scheduler to retire the least busy workers *of this group only*; the
scheduler moves their data elsewhere and closes them, and only then are their Pods deleted. If
the scheduler cannot be reached, nothing is deleted: the group says so in an Event and its
``ScaleDownBlocked`` condition, and tries again on the next pass.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ..contract import conditions, names
from ..contract.api_resources import DASKCLUSTERS, DASKWORKERGROUPS
from ..contract.pods import pod_active, pod_ready
from ..kube import PODS
from . import builders, diagnosis, limits, pod_policy, profiles, scheduler_comm
from .cluster import adopt, create_if_missing, replica_failure, worker_replicas
from .failures import REASON_POLICY, ChildRefused
from .runtime import SETTLED, Runtime

Obj = dict[str, Any]

#: The next pass while something has no event of its own: its cluster to appear, Pods this
#: process created to come back through the informer.
RESYNC = 10.0
#: Seconds until a scale-down that could not retire every excess worker is tried again.
RETRY_SCALE_DOWN = 2.0
#: Most worker Pods one pass creates; the next pass (woken by their watch events) goes on.
BURST = 250



def _joined(pod: Obj) -> bool:
    """Running and ready: the worker may hold data the scheduler must move before it goes."""
    return (pod.get("status") or {}).get("phase") == "Running" and pod_ready(pod)


async def reconcile(rt: Runtime, group: Obj) -> float:
    meta, spec = group["metadata"], group.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    key = (ns, "DaskWorkerGroup", name)
    status = group.get("status") or {}
    if meta.get("deletionTimestamp"):
        return SETTLED  # its daemon is stopped as it goes
    cluster_name = spec.get("cluster")
    cluster = await rt.read(DASKCLUSTERS, ns, cluster_name) if cluster_name else None
    conds = status.get("conditions")
    if cluster is None:
        conds = conditions.put_condition(conds, "ClusterFound", False, "ClusterMissing",
                               f'DaskCluster "{cluster_name}" does not exist in {ns}', meta.get("generation"))
        missing: Obj = {"conditions": conds, "observedGeneration": meta.get("generation")}
        if any(status.get(k) != v for k, v in missing.items()):
            await rt.patch_status(DASKWORKERGROUPS, group, missing)
        return RESYNC
    # A group created on its own is adopted by its cluster, as upstream does, so deleting the
    # cluster removes it too.
    await adopt(rt, DASKWORKERGROUPS, group, cluster, controller=True)
    conds = conditions.put_condition(conds, "ClusterFound", True, "ClusterFound",
                           f'member of DaskCluster "{cluster_name}"', meta.get("generation"))

    pods = rt.pods(ns, **{names.LABEL_WORKER_GROUP: name, names.LABEL_COMPONENT: names.COMPONENT_WORKER})
    for pod in pods:
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            await rt.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"])
            await rt.event(group, "WorkerReplaced", f"worker Pod {pod['metadata']['name']} ended ({phase}); replacing it")
    active = [p for p in pods if pod_active(p)]
    desired = int(((spec.get("worker") or {}).get("replicas")) or 0)
    blocked: str | None = None
    held: str | None = None
    settled = rt.expectations_met(key, ns)  # else Pods are in flight: judge limits next pass
    refused = replica_failure(group)  # the API server refuses this spec's Pods: make none
    if settled:
        if len(active) < desired and refused is None:
            refused = await _policy_refusal(rt, group)
        if len(active) < desired and refused is None:
            allowed, held = await _within_limits(rt, group, cluster, active, desired)
            if held is not None:  # confirm against the latest file before holding anything back
                allowed, held = await _within_limits(rt, group, cluster, active, desired, fresh=True)
            if allowed > len(active):
                try:
                    await _scale_up(rt, group, allowed - len(active))
                except ChildRefused as exc:
                    refused = {"reason": exc.reason, "message": exc.message}
                    await rt.event(group, "FailedCreate", exc.message, warning=True)
                    rt.trigger(ns, "DaskCluster", cluster_name)  # the cluster says so too
        elif len(active) > desired:
            floor = _within_profile(cluster, desired, len(active))  # below the profile's minimum
            target = desired if floor is None else floor[0]
            held = None if floor is None else floor[1]
            if len(active) > target:
                blocked = await _scale_down(rt, group, cluster, active, len(active) - target)
    if settled and (held is not None or conditions.find_condition(conds, limits.CONDITION_WITHIN_LIMITS)):
        previous = conditions.find_condition(conds, limits.CONDITION_WITHIN_LIMITS) or {}
        if held is not None and previous.get("message") != held:
            await rt.event(group, limits.REASON_EXCEEDED, held, warning=True)
        conds = conditions.put_condition(conds, limits.CONDITION_WITHIN_LIMITS, held is None,
                               limits.REASON_EXCEEDED if held else "WithinLimits",
                               held or "within the operator's limits", meta.get("generation"))
    if refused is not None or conditions.find_condition(conds, "ReplicaFailure"):
        conds = conditions.put_condition(conds, "ReplicaFailure", refused is not None,
                               refused.get("reason") or "InvalidSpec" if refused else "Created",
                               refused.get("message") or "" if refused
                               else "the API server accepts this group's worker Pods",
                               meta.get("generation"))
    conds = workers_ready_condition(conds, active, desired, meta.get("generation"))
    conds = conditions.put_condition(conds, "ScaleDownBlocked", blocked is not None,
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
    if blocked or (settled and len(active) > desired):
        # Unreachable, or workers the scheduler does not know yet (it retires only those it
        # knows): asked again soon, as nothing else would bring the next pass.
        return RETRY_SCALE_DOWN
    if held:
        return limits.RECHECK_SECONDS
    if not rt.expectations_met(key, ns):
        return RESYNC  # Pods in flight: looked at again should the informer never show them
    return SETTLED  # its Pods' and its own events wake it


async def _policy_refusal(rt: Runtime, group: Obj) -> Obj | None:
    """The group's worker Pods break the operator's Pod policy: refused as the API server's
    refusals are (``ReplicaFailure`` until the spec changes), but before any request."""
    meta = group["metadata"]
    lim = await limits.limits_for(rt.client, rt.events, meta["namespace"])
    broken = pod_policy.check_worker_group_spec(lim.pod_policy, group.get("spec"))
    if not broken:
        return None
    message = pod_policy.summary(broken)
    await rt.event(group, REASON_POLICY, message, warning=True)
    rt.trigger(meta["namespace"], "DaskCluster", (group.get("spec") or {}).get("cluster") or "")
    return {"reason": REASON_POLICY, "message": message}


def workers_ready_condition(conds: list[Obj] | None, active: list[Obj], desired: int,
                            generation: int | None) -> list[Obj]:
    """``WorkersReady``: all desired workers ready, or why not in the kubelet's or the
    scheduler's words (e.g. Unschedulable: 0/1 nodes are available: 1 Insufficient cpu)."""
    ready = sum(1 for p in active if pod_ready(p))
    if ready >= desired:
        return conditions.put_condition(conds, "WorkersReady", True, "AllReady",
                              f"{ready} of {desired} worker(s) ready", generation)
    found = diagnosis.workers_problem(active)
    if found is not None:
        count, problem = found
        return conditions.put_condition(conds, "WorkersReady", False, problem.reason,
                              f"{ready} of {desired} worker(s) ready; {count} cannot start: "
                              f"{problem.message}", generation)
    return conditions.put_condition(conds, "WorkersReady", False, "WorkersStarting",
                          f"{ready} of {desired} worker(s) ready", generation)


def _group_order(group: Obj) -> tuple[bool, str, str]:
    """The default group gets the cluster's workers first, then the others oldest first."""
    meta = group["metadata"]
    default = meta["name"] == names.default_worker_group((group.get("spec") or {}).get("cluster") or "")
    return (not default, *limits.admission_key(group))


def _within_profile(cluster: Obj, desired: int, hold: int) -> tuple[int, str] | None:
    """The size a group is held at when ``desired`` leaves the worker-count bounds of its
    cluster's pinned profile, and why (None: within them). Held, not scaled to the bound:
    never more Pods than asked for, never fewer than the bound while it has them."""
    bounds = profiles.worker_bounds_of(cluster)
    if bounds is None:
        return None
    name, lo, hi = bounds
    message = profiles.bounds_message(name, lo, hi, desired)
    if message is None:
        return None
    allowed = max(hi, min(hold, desired)) if hi is not None and desired > hi else \
        max(desired, min(hold, lo or 0))
    return allowed, f"spec.worker.replicas: {message}; holding at {allowed} worker(s)"


async def _within_limits(rt: Runtime, group: Obj, cluster: Obj, active: list[Obj],
                         desired: int, *, fresh: bool = False) -> tuple[int, str | None]:
    """How many workers the group may have now, and why it is held below ``desired`` (None:
    it is not). Never fewer than it has: a limit stops new Pods, it does not delete running
    workers. The cluster's workers are shared out in a fixed order (default group first, then
    the oldest), so two groups scaling at once cannot both take the last places."""
    meta, spec = group["metadata"], group.get("spec") or {}
    ns, cluster_name = meta["namespace"], spec.get("cluster") or ""
    hold = len(active)
    bounded = _within_profile(cluster, desired, hold)
    if bounded is not None:
        return bounded
    lim = await limits.limits_for(rt.client, rt.events, ns, fresh=fresh)
    if not lim.any:
        return desired, None
    problem = limits.config_problem(lim)
    if problem:
        return hold, f"{problem.message}; holding at {hold} worker(s)"
    cstatus = cluster.get("status") or {}
    if not limits.is_admitted(cstatus, started=bool(cstatus.get("phase"))):
        return hold, (f'DaskCluster "{cluster_name}" is not admitted by the operator\'s limits '
                      f"(see its {limits.CONDITION_ADMITTED} condition); no workers are created for it")
    found = limits.check_pod_spec(lim, (spec.get("worker") or {}).get("spec"), "spec.worker.spec")
    if found:
        return hold, f"{limits.summary(found)}; holding at {hold} worker(s)"
    cap = lim.max_workers_per_cluster
    if cap is None:
        return desired, None
    groups, _ = await rt.client.list(DASKWORKERGROUPS, ns)
    mates = sorted((g for g in groups if (g.get("spec") or {}).get("cluster") == cluster_name
                    and not g["metadata"].get("deletionTimestamp")), key=_group_order)
    share, left = 0, cap
    for mate in mates:
        take = min(worker_replicas(mate) if mate["metadata"]["uid"] != meta["uid"] else desired, left)
        if mate["metadata"]["uid"] == meta["uid"]:
            share = take
        left -= take
    elsewhere = [p for p in rt.pods(ns, **{names.LABEL_CLUSTER: cluster_name,
                                          names.LABEL_COMPONENT: names.COMPONENT_WORKER})
                 if pod_active(p) and (p["metadata"].get("labels") or {}).get(names.LABEL_WORKER_GROUP) != meta["name"]]
    allowed = min(share, cap - len(elsewhere))
    if allowed >= desired:
        return desired, None
    allowed = max(allowed, hold)
    others = sum(worker_replicas(m) for m in mates if m["metadata"]["uid"] != meta["uid"])
    found = limits.check_workers(lim, field="spec.worker.replicas", requested=desired,
                                 others=max(others, len(elsewhere)), cluster=cluster_name)
    why = found[0].message if found else (
        f"the cluster's other worker groups still have {len(elsewhere)} workers of the {cap} allowed "
        f"per cluster ({lim.where('maxWorkersPerCluster')})")
    return allowed, f"{why}; holding at {allowed} worker(s)"


async def _scale_up(rt: Runtime, group: Obj, count: int) -> None:
    """Create up to ``count`` worker Pods (at most ``BURST`` in one pass) in batches of 1, 2,
    4, ... at a time, as the ReplicaSet controller's slow start does: a spec the API server
    refuses costs one request, not ``count``, and a large scale-up is concurrent without
    flooding the server. The first error ends the pass; Pods already made are kept."""
    ns, name = group["metadata"]["namespace"], group["metadata"]["name"]
    key = (ns, "DaskWorkerGroup", name)
    count = min(count, BURST)
    made, batch = 0, 1
    try:
        while made < count:
            pods = [builders.worker_pod(group, uuid.uuid4().hex[:10])
                    for _ in range(min(batch, count - made))]
            rt.expect(key, [p["metadata"]["name"] for p in pods])
            results = await asyncio.gather(*(create_if_missing(rt, PODS, p) for p in pods),
                                           return_exceptions=True)
            failed = [p["metadata"]["name"] for p, r in zip(pods, results, strict=True)
                      if isinstance(r, BaseException)]
            made += len(pods) - len(failed)
            if failed:
                rt.unexpect(key, failed)
                raise next(r for r in results if isinstance(r, BaseException))
            batch *= 2
    finally:
        if made:
            await rt.event(group, "ScaledUp", f"created {made} worker Pod(s)")


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
