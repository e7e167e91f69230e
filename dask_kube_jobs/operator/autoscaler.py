"""DaskAutoscaler: follow the scheduler's adaptive target within [minimum, maximum].

The scheduler knows how many workers its queued work needs (``adaptive_target``); the
autoscaler turns that into ``replicas`` of one worker group (the cluster's default group unless
``spec.workerGroup`` names another). Scaling up is prompt, limited by a short cooldown; scaling
down waits until the lower target has held for a stabilization window (hysteresis), so a
momentary lull between two computations does not throw away warm workers. The last decision is
kept in status, so ``kubectl describe`` says why the group has the size it has.
"""

from __future__ import annotations

import time
from typing import Any

from . import names, scheduler_comm
from .runtime import DASKAUTOSCALERS, DASKWORKERGROUPS, Runtime

Obj = dict[str, Any]

DEFAULT_INTERVAL = 5.0
DEFAULT_UP_COOLDOWN = 10.0
DEFAULT_DOWN_STABILIZATION = 60.0


def decide(*, current: int, target: int, minimum: int, maximum: int, now: float,
           last_change: float, below_since: float | None, up_cooldown: float,
           down_window: float) -> tuple[int, float | None, str]:
    """Pure decision: (new replicas, new below-since stamp, reason)."""
    want = max(minimum, min(maximum, target))
    if want > current:
        if now - last_change < up_cooldown:
            return current, None, f"scale-up to {want} waits for the {up_cooldown:.0f}s cooldown"
        return want, None, f"scheduler wants {target} workers; scaled up to {want}"
    if want < current:
        since = below_since if below_since is not None else now
        if now - since < down_window:
            return current, since, (f"target {want} below {current} for {now - since:.0f}s of the "
                                    f"{down_window:.0f}s stabilization window")
        return want, None, f"scheduler wants {target} workers for {down_window:.0f}s; scaled down to {want}"
    return current, None, f"at target ({current})"


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
    group = await rt.client.get(DASKWORKERGROUPS, ns, group_name)
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
    current = int(((group.get("spec") or {}).get("worker") or {}).get("replicas") or 0)
    now = time.monotonic()
    new, below, reason = decide(
        current=current, target=target, minimum=minimum, maximum=maximum, now=now,
        last_change=state.get("last_change", float("-inf")), below_since=state.get("below_since"),
        up_cooldown=float(spec.get("scaleUpCooldownSeconds", DEFAULT_UP_COOLDOWN)),
        down_window=float(spec.get("scaleDownStabilizationSeconds", DEFAULT_DOWN_STABILIZATION)))
    state["below_since"] = below
    if new != current:
        await rt.client.patch(DASKWORKERGROUPS, ns, group_name, {"spec": {"worker": {"replicas": new}}})
        state["last_change"] = now
        await rt.event(autoscaler, "Scaled", f"{group_name}: {current} -> {new} ({reason})")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    await rt.patch_status(DASKAUTOSCALERS, autoscaler, {
        "workerGroup": group_name, "desiredWorkers": target, "currentWorkers": new,
        "observedGeneration": meta.get("generation"),
        "lastDecision": {"time": stamp, "from": current, "to": new, "target": target,
                         "reason": reason}})
    return interval
