"""``DaskClusterSensor``: wait for a DaskCluster to be ready, for shared-cluster pipelines.

A long-lived cluster shared by several tasks (made by ``CreateDaskClusterOperator``, another
DAG, or a person) is ready when the operator reports its scheduler ready (phase ``Running``
and condition ``SchedulerReady``) with at least ``min_ready_workers`` ready workers. The sensor returns the cluster's addresses
(the XCom the using tasks read). A cluster that does not exist yet is waited for; a ``Failed``
one fails the task at once, with the reason from its conditions. Like every sensor here it
only watches: it never creates, scales or deletes the cluster.

Poke and reschedule modes read the cluster once per poke; deferrable mode runs
``DaskClusterTrigger``, which watches it. Both judge through ``_clusterwait.cluster_event`` and
end in :meth:`DaskClusterSensor.finish`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from ...asyncio import ClusterNotFoundError, get_cluster
from .._clusterwait import cluster_event
from ..hooks.daskjob import (
    DEFAULT_CONN_ID,
    DaskKubeJobsHook,
    connect,
    default_namespace,
    resolve_conn_id,
)
from ..triggers.daskcluster import DaskClusterTrigger
from .daskjob import TRIGGER_TIMEOUT_MARGIN, check_name

CLUSTER_XCOM_FIELDS = ("name", "namespace", "scheduler_address", "dashboard_address",
                       "ready_workers")


class DaskClusterSensor(BaseSensorOperator):
    """Wait until the DaskCluster ``cluster_name`` is running; return its addresses.

    :param cluster_name: templated, e.g. ``"{{ ti.xcom_pull(task_ids='create')['name'] }}"``.
    :param namespace: templated; default the connection's, else the kubeconfig's.
    :param min_ready_workers: also wait for this many ready workers (default 0: the
        scheduler alone makes the cluster usable; workers join as they start).
    :param dask_kube_jobs_conn_id: a ``dask_kube_jobs`` connection (default
        ``dask_kube_jobs_default``); ``conn_id``, its old name, still works for one
        release, with a deprecation warning.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).

    Returns ``{"name", "namespace", "scheduler_address", "dashboard_address",
    "ready_workers"}``; the addresses are the in-cluster ones the operator publishes.

    >>> DaskClusterSensor(task_id="ready", cluster_name="shared", min_ready_workers=2)  # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("cluster_name", "namespace")
    ui_color = "#fde3b8"

    def __init__(self, *, cluster_name: str, namespace: str | None = None,
                 min_ready_workers: int = 0,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                    fallback=False),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cluster_name, str) or not cluster_name.strip():
            raise ValueError("DaskClusterSensor: cluster_name= must be the DaskCluster's name "
                             "(or a template rendering to it)")
        if not isinstance(min_ready_workers, int) or min_ready_workers < 0:
            raise ValueError(f"DaskClusterSensor: min_ready_workers must be an int >= 0 (got "
                             f"{min_ready_workers!r})")
        self.cluster_name = cluster_name
        self.namespace = namespace
        self.min_ready_workers = min_ready_workers
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.deferrable = deferrable

    def _name(self) -> str:
        return check_name("DaskClusterSensor", "cluster_name", self.cluster_name)

    async def _read(self) -> dict[str, Any]:
        target = await DaskKubeJobsHook(self.dask_kube_jobs_conn_id).aget_target()
        client = await connect(target)
        try:
            namespace = str(self.namespace or default_namespace(target, client))
            try:
                obj: dict[str, Any] | None = (await get_cluster(self._name(), namespace,
                                                                client=client)).raw
            except ClusterNotFoundError:
                obj = None
        finally:
            await client.close()
        return cluster_event(obj, namespace=namespace, name=self._name(),
                             min_ready_workers=self.min_ready_workers)

    def _check(self) -> tuple[str, PokeReturnValue]:
        event = asyncio.run(self._read())
        if event["status"] in ("waiting", "missing"):
            self.log.info("%s", event["message"])
            return event["namespace"], PokeReturnValue(False)
        return event["namespace"], PokeReturnValue(True, self.finish(event))

    def poke(self, context: Any) -> PokeReturnValue:
        return self._check()[1]

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        namespace, done = self._check()
        if done.is_done:
            return done.xcom_value
        self.defer(
            trigger=DaskClusterTrigger(name=self._name(), namespace=namespace,
                                       dask_kube_jobs_conn_id=self.dask_kube_jobs_conn_id,
                                       min_ready_workers=self.min_ready_workers,
                                       deadline=time.time() + float(self.timeout)),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + TRIGGER_TIMEOUT_MARGIN))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resumed after the trigger fired: the same ending as a poke."""
        return self.finish(event)

    def finish(self, event: dict[str, Any]) -> dict[str, Any]:
        """The cluster's addresses when ready; an exception for anything else."""
        status = event.get("status")
        self.log.info("%s", event.get("message"))
        if status == "ready":
            return {key: event.get(key) for key in CLUSTER_XCOM_FIELDS}
        if status == "timeout":
            message = f"{event.get('message')} (sensor timeout {self.timeout}s)"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise AirflowException(str(event.get("message")))
