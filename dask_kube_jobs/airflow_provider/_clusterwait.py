"""Create-or-reuse, wait for ready, delete: the async core of the DaskCluster tasks.

The shared-cluster counterpart of ``_jobwait``, and shaped by the same rule (STYLE.md,
Airflow): :class:`~.operators.daskcluster.CreateDaskClusterOperator` waits by running
:func:`wait_for_cluster` on its own event loop, :class:`~.triggers.daskcluster.DaskClusterTrigger`
runs the very same coroutine in the triggerer, and the poking
:class:`~.sensors.daskcluster.DaskClusterSensor` reads the same pure :func:`cluster_event`. The
answer is always an *event*, a dict of primitives: a trigger can hand nothing else back.

Ready means what the operator reports: ``status.phase`` is ``Running`` with the
``SchedulerReady`` condition true (``contract.cluster_status.scheduler_ready``: the phase alone
says the scheduler was made, as upstream's phase does) and, when asked,
``status.readyWorkers`` reached a minimum. ``Failed`` (an invalid name,
see the cluster's conditions) is final. A cluster that does not exist is *not ready yet*, not
an error: a sensor may start before whatever creates the cluster.

Idempotence on retry: a cluster carries the creating task's identity labels (``_identity``);
a retry of the same task finds it by name and ``task-key`` and reuses it instead of failing on
a 409, while a cluster of that name that some other task or person made is never adopted.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .. import kube
from ..contract import cluster_status
from ..contract.api_resources import DASKCLUSTERS
from ._identity import LABEL_KEY, TaskIdentity

Obj = dict[str, Any]
DELETE_POLL = 0.5  # seconds between checks that a deleted cluster is gone


def cluster_event(obj: Obj | None, *, namespace: str, name: str,
                  min_ready_workers: int = 0) -> Obj:
    """Where a DaskCluster stands: ``ready``, ``failed``, ``waiting`` or ``missing`` (pure).

    >>> cluster_event({"metadata": {"name": "c", "namespace": "ns"},
    ...                "status": {"phase": "Running", "readyWorkers": 2,
    ...                           "conditions": [{"type": "SchedulerReady", "status": "True"}],
    ...                           "schedulerAddress": "tcp://c-scheduler.ns.svc:8786"}},
    ...               namespace="ns", name="c", min_ready_workers=2)["status"]
    'ready'
    """
    if obj is None:
        return {"status": "missing", "name": name, "namespace": namespace,
                "message": f"DaskCluster {namespace}/{name} does not exist (yet)"}
    status = obj.get("status") or {}
    phase, ready = status.get("phase"), int(status.get("readyWorkers") or 0)
    event: Obj = {"name": name, "namespace": namespace, "uid": obj["metadata"].get("uid"),
                  "phase": phase, "ready_workers": ready,
                  "scheduler_address": status.get("schedulerAddress"),
                  "dashboard_address": status.get("dashboardAddress")}
    if phase == cluster_status.PHASE_FAILED:
        reasons = "; ".join(c.get("message") or c.get("reason") or ""
                            for c in status.get("conditions") or [] if c.get("status") == "True")
        return {**event, "status": "failed",
                "message": f"DaskCluster {namespace}/{name} failed: {reasons or 'see its events'}"}
    if cluster_status.scheduler_ready(status) and ready >= min_ready_workers:
        return {**event, "status": "ready",
                "message": f"DaskCluster {namespace}/{name} is running with {ready} ready "
                           f"worker(s)"}
    where = phase or "not reconciled yet"
    if phase == cluster_status.PHASE_RUNNING and not cluster_status.scheduler_ready(status):
        where += " (scheduler not ready yet)"
    return {**event, "status": "waiting",
            "message": f"DaskCluster {namespace}/{name} is {where} "
                       f"with {ready}/{min_ready_workers} ready worker(s)"}


async def wait_for_cluster(client: kube.Client, *, namespace: str, name: str,
                           min_ready_workers: int = 0, deadline: float | None = None,
                           missing_ok: bool = True) -> Obj:
    """Wait until the cluster is ready or failed (or, unless ``missing_ok``, gone), or the
    ``deadline`` (epoch seconds) passes; returns one :func:`cluster_event` (``timeout`` when
    the deadline passed). Watches one object through a list-then-watch informer.

    >>> event = await wait_for_cluster(client, namespace="ns", name="shared")  # doctest: +SKIP
    >>> event["status"], event["scheduler_address"]
    ('ready', 'tcp://shared-scheduler.ns.svc.cluster.local:8786')
    """
    changes: asyncio.Queue[Obj | None] = asyncio.Queue()
    informer = kube.Informer(client, DASKCLUSTERS, namespace=namespace,
                             field_selector=f"metadata.name={name}")
    informer.on_change(lambda kind, obj, old: changes.put_nowait(
        None if kind == "DELETED" else obj))
    watcher = asyncio.create_task(informer.run(), name=f"watch-daskcluster-{name}")
    remaining = None if deadline is None else max(0.0, deadline - time.time())
    last = cluster_event(None, namespace=namespace, name=name)
    try:
        async with asyncio.timeout(remaining):
            await informer.synced.wait()
            obj = informer.get(namespace, name)
            while True:
                last = cluster_event(obj, namespace=namespace, name=name,
                                     min_ready_workers=min_ready_workers)
                if last["status"] in ("ready", "failed") or (
                        last["status"] == "missing" and not missing_ok):
                    return last
                obj = await changes.get()
    except TimeoutError:
        if deadline is not None and time.time() >= deadline - 0.001:
            return {**last, "status": "timeout",
                    "message": f"{last['message']}; gave up at the deadline"}
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def create_or_reuse_cluster(client: kube.Client, manifest: Obj, identity: TaskIdentity,
                                  *, namespace: str) -> tuple[Obj, bool]:
    """Create the cluster, labelled with the task's identity; returns ``(cluster, reused)``.

    A cluster of that name made by an earlier try of the same task is reused (a retry must not
    fail on its own leftovers); one made by anyone else raises :class:`ValueError`: adopting it
    would let this DAG's teardown delete someone else's cluster.
    """
    name = manifest["metadata"]["name"]
    body = {**manifest, "metadata": dict(manifest["metadata"])}
    body["metadata"]["namespace"] = namespace
    body["metadata"]["labels"] = {**(body["metadata"].get("labels") or {}),
                                  **identity.labels()}
    with contextlib.suppress(kube.Conflict):
        return await client.create(DASKCLUSTERS, namespace, body), False
    existing = await client.get(DASKCLUSTERS, namespace, name)
    if existing is None or existing["metadata"].get("deletionTimestamp"):
        raise RuntimeError(f"DaskCluster {namespace}/{name} is being deleted; retry once it "
                           "is gone")
    owner = (existing["metadata"].get("labels") or {}).get(LABEL_KEY)
    if owner != identity.key:
        raise ValueError(f"cluster_name: DaskCluster {namespace}/{name} already exists and was "
                         "not created by this task; choose another cluster_name, or delete it "
                         "first")
    return existing, True


async def delete_cluster(client: kube.Client, *, namespace: str, name: str,
                         wait_timeout: float | None = None) -> bool:
    """Delete the cluster (its Pods, Service and worker groups go with it); False if it was
    already gone. With ``wait_timeout``, also wait that long for the object to disappear and
    raise :class:`TimeoutError` if it does not."""
    deleted = await client.delete(DASKCLUSTERS, namespace, name, propagation="Foreground")
    if wait_timeout is not None:
        async with asyncio.timeout(wait_timeout):
            while await client.get(DASKCLUSTERS, namespace, name) is not None:
                await asyncio.sleep(DELETE_POLL)
    return deleted
