"""DaskAutoscaler: follow the scheduler's adaptive target within [minimum, maximum].

The scheduler knows how many workers its queued work needs (``adaptive_target``); the
autoscaler turns that into ``replicas`` of one worker group (the cluster's default group unless
``spec.workerGroup`` names another). Scaling up is prompt, limited by a short cooldown; scaling
down waits until the lower target has held for a stabilization window (hysteresis), so a
momentary lull between two computations does not throw away warm workers. The last decision is
kept in status, so ``kubectl describe`` says why the group has the size it has.

The administrator's ``maxWorkersPerCluster`` (operator/limits.py) bounds the decision too: the
autoscaler asks for no more than the cap leaves its group once the cluster's other groups are
counted. Otherwise the group would be held below its spec (``WithinLimits=False``) while the
autoscaler's status claimed a size it never reached. The user's ``minimum``/``maximum`` are
left as written; the status says the target was limited, by which cap, and where it is set.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..contract import conditions, names
from ..contract.api_resources import DASKAUTOSCALERS, DASKCLUSTERS, DASKWORKERGROUPS
from ..contract.pods import pod_active
from . import limits, profiles, scheduler_comm
from .cluster import adopt, worker_replicas
from .failures import REASON_INVALID
from .runtime import Runtime

Obj = dict[str, Any]

DEFAULT_INTERVAL = 5.0
DEFAULT_UP_COOLDOWN = 10.0
DEFAULT_DOWN_STABILIZATION = 60.0

#: True while the administrator's limits keep the target below what spec and scheduler ask.
CONDITION_TARGET_LIMITED = "TargetLimited"
REASON_CAP = "MaxWorkersPerCluster"


@dataclass(frozen=True)
class Ceiling:
    """The most workers the operator's limits leave the scaled group, and ``why`` in words
    that name the cap and where it is set."""

    workers: int
    why: str
    reason: str = REASON_CAP



def ceiling(lim: limits.Limits, *, group: str, cluster: str, groups: list[Obj],
            worker_pods: list[Obj]) -> Ceiling | None:
    """What ``lim`` leaves worker group ``group`` of DaskCluster ``cluster``; None: no cap.

    The cap counts every group of the cluster, so the other groups' workers -- those they ask
    for, or those they run if more -- come off first. A cap below what the group already runs
    keeps it at that size: like the worker group, the autoscaler never removes running workers
    because of a limit (it still scales down when the scheduler wants fewer).
    ``worker_pods`` are the cluster's worker Pods, ``groups`` its namespace's worker groups.

    >>> lim = limits.parse_policy("maxWorkersPerCluster: 4").for_namespace("ns")
    >>> ceiling(lim, group="c-default", cluster="c", groups=[], worker_pods=[]).workers
    4
    """
    mine = [p for p in worker_pods if pod_active(p)
            and (p["metadata"].get("labels") or {}).get(names.LABEL_WORKER_GROUP) == group]
    if lim.error:
        # No valid configuration was ever read: worker groups hold at their size until it is.
        return Ceiling(len(mine), f"the operator's limits, which hold every worker group at its "
                                  f"size until their configuration ({lim.source}) is fixed: {lim.error}",
                       limits.REASON_CONFIG_INVALID)
    cap = lim.max_workers_per_cluster
    if cap is None:
        return None
    asked = sum(worker_replicas(g) for g in groups
                if (g.get("spec") or {}).get("cluster") == cluster and g["metadata"]["name"] != group
                and not g["metadata"].get("deletionTimestamp"))
    running = sum(1 for p in worker_pods if pod_active(p)
                  and (p["metadata"].get("labels") or {}).get(names.LABEL_WORKER_GROUP) != group)
    others = max(asked, running)
    room = max(0, cap - others)
    why = f"{limits.cap_owner(lim, 'maxWorkersPerCluster')} cap of {cap} workers per cluster " \
          f"({lim.where('maxWorkersPerCluster')})"
    if others:
        why += f", {min(others, cap)} of them taken by the other worker groups of DaskCluster {cluster}"
    if len(mine) > room:
        return Ceiling(len(mine), f"{why} (the group keeps the {len(mine)} workers it has: a "
                                  f"limit never removes running workers)")
    return Ceiling(room, why)


def _asked(target: int, minimum: int, maximum: int) -> str:
    if target < minimum:
        return f"spec.minimum={minimum}"
    if target > maximum:
        return f"spec.maximum={maximum}"
    return f"the target of {target}"


@dataclass(frozen=True)
class Decision:
    """What to scale the group to; ``below_since`` starts the scale-down window; ``limited``:
    the operator's limits kept ``replicas`` below what spec and scheduler ask for."""

    replicas: int
    below_since: float | None
    reason: str
    limited: bool = False


def decide(*, current: int, target: int, minimum: int, maximum: int, now: float,
           last_change: float, below_since: float | None, up_cooldown: float,
           down_window: float, limit: Ceiling | None = None) -> Decision:
    """Pure decision. ``limit`` is what the operator's limits leave the group: the decision
    never goes above it, and its reason says so.

    >>> decide(current=1, target=9, minimum=1, maximum=5, now=100.0, last_change=0.0,
    ...        below_since=None, up_cooldown=10, down_window=60, limit=Ceiling(3, "a cap")).reason
    'scheduler wants 9 workers; scaled up to 3; spec.maximum=5 is limited to 3 by a cap'
    """
    bounded = max(minimum, min(maximum, target))
    want = bounded if limit is None else min(bounded, limit.workers)
    limited = want < bounded
    note = f"; {_asked(target, minimum, maximum)} is limited to {want} by {limit.why}" \
        if limit is not None and limited else ""
    if want > current:
        if now - last_change < up_cooldown:
            return Decision(current, None, f"scale-up to {want} waits for the {up_cooldown:.0f}s "
                                           f"cooldown{note}", limited)
        return Decision(want, None, f"scheduler wants {target} workers; scaled up to {want}{note}", limited)
    if want < current:
        since = below_since if below_since is not None else now
        if now - since < down_window:
            return Decision(current, since, (f"target {want} below {current} for {now - since:.0f}s of "
                                             f"the {down_window:.0f}s stabilization window{note}"), limited)
        return Decision(want, None, (f"scheduler wants {target} workers for {down_window:.0f}s; scaled "
                                     f"down to {want}{note}"), limited)
    return Decision(current, None, f"at target ({current}){note}", limited)


async def _ceiling(rt: Runtime, ns: str, cluster: str, group: str) -> Ceiling | None:
    """The limits from the operator's cache (this runs every few seconds per autoscaler)."""
    lim = await limits.limits_for(rt.client, rt.events, ns)
    if not lim.any:
        return None
    groups: list[Obj] = []
    if lim.max_workers_per_cluster is not None and not lim.error:
        groups, _ = await rt.client.list(DASKWORKERGROUPS, ns)
    pods = rt.pods(ns, **{names.LABEL_CLUSTER: cluster, names.LABEL_COMPONENT: names.COMPONENT_WORKER})
    return ceiling(lim, group=group, cluster=cluster, groups=groups, worker_pods=pods)


async def reconcile(rt: Runtime, autoscaler: Obj, state: dict[str, Any]) -> float:
    """``state`` is the daemon's memory (cooldown clocks); losing it on restart only delays."""
    meta, spec = autoscaler["metadata"], autoscaler.get("spec") or {}
    ns = meta["namespace"]
    cluster = spec.get("cluster")
    interval = float(spec.get("intervalSeconds") or DEFAULT_INTERVAL)
    if not cluster:
        return interval
    group_name = spec.get("workerGroup") or names.default_worker_group(cluster)
    minimum, maximum = int(spec.get("minimum", 0)), int(spec.get("maximum", 0))
    if minimum > maximum:
        # The CRD refuses this on an API server that evaluates its CEL rule; the operator
        # refuses it too, for servers that do not, rather than scale to the minimum.
        return await _invalid(rt, autoscaler, f"spec.minimum ({minimum}) is greater than "
                              f"spec.maximum ({maximum}): lower the minimum or raise the maximum")
    owned = any(r.get("kind") == DASKCLUSTERS.kind and r.get("name") == cluster
                for r in meta.get("ownerReferences") or [])
    cluster_obj = await rt.read(DASKCLUSTERS, ns, cluster)
    if not owned and cluster_obj is not None:
        # Applied from a manifest, it names its cluster; owned by it, it goes with it.
        await adopt(rt, DASKAUTOSCALERS, autoscaler, cluster_obj, controller=False)
    outside = _outside_profile(cluster_obj, minimum, maximum)
    if outside is not None:
        return await _invalid(rt, autoscaler, outside)
    group = await rt.read(DASKWORKERGROUPS, ns, group_name)
    scheduler = rt.pod(ns, names.scheduler_name(cluster))
    address = scheduler_comm.scheduler_rpc_address(scheduler) if scheduler else None
    if group is None or address is None:
        await rt.patch_status(DASKAUTOSCALERS, autoscaler, {
            "workerGroup": group_name, "observedGeneration": meta.get("generation"),
            "lastDecision": {"reason": f"waiting for worker group {group_name} and its scheduler"}})
        return interval
    try:
        target = await scheduler_comm.adaptive_target(address)
    except scheduler_comm.SchedulerUnreachable as exc:
        await rt.event(autoscaler, "SchedulerUnreachable", str(exc), warning=True)
        return interval
    limit = await _ceiling(rt, ns, (group.get("spec") or {}).get("cluster") or cluster, group_name)
    current = worker_replicas(group)
    now = time.monotonic()
    decision = decide(
        current=current, target=target, minimum=minimum, maximum=maximum, now=now,
        last_change=state.get("last_change", float("-inf")), below_since=state.get("below_since"),
        up_cooldown=float(spec.get("scaleUpCooldownSeconds", DEFAULT_UP_COOLDOWN)),
        down_window=float(spec.get("scaleDownStabilizationSeconds", DEFAULT_DOWN_STABILIZATION)),
        limit=limit)
    new, reason = decision.replicas, decision.reason
    state["below_since"] = decision.below_since
    if new != current:
        await rt.patch(DASKWORKERGROUPS, ns, group_name, {"spec": {"worker": {"replicas": new}}})
        state["last_change"] = now
        await rt.event(autoscaler, "Scaled", f"{group_name}: {current} -> {new} ({reason})")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status: Obj = {
        "workerGroup": group_name, "desiredWorkers": target, "currentWorkers": new,
        "observedGeneration": meta.get("generation"),
        "lastDecision": {"time": stamp, "from": current, "to": new, "target": target,
                         "reason": reason}}
    conds = await _limited_condition(rt, autoscaler, group_name, limit, limited=decision.limited)
    existing = conds if conds is not None else (autoscaler.get("status") or {}).get("conditions")
    if conditions.is_true(existing, "Failed"):  # an earlier spec could not be followed
        conds = conditions.put_condition(existing, "Failed", False, "Valid", "the spec can be followed",
                               meta.get("generation"))
    if conds is not None:
        status["conditions"] = conds
    await rt.patch_status(DASKAUTOSCALERS, autoscaler, status)
    return interval


def _outside_profile(cluster: Obj | None, minimum: int, maximum: int) -> str | None:
    """Why [minimum, maximum] asks for what the cluster's pinned profile does not allow."""
    bounds = profiles.worker_bounds_of(cluster or {})
    if bounds is None:
        return None
    name, lo, hi = bounds
    for field, value in (("spec.minimum", minimum), ("spec.maximum", maximum)):
        message = profiles.bounds_message(name, lo, hi, value)
        if message is not None:
            return f"{field}: {message}"
    return None


async def _invalid(rt: Runtime, autoscaler: Obj, message: str) -> float:
    """Scale nothing for a spec that cannot be followed; say so once; wait for a new spec."""
    status = autoscaler.get("status") or {}
    previous = conditions.find_condition(status.get("conditions"), "Failed") or {}
    generation = autoscaler["metadata"].get("generation")
    if previous.get("status") != "True" or previous.get("message") != message:
        await rt.patch_status(DASKAUTOSCALERS, autoscaler, {
            "observedGeneration": generation,
            "conditions": conditions.put_condition(status.get("conditions"), "Failed", True,
                                         REASON_INVALID, message, generation),
            "lastDecision": {"reason": f"nothing scaled: {message}"}})
        await rt.event(autoscaler, REASON_INVALID, message, warning=True)
    return 3600.0  # a new spec wakes the daemon through its watch event


async def _limited_condition(rt: Runtime, autoscaler: Obj, group: str, limit: Ceiling | None, *,
                             limited: bool) -> list[Obj] | None:
    """The ``TargetLimited`` condition (None: leave conditions alone, the autoscaler was never
    limited), with an Event each time a limit starts to apply or changes. The previous
    message is read from status, so a new operator process does not repeat the Event."""
    existing = (autoscaler.get("status") or {}).get("conditions")
    previous = conditions.find_condition(existing, CONDITION_TARGET_LIMITED) or {}
    if not limited and not previous:
        return None
    generation = autoscaler["metadata"].get("generation")
    if not limited or limit is None:
        return conditions.put_condition(existing, CONDITION_TARGET_LIMITED, False, "WithinLimits",
                              "the target is within the operator's limits", generation)
    message = (f"{group} gets at most {limit.workers} workers from this autoscaler: {limit.why}; "
               f"spec.minimum and spec.maximum are left as written")
    if previous.get("status") != "True" or previous.get("message") != message:
        await rt.event(autoscaler, CONDITION_TARGET_LIMITED, message)
    return conditions.put_condition(existing, CONDITION_TARGET_LIMITED, True, limit.reason, message, generation)
