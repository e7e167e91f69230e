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

from ..asyncio import (
    AsyncDaskClusterHandle,
    ClusterExistsError,
    ClusterNotFoundError,
    ClusterStatus,
    create_cluster,
)
from ._identity import LABEL_KEY, TaskIdentity

Obj = dict[str, Any]


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
    st = ClusterStatus.from_cluster(obj)
    event: Obj = {"name": name, "namespace": namespace, "uid": obj["metadata"].get("uid"),
                  "phase": st.phase, "ready_workers": st.ready_workers,
                  "scheduler_address": st.scheduler_address,
                  "dashboard_address": st.dashboard_address}
    if st.failed:
        return {**event, "status": "failed",
                "message": f"DaskCluster {namespace}/{name} failed: "
                           f"{st.problem() or 'see its events'}"}
    if st.ready(min_ready_workers):
        return {**event, "status": "ready",
                "message": f"DaskCluster {namespace}/{name} is running with "
                           f"{st.ready_workers} ready worker(s)"}
    return {**event, "status": "waiting",
            "message": f"DaskCluster {namespace}/{name} is {st.describe(min_ready_workers)}"}


async def wait_for_cluster(client: Any, *, namespace: str, name: str,
                           min_ready_workers: int = 0, deadline: float | None = None,
                           missing_ok: bool = True) -> Obj:
    """Wait until the cluster is ready or failed (or, unless ``missing_ok``, gone), or the
    ``deadline`` (epoch seconds) passes; returns one :func:`cluster_event` (``timeout`` when
    the deadline passed). Watches the one object through the cluster API.

    >>> event = await wait_for_cluster(client, namespace="ns", name="shared")  # doctest: +SKIP
    >>> event["status"], event["scheduler_address"]
    ('ready', 'tcp://shared-scheduler.ns.svc.cluster.local:8786')
    """
    handle = await AsyncDaskClusterHandle.from_name(name, namespace, client=client)
    remaining = None if deadline is None else max(0.0, deadline - time.time())
    last = cluster_event(None, namespace=namespace, name=name)
    try:
        async with asyncio.timeout(remaining), \
                contextlib.aclosing(handle.changes()) as changes:
            async for obj in changes:
                last = cluster_event(obj, namespace=namespace, name=name,
                                     min_ready_workers=min_ready_workers)
                if last["status"] in ("ready", "failed") or (
                        last["status"] == "missing" and not missing_ok):
                    return last
    except TimeoutError:
        if deadline is not None and time.time() >= deadline - 0.001:
            return {**last, "status": "timeout",
                    "message": f"{last['message']}; gave up at the deadline"}
        raise
    raise AssertionError("the watch of a DaskCluster ended")  # pragma: no cover


async def create_or_reuse_cluster(client: Any, manifest: Obj, identity: TaskIdentity,
                                  *, namespace: str) -> tuple[Obj, bool]:
    """Create the cluster, labelled with the task's identity; returns ``(cluster, reused)``.

    A cluster of that name made by an earlier try of the same task is reused (a retry must not
    fail on its own leftovers); one made by anyone else raises :class:`ValueError`: adopting it
    would let this DAG's teardown delete someone else's cluster.
    """
    name = manifest["metadata"]["name"]
    try:
        created = await create_cluster(manifest, namespace=namespace, labels=identity.labels(),
                                       client=client)
        return created.raw, False
    except ClusterExistsError:
        pass
    handle = await AsyncDaskClusterHandle.from_name(name, namespace, client=client)
    try:
        existing: Obj | None = await handle.refresh()
    except ClusterNotFoundError:
        existing = None
    if existing is None or existing["metadata"].get("deletionTimestamp"):
        raise RuntimeError(f"DaskCluster {namespace}/{name} is being deleted; retry once it "
                           "is gone")
    owner = (existing["metadata"].get("labels") or {}).get(LABEL_KEY)
    if owner != identity.key:
        raise ValueError(f"cluster_name: DaskCluster {namespace}/{name} already exists and was "
                         "not created by this task; choose another cluster_name, or delete it "
                         "first")
    return existing, True


async def delete_cluster(client: Any, *, namespace: str, name: str,
                         wait_timeout: float | None = None) -> bool:
    """Delete the cluster (its Pods, Service and worker groups go with it, first: a foreground
    delete); False if it was already gone. With ``wait_timeout``, also wait that long for the
    object to disappear and raise :class:`TimeoutError` if it does not."""
    handle = await AsyncDaskClusterHandle.from_name(name, namespace, client=client)
    return await handle.delete(wait=wait_timeout is not None, timeout=wait_timeout or 0.0)
