"""``DaskClusterTrigger``: waits in the triggerer for a DaskCluster to be ready.

The deferrable half of :class:`~dask_kube_jobs.airflow_provider.sensors.daskcluster.DaskClusterSensor`.
It runs :func:`~dask_kube_jobs.airflow_provider._clusterwait.wait_for_cluster`, the coroutine
``CreateDaskClusterOperator`` waits with too, and yields its one event. As for
``DaskJobTrigger``: only primitives are serialized (the connection id, never credentials), the
event loop is never blocked, and exactly one event is yielded whatever happens (``ready``,
``failed``, ``timeout`` at the absolute deadline, or ``error`` carrying the exception's text).
A cluster is shared: killing a task that waits for one never deletes it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from .._clusterwait import wait_for_cluster
from ..hooks.daskjob import DEFAULT_CONN_ID, DaskKubeJobsHook, connect, resolve_conn_id


class DaskClusterTrigger(BaseTrigger):
    """Fires once when the DaskCluster ``name`` in ``namespace`` is running with at least
    ``min_ready_workers`` ready workers, or has failed, or the ``deadline`` (seconds since the
    epoch) passed. A missing cluster is waited for: something else may create it later.
    ``conn_id`` is the old name of ``dask_kube_jobs_conn_id`` (deprecated; trigger rows
    serialized by 0.1.0 carry it)."""

    def __init__(self, *, name: str, namespace: str,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, min_ready_workers: int = 0,
                 deadline: float | None = None, conn_id: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.min_ready_workers = min_ready_workers
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "name": self.name, "namespace": self.namespace,
            "dask_kube_jobs_conn_id": self.dask_kube_jobs_conn_id,
            "min_ready_workers": self.min_ready_workers, "deadline": self.deadline,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("Waiting for DaskCluster %s/%s (at least %d ready workers)",
                      self.namespace, self.name, self.min_ready_workers)
        try:
            hook = DaskKubeJobsHook(self.dask_kube_jobs_conn_id)
            client = await connect(await hook.aget_target())
            try:
                event = await wait_for_cluster(
                    client, namespace=self.namespace, name=self.name,
                    min_ready_workers=self.min_ready_workers, deadline=self.deadline)
            finally:
                await client.close()
        except Exception as exc:  # one event, always: the sensor raises it in the task
            self.log.exception("Waiting for DaskCluster %s failed", self.name)
            event = {"status": "error", "name": self.name, "namespace": self.namespace,
                     "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(event)
