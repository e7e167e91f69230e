"""DaskCluster: a scheduler Pod, its Service, and the default worker group.

Every pass compares what exists with what the spec asks for and fixes the difference, so it
does not matter whether the previous pass finished, ran twice, or ran in another operator
process. Children have fixed names, which makes their creation idempotent (409 means done);
what exists is read from the operator's caches (``Runtime``), so a child is only created when
they say it is missing, not re-sent on every pass to be answered 409.
The default group's replicas follow ``spec.worker.replicas`` only when the cluster's spec
changes (tracked through ``status.observedGeneration``), so ``kubectl scale daskworkergroup
<cluster>-default`` and HPAs on the group are not undone by the next pass.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ..contract import cluster_status, conditions, names
from ..contract.api_resources import DASKCLUSTERS, DASKJOBS, DASKWORKERGROUPS, Resource
from ..contract.objects import owner_reference
from ..contract.pods import pod_active, pod_ready
from ..kube import PODS, SERVICES, APIError, Conflict
from . import builders, diagnosis, limits, pod_policy, profile_admission, profiles, scheduler_comm
from .cache import UNKNOWN
from .failures import REASON_POLICY, ChildRefused
from .runtime import SETTLED, Runtime

Obj = dict[str, Any]

#: How often the scheduler is asked how long it has been idle, while ``spec.idleTimeout`` runs.
RESYNC = 10.0


async def create_if_missing(rt: Runtime, res: Any, body: Obj) -> bool:
    """Create ``body``; True if we made it, False if it was already there.

    Raises ``failures.ChildRefused`` when the API server refuses it for good (invalid,
    forbidden): the caller ends or marks its object instead of retrying."""
    try:
        rt.wrote(res, await rt.client.create(res, body["metadata"]["namespace"], body))
    except Conflict:
        return False
    except APIError as exc:
        refused = ChildRefused.from_error(exc, body)
        if refused is not None:
            raise refused from exc
        raise
    return True


async def adopt(rt: Runtime, res: Resource, obj: Obj, cluster: Obj, *, controller: bool) -> None:
    """Make ``cluster`` an owner of ``obj`` (a worker group or autoscaler that names it), so
    deleting the cluster deletes it too, as the upstream operator's users expect."""
    refs = obj["metadata"].get("ownerReferences") or []
    if any(r.get("uid") == cluster["metadata"]["uid"] for r in refs):
        return
    ref = owner_reference(cluster, controller=controller, block=True)
    await rt.patch(res, obj["metadata"]["namespace"], obj["metadata"]["name"],
                   {"metadata": {"ownerReferences": [*refs, ref]}})


def startup_timeout(cluster: Obj | None) -> float:
    """Seconds a running scheduler may stay unready (``spec.schedulerStartupTimeoutSeconds``)."""
    value = ((cluster or {}).get("spec") or {}).get("schedulerStartupTimeoutSeconds")
    return float(value) if value else float(diagnosis.SCHEDULER_STARTUP_TIMEOUT)


def _true_for_this_spec(obj: Obj | None, ctype: str) -> Obj | None:
    """Condition ``ctype`` of ``obj`` if it is True and was written for its current spec
    (generation); a new spec clears it."""
    if obj is None:
        return None
    cond = conditions.find_condition((obj.get("status") or {}).get("conditions"), ctype)
    if cond and cond.get("status") == "True" and \
            cond.get("observedGeneration") == obj["metadata"].get("generation"):
        return cond
    return None


def refused_condition(cluster: Obj | None) -> Obj | None:
    """The cluster's ``Failed`` condition when the API server refused one of its children for
    its current spec (see ``failures``); None otherwise."""
    return _true_for_this_spec(cluster, "Failed")


async def _refused(rt: Runtime, cluster: Obj, reason: str, message: str) -> float:
    """Record that a child can never be made for this spec; wait for a new spec."""
    meta = cluster["metadata"]
    status = cluster.get("status") or {}
    conds = conditions.put_condition(status.get("conditions"), "Failed", True, reason, message,
                           meta.get("generation"))
    if await rt.patch_status(DASKCLUSTERS, cluster, {"phase": cluster_status.PHASE_FAILED, "conditions": conds}) is None:
        return 3600.0  # deleted meanwhile
    rt.refused_clusters[(meta["namespace"], meta["name"])] = conditions.find_condition(conds, "Failed") or {}
    await rt.event(cluster, reason, message, warning=True)
    job = (meta.get("labels") or {}).get(names.LABEL_JOB)
    if job:
        rt.trigger(meta["namespace"], "DaskJob", job)  # its job ends with the same words
    return 3600.0  # a new spec wakes the daemon through its watch event


def replica_failure(group: Obj | None) -> Obj | None:
    """A worker group's ``ReplicaFailure`` condition while it holds for the group's spec."""
    return _true_for_this_spec(group, "ReplicaFailure")


async def _scheduler_condition(rt: Runtime, scheduler: Obj | None,
                               cluster: Obj) -> tuple[bool, str, str]:
    """(ready, reason, message) of the SchedulerReady condition, in the kubelet's words.

    A scheduler that ended or crash-loops says why only in its log (``ImportError: ... you
    need to have jupyterlab installed`` for ``--jupyter`` in an image without JupyterLab), so
    its last line joins the message; it is read once per new verdict, not on every pass."""
    if scheduler is not None and pod_ready(scheduler):
        return True, "PodReady", "the scheduler Pod is ready"
    if scheduler is None:
        return False, "PodNotReady", "waiting for the scheduler Pod to be created"
    problem = diagnosis.scheduler_problem(scheduler, now=dt.datetime.now(dt.timezone.utc),
                                          startup_timeout=startup_timeout(cluster),
                                          pending_timeout=0)
    if problem is None:
        return False, "PodNotReady", "waiting for the scheduler Pod to become ready"
    message = problem.message
    if problem.reason == diagnosis.REASON_SCHEDULER_FAILED:
        said = conditions.condition(cluster, cluster_status.CONDITION_SCHEDULER_READY) or {}
        if said.get("reason") == problem.reason and \
                str(said.get("message") or "").startswith(message):
            return False, problem.reason, str(said["message"])
        meta = scheduler["metadata"]
        tail = await rt.log_tail(meta["namespace"], meta["name"], lines=5,
                                 previous=problem.previous_log)
        message = diagnosis.with_log_end(message, tail)
    return False, problem.reason, message



async def ensure_scheduler(rt: Runtime, cluster: Obj) -> Obj | None:
    """The live scheduler Pod, replacing one that has ended; None while it is being made."""
    ns, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    pod = rt.pod(ns, names.scheduler_name(name))
    if pod is not None and not pod_active(pod):
        if not pod["metadata"].get("deletionTimestamp"):
            await rt.client.delete(PODS, ns, pod["metadata"]["name"], uid=pod["metadata"]["uid"])
            await rt.event(cluster, "SchedulerReplaced",
                           f"scheduler Pod {pod['metadata']['name']} ended "
                           f"({(pod.get('status') or {}).get('phase')}); replacing it", warning=True)
        return None
    if pod is None:
        if rt.objects.lookup(PODS.kind, ns, names.scheduler_name(name)) not in (None, UNKNOWN):
            return None  # made by an earlier pass; the informer has not shown it yet
        if await create_if_missing(rt, PODS, builders.scheduler_pod(cluster)):
            await rt.event(cluster, "SchedulerCreated", f"created scheduler Pod {names.scheduler_name(name)}")
        return None
    return pod


def job_owned(cluster: Obj) -> bool:
    """A DaskJob's own cluster: counted by maxJobsPerNamespace through its job, not as a
    cluster of the namespace (the job was admitted with this very spec)."""
    meta = cluster["metadata"]
    return bool((meta.get("labels") or {}).get(names.LABEL_JOB)) and any(
        r.get("kind") == DASKJOBS.kind and r.get("controller") for r in meta.get("ownerReferences") or [])


def _holds_place(cluster: Obj) -> bool:
    status = cluster.get("status") or {}
    return not cluster["metadata"].get("deletionTimestamp") and not job_owned(cluster) and \
        limits.is_admitted(status, started=bool(status.get("phase")))


def worker_replicas(group: Obj) -> int:
    return int((((group.get("spec") or {}).get("worker") or {}).get("replicas")) or 0)


async def admission_problems(rt: Runtime, cluster: Obj, lim: limits.Limits) -> list[limits.Violation]:
    """Why ``cluster`` may not start now under ``lim`` (empty: it may). Reads, only when a
    limit needs them, the namespace's clusters and the cluster's other worker groups."""
    meta = cluster["metadata"]
    ns, name = meta["namespace"], meta["name"]
    if not lim.any:
        return []
    problem = limits.config_problem(lim)
    if problem:
        return [problem]
    others = 0
    if lim.max_workers_per_cluster is not None:
        groups, _ = await rt.client.list(DASKWORKERGROUPS, ns)
        others = sum(worker_replicas(g) for g in groups
                     if (g.get("spec") or {}).get("cluster") == name
                     and g["metadata"]["name"] != names.default_worker_group(name)
                     and not g["metadata"].get("deletionTimestamp"))
    found = limits.check_cluster_spec(lim, cluster.get("spec"), others=others, cluster=name)
    cap = lim.max_clusters_per_namespace
    if not found and cap is not None and not job_owned(cluster):
        siblings, _ = await rt.client.list(DASKCLUSTERS, ns)

        def waits_in_line(other: Obj) -> bool:
            return not other["metadata"].get("deletionTimestamp") and not job_owned(other) and \
                not names.cluster_name_problem(other["metadata"]["name"]) and \
                not limits.check_cluster_spec(lim, other.get("spec"))

        ok, taken = limits.has_place(cluster, siblings, cap, holds_place=_holds_place,
                                     waits_in_line=waits_in_line)
        if not ok:
            found.append(limits.Violation("metadata.namespace", (
                f"namespace {ns} already has {taken} DaskCluster(s) of the {cap} allowed "
                f"(older waiting clusters go first) by the operator's administrator "
                f"({lim.where('maxClustersPerNamespace')}); this cluster starts by itself when "
                f"one is deleted or the limit is raised")))
    return found


async def _wait(rt: Runtime, cluster: Obj, reason: str, message: str) -> float:
    """Hold a cluster that may start later (Pending, ``Admitted=False``), saying why once."""
    meta, status = cluster["metadata"], cluster.get("status") or {}
    if message != limits.refused_message(status) or status.get("phase") != cluster_status.PHASE_PENDING:
        await rt.patch_status(DASKCLUSTERS, cluster, {"phase": cluster_status.PHASE_PENDING, "conditions": conditions.put_condition(
            status.get("conditions"), limits.CONDITION_ADMITTED, False, reason,
            message, meta.get("generation"))})
        await rt.event(cluster, reason, f"{message}; nothing was created", warning=True)
    return limits.RECHECK_SECONDS


async def admit(rt: Runtime, cluster: Obj) -> float | None:
    """Admit a cluster that is within the limits, or record why not; None once admitted.

    Nothing is created for a refused cluster and its spec is left as written: it waits, with
    an ``Admitted=False`` condition and a Warning Event, and is looked at again in seconds.
    A spec that breaks the Pod policy or its profile is refused for good instead (``Failed``,
    reason ``PolicyViolation`` or ``ProfileViolation``), until its spec changes: waiting cannot
    make it acceptable. The limits and the Pod policy judge the spec as its profile resolves
    it, and the profile applied is pinned in ``status.profile`` with the admission.
    """
    meta = cluster["metadata"]
    status = cluster.get("status") or {}
    outcome = profile_admission.NONE if rt.profiles is None else \
        await profile_admission.admit_cluster(rt.profiles, rt, cluster, job_owned=job_owned(cluster))
    if outcome.state == "refused":
        return await _refused(rt, cluster, outcome.reason, outcome.message)
    if outcome.state == "waiting":
        if outcome.delay is not None:  # a job's own cluster, a moment before its job's pin shows
            return outcome.delay
        return await _wait(rt, cluster, outcome.reason, outcome.message)
    judged = cluster if outcome.spec is None else {**cluster, "spec": outcome.spec}
    lim = await limits.limits_for(rt.client, rt.events, meta["namespace"], fresh=True)
    broken = [] if lim.error else pod_policy.check_cluster_spec(lim.pod_policy, judged.get("spec"))
    if broken:
        return await _refused(rt, cluster, REASON_POLICY, pod_policy.summary(broken))
    found = await admission_problems(rt, judged, lim)
    previous = limits.refused_message(status)
    if found:
        return await _wait(rt, cluster, limits.REASON_EXCEEDED, limits.summary(found))
    admitted: Obj = {"phase": cluster_status.PHASE_CREATED, "conditions": conditions.put_condition(
        status.get("conditions"), limits.CONDITION_ADMITTED, True, "Admitted",
        "within the operator's limits", meta.get("generation"))}
    if outcome.pin is not None:
        admitted["profile"] = outcome.pin
    await rt.patch_status(DASKCLUSTERS, cluster, admitted)
    if previous is not None:
        await rt.event(cluster, "Admitted", "now within the operator's limits; starting")
    cluster["status"] = {**status, **admitted}  # the rest of the pass builds on this status
    return None


async def reconcile(rt: Runtime, cluster: Obj) -> float:
    """One pass over a DaskCluster; returns seconds until the next timed pass."""
    meta = cluster["metadata"]
    key = (meta["namespace"], meta["name"])
    refused = refused_condition(cluster)
    if refused is not None:
        rt.refused_clusters[key] = refused  # its job reads it here, without a request
        return 3600.0  # nothing can be made for this spec; a new one wakes the daemon
    rt.refused_clusters.pop(key, None)
    try:
        return await _reconcile(rt, cluster)
    except ChildRefused as exc:
        return await _refused(rt, cluster, exc.reason, exc.message)


async def _reconcile(rt: Runtime, cluster: Obj) -> float:
    meta, spec = cluster["metadata"], cluster.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    status = cluster.get("status") or {}
    if meta.get("deletionTimestamp"):
        return SETTLED  # its daemon is stopped as it goes
    problem = names.cluster_name_problem(name)
    if problem:
        if not conditions.find_condition(status.get("conditions"), "InvalidName"):
            await rt.patch_status(DASKCLUSTERS, cluster, {"phase": cluster_status.PHASE_FAILED, "conditions": conditions.put_condition(
                status.get("conditions"), "InvalidName", True, "InvalidName", problem, meta.get("generation"))})
            await rt.event(cluster, "InvalidName", f"{problem}; nothing was created", warning=True)
        return 3600.0
    if not limits.is_admitted(status, started=bool(status.get("phase"))):
        refused = await admit(rt, cluster)
        if refused is not None:
            return refused
        status = cluster["status"]
    elif not status.get("phase"):
        await rt.patch_status(DASKCLUSTERS, cluster, {"phase": cluster_status.PHASE_CREATED})
    # The spec as its pinned profile resolves it: the same every pass, whatever the profile says now.
    resolved = profile_admission.effective(cluster, spec, cluster=name, prefix="spec.")
    if resolved is not None:
        if resolved.violations:  # an edit after admission breaks the pinned profile
            return await _refused(rt, cluster, profiles.REASON_VIOLATION, profiles.summary(resolved.violations))
        spec = resolved.spec
        cluster = {**cluster, "spec": spec}

    scheduler = await ensure_scheduler(rt, cluster)
    if rt.service(ns, names.scheduler_name(name)) is None and \
            await create_if_missing(rt, SERVICES, builders.scheduler_service(cluster)):
        await rt.event(cluster, "ServiceCreated", f"created Service {names.scheduler_name(name)}")

    group_name = names.default_worker_group(name)
    desired_group = builders.default_worker_group(cluster)
    group = rt.objects.lookup(DASKWORKERGROUPS.kind, ns, group_name)
    if group is None or group is UNKNOWN:
        # Missing, or not delivered by the watch yet: creating it answers both (409: it exists).
        if await create_if_missing(rt, DASKWORKERGROUPS, desired_group):
            await rt.event(cluster, "WorkerGroupCreated", f"created DaskWorkerGroup {group_name}")
            group = None
        else:
            group = await rt.read(DASKWORKERGROUPS, ns, group_name)
    if group is not None and status.get("observedGeneration") != meta.get("generation"):
        want = desired_group["spec"]["worker"].get("replicas")
        have = ((group.get("spec") or {}).get("worker") or {}).get("replicas")
        if want is not None and want != have:
            await rt.patch(DASKWORKERGROUPS, ns, group_name, {"spec": {"worker": {"replicas": want}}})
            await rt.event(cluster, "Scaled", f"worker group {group_name}: {have} -> {want} workers")
    failure = replica_failure(group)
    if failure is not None:  # its workers can never be made: the cluster cannot work
        return await _refused(rt, cluster, failure.get("reason") or "InvalidSpec",
                              f"worker group {group_name}: {failure.get('message')}")

    workers = rt.pods(ns, **{names.LABEL_CLUSTER: name, names.LABEL_COMPONENT: names.COMPONENT_WORKER})
    active = [p for p in workers if pod_active(p)]
    ready = sum(1 for p in active if pod_ready(p))
    scheduler_ready, scheduler_reason, scheduler_message = await _scheduler_condition(
        rt, scheduler, cluster)
    # Upstream's phase vocabulary (contract.cluster_status): Running once the scheduler Pod
    # and its Service exist; readiness is the SchedulerReady condition.
    phase = cluster_status.PHASE_RUNNING if scheduler is not None else cluster_status.PHASE_PENDING
    conds = conditions.put_condition(status.get("conditions"), cluster_status.CONDITION_SCHEDULER_READY,
                                     scheduler_ready, scheduler_reason, scheduler_message,
                                     meta.get("generation"))
    found = diagnosis.workers_problem(active)
    if found is not None:  # the same words as its worker groups' WorkersReady
        conds = conditions.put_condition(conds, "WorkersReady", False, found[1].reason,
                               f"{ready} of {len(active)} worker(s) ready; {found[0]} cannot "
                               f"start: {found[1].message}", meta.get("generation"))
    else:
        conds = conditions.put_condition(conds, "WorkersReady", ready == len(active),
                               "AllReady" if ready == len(active) else "WorkersStarting",
                               f"{ready} of {len(active)} worker(s) ready", meta.get("generation"))
    if conditions.find_condition(conds, "Failed"):  # a refusal of an earlier spec no longer holds
        conds = conditions.put_condition(conds, "Failed", False, "Created",
                               "every child object was accepted", meta.get("generation"))
    new_status: Obj = {
        "phase": phase,
        "observedGeneration": meta.get("generation"),
        "workers": len(active),
        "readyWorkers": ready,
        "schedulerAddress": names.scheduler_address(name, ns),
        "dashboardAddress": names.dashboard_address(name, ns),
        "selector": f"{names.LABEL_CLUSTER}={name},{names.LABEL_COMPONENT}={names.COMPONENT_WORKER}",
        "conditions": conds,
    }
    if any(status.get(k) != v for k, v in new_status.items()):
        await rt.patch_status(DASKCLUSTERS, cluster, new_status)
        if phase == cluster_status.PHASE_RUNNING and status.get("phase") != phase:
            await rt.event(cluster, "Running", f"scheduler Pod and Service {names.scheduler_name(name)} exist")
        if scheduler_ready and not conditions.is_true(status.get("conditions"),
                                                      cluster_status.CONDITION_SCHEDULER_READY):
            await rt.event(cluster, cluster_status.CONDITION_SCHEDULER_READY,
                           f"scheduler ready at {new_status['schedulerAddress']}")

    idle_timeout = int(spec.get("idleTimeout") or 0)
    if idle_timeout > 0 and scheduler_ready and scheduler is not None:
        return await _check_idle(rt, cluster, scheduler, idle_timeout)
    if scheduler is not None and not scheduler_ready:
        # SchedulerReady's reason turns to SchedulerNotReady when the startup timeout runs out
        left = diagnosis.scheduler_problem_in(scheduler, now=dt.datetime.now(dt.timezone.utc),
                                              startup_timeout=startup_timeout(cluster),
                                              pending_timeout=0)
        if left is not None and left > 0:
            return min(SETTLED, left + 0.5)
    return SETTLED  # Pod, Service and worker group events wake it


async def _check_idle(rt: Runtime, cluster: Obj, scheduler: Obj, idle_timeout: int) -> float:
    address = scheduler_comm.scheduler_rpc_address(scheduler)
    if address is None:
        return RESYNC
    try:
        since = await scheduler_comm.idle_since(address)
    except scheduler_comm.SchedulerUnreachable:
        return RESYNC
    if since is None:
        return min(RESYNC, idle_timeout)
    idle_for = time.time() - since
    if idle_for >= idle_timeout:
        meta = cluster["metadata"]
        await rt.event(cluster, "IdleTimeout",
                       f"no work for {idle_for:.0f}s (idleTimeout {idle_timeout}s); deleting the cluster")
        await rt.client.delete(DASKCLUSTERS, meta["namespace"], meta["name"], uid=meta["uid"])
        return RESYNC
    return max(1.0, min(RESYNC, idle_timeout - idle_for))
