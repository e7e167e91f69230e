"""A DaskJob on an existing DaskCluster (``spec.clusterRef``): waited for, never made or removed.

A job that names a cluster borrows it, as a RayJob with a ``clusterSelector`` borrows a
RayCluster: a DAG keeps one warm cluster and runs many short jobs on it. The operator makes no
cluster for such a job and tears nothing down when it ends (``JobReconciler.finished`` deletes
only a cluster the job owns, and a borrowed one is not owned). Its runner gets the borrowed
cluster's scheduler address like any runner (``builders.cluster_of_job``).

Before a runner starts, the cluster must exist and its scheduler be ready. Until then the job
says why in ``status.reason`` and ``status.message`` (its cluster missing, or its scheduler's
own ``SchedulerReady`` words), and after the cluster's ``schedulerStartupTimeoutSeconds`` (default 300 s; counted
from the job's start, since the job cannot know when a cluster it did not make began) it
fails with ``ClusterNotFound`` or ``ClusterNotReady``. A runner already running is not
stopped by its cluster's troubles: it fails by itself if it loses its scheduler, and within
``backoffLimit`` the next attempt waits for the cluster again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..contract import cluster_status, conditions, names
from ..contract.api_resources import DASKCLUSTERS
from ..contract.pods import pod_ready
from ..contract.times import now, parse_time
from . import diagnosis
from .cluster import startup_timeout

if TYPE_CHECKING:
    from .job import JobReconciler

Obj = dict[str, Any]

REASON_NOT_FOUND = "ClusterNotFound"
REASON_NOT_READY = "ClusterNotReady"
#: How often a job waiting for a borrowed cluster looks again: the cluster's Pods carry no
#: label of the job, so nothing wakes it sooner.
POLL_SECONDS = 2.0


def ref_name(spec: Obj | None) -> str | None:
    """The name in ``spec.clusterRef``, or None for a job that makes its own cluster."""
    return ((spec or {}).get("clusterRef") or {}).get("name") or None


def _why_not_ready(cluster: Obj, name: str) -> str:
    status = cluster.get("status") or {}
    cond = conditions.find_condition(status.get("conditions"), cluster_status.CONDITION_SCHEDULER_READY)
    if cond and cond.get("status") != "True" and cond.get("message"):
        detail = f"{cond.get('reason')}: {cond['message']}"
    else:
        detail = f"its phase is {status.get('phase') or 'not set yet'}"
        refused = conditions.find_condition(status.get("conditions"), "Failed") or \
            conditions.find_condition(status.get("conditions"), "Admitted")
        if refused and refused.get("message") and \
                refused.get("status") == ("True" if refused["type"] == "Failed" else "False"):
            detail += f" ({refused.get('reason')}: {refused['message']})"
    return f"the scheduler of DaskCluster {name} (spec.clusterRef) is not ready: {detail}"


async def wait_for_cluster(job: JobReconciler) -> float | None:
    """None once the borrowed cluster's scheduler is ready (a runner may start); otherwise the
    seconds until the next look, after saying why the job waits, or the job's end once it has
    waited past the cluster's scheduler startup timeout."""
    rt, ns, name = job.rt, job.ns, job.cluster_name
    cluster = await rt.read(DASKCLUSTERS, ns, name)  # the cache: no GET per poll
    live = cluster is not None and not cluster["metadata"].get("deletionTimestamp")
    scheduler = rt.pod(ns, names.scheduler_name(name)) if live else None
    if scheduler is not None and pod_ready(scheduler) and not scheduler["metadata"].get("deletionTimestamp"):
        # activeCluster: kubectl get's CLUSTER column, cleared when the job ends (finished())
        fields: Obj = {"jobStatus": "ClusterCreated", "clusterName": name, "activeCluster": name}
        if job.status.get("reason") in (REASON_NOT_FOUND, REASON_NOT_READY):
            fields.update(reason=None, message=None)  # said while it waited, gone with the cause
        await job.write(**fields)
        return None
    if not live:
        reason, timeout = REASON_NOT_FOUND, float(diagnosis.SCHEDULER_STARTUP_TIMEOUT)
        why = f"DaskCluster {name} (spec.clusterRef) does not exist in namespace {ns}"
    else:
        reason, timeout = REASON_NOT_READY, startup_timeout(cluster)
        why = _why_not_ready(cluster, name)
    started = parse_time(job.status.get("startTime"))
    waited = (now() - started).total_seconds() if started else 0.0
    if waited > timeout:
        return await job.fail(reason, (
            f"{why}, {waited:.0f}s after the job started (the limit is the cluster's "
            f"schedulerStartupTimeoutSeconds, {timeout:g}s); the cluster is left as it is"))
    note = f"waiting: {why}"
    if job.status.get("message") != note or job.status.get("clusterName") != name:
        await job.write(clusterName=name, reason=reason, message=note)
    return POLL_SECONDS


async def reconcile(job: JobReconciler) -> float:
    """The cluster side of a pass over a job on a borrowed cluster, then its runner."""
    if not job.status.get("jobRunnerPodName"):  # a runner is about to start: it needs a scheduler
        waiting = await wait_for_cluster(job)
        if waiting is not None:
            return waiting
    return await job.drive_runner()
