"""``DaskJobSensor``: wait for a DaskJob, by name, to finish; return its result.

For the "submit, wait elsewhere, delete as a teardown" pattern: a ``DaskJobOperator`` with
``wait_for_completion=False`` starts the job, this sensor waits (poking, rescheduling, or
deferred to the triggerer) and a ``DeleteDaskJobOperator`` cleans up. A sensor only watches:
it never deletes a job, not when the job fails, not when the sensor times out and not when the
task is killed (its trigger is built with ``delete_on_kill=False``); deleting is the
teardown's job, which runs whatever happened.

One ending for every mode (STYLE.md, Airflow): a poke turns the job into the same event the
trigger yields (``_jobwait.outcome``), and :meth:`DaskJobSensor.finish` alone turns an event into
the return value (the job's ``status.result``, also the XCom) or an exception: ``DaskJobFailed``
for a failed job, ``AirflowSensorTimeout`` at the sensor's ``timeout``, ``AirflowException``
for a job that does not exist or was deleted while being waited for.
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

from ...asyncio import get_job
from ...errors import DaskJobFailed, JobNotFound
from .._jobwait import is_terminal, outcome
from ..hooks.daskjob import (
    DEFAULT_CONN_ID,
    DaskKubeJobsHook,
    connect,
    default_namespace,
    resolve_conn_id,
)
from ..triggers.daskjob import DaskJobTrigger

TRIGGER_TIMEOUT_MARGIN = 300.0  # seconds past our own deadline before Airflow's trigger timeout


def check_name(owner: str, field: str, value: Any) -> str:
    """A rendered name field, or an error saying what to pass."""
    name = str(value or "").strip()
    if not name or name == "None":
        raise AirflowException(f"{owner}: {field} rendered to {name!r}; give the object's name "
                               "(or a template rendering to it, e.g. an XCom of the task that "
                               "created it)")
    return name


class DaskJobSensor(BaseSensorOperator):
    """Wait for the DaskJob ``job_name`` to end; return its result (``status.result``).

    :param job_name: the job's name (templated), typically
        ``"{{ ti.xcom_pull(task_ids='submit', key='job_name') }}"``.
    :param namespace: templated; default the connection's, else the kubeconfig's.
    :param dask_kube_jobs_conn_id: a ``dask_kube_jobs`` connection (default
        ``dask_kube_jobs_default``); ``conn_id``, its old name, still works for one
        release, with a deprecation warning.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``);
        otherwise ``mode`` (``poke`` or ``reschedule``) and ``poke_interval`` apply.
    :param follow_logs: while deferred, stream the runner's log into this task's log.

    >>> DaskJobSensor(task_id="wait", deferrable=True,                      # doctest: +SKIP
    ...     job_name="{{ ti.xcom_pull(task_ids='submit', key='job_name') }}")
    """

    template_fields: Sequence[str] = ("job_name", "namespace")
    ui_color = "#fde3b8"

    def __init__(self, *, job_name: str, namespace: str | None = None,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                    fallback=False),
                 follow_logs: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(job_name, str) or not job_name.strip():
            raise ValueError("DaskJobSensor: job_name= must be the DaskJob's name (or a "
                             "template rendering to it)")
        self.job_name = job_name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.deferrable = deferrable
        self.follow_logs = follow_logs

    async def _read(self) -> tuple[str, dict[str, Any] | None]:
        target = await DaskKubeJobsHook(self.dask_kube_jobs_conn_id).aget_target()
        client = await connect(target)
        try:
            namespace = str(self.namespace or default_namespace(target, client))
            try:
                return namespace, (await get_job(self._name(), namespace, client=client)).raw
            except JobNotFound:
                return namespace, None
        finally:
            await client.close()

    def _name(self) -> str:
        return check_name("DaskJobSensor", "job_name", self.job_name)

    def _check(self) -> tuple[str, PokeReturnValue]:
        namespace, job = asyncio.run(self._read())
        name = self._name()
        if job is None:
            return namespace, PokeReturnValue(True, self.finish({
                "status": "deleted", "name": name, "namespace": namespace,
                "message": f"DaskJob {name} does not exist"}))
        if not is_terminal(job):
            self.log.info("DaskJob %s/%s is %s", namespace, name,
                          (job.get("status") or {}).get("jobStatus") or "not started yet")
            return namespace, PokeReturnValue(False)
        return namespace, PokeReturnValue(True, self.finish(outcome(job)))

    def poke(self, context: Any) -> PokeReturnValue:
        return self._check()[1]

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            return super().execute(context)
        namespace, done = self._check()  # already over: no need to defer at all
        if done.is_done:
            return done.xcom_value
        self.defer(
            trigger=DaskJobTrigger(name=self._name(), namespace=namespace,
                                   dask_kube_jobs_conn_id=self.dask_kube_jobs_conn_id,
                                   deadline=time.time() + float(self.timeout),
                                   follow_logs=self.follow_logs, delete_on_kill=False),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout) + TRIGGER_TIMEOUT_MARGIN))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resumed after the trigger fired: the same ending as a poke."""
        if event.get("log_tail"):
            self.log.info("Last lines of the runner's log (status.logTail):\n%s",
                          event["log_tail"])
        return self.finish(event)

    def finish(self, event: dict[str, Any]) -> Any:
        """The job's result for a successful job; an exception for anything else."""
        status, name, namespace = event.get("status"), event.get("name"), event.get("namespace")
        self.log.info("DaskJob %s/%s: %s (%s)", namespace, name, status,
                      event.get("phase") or event.get("message"))
        if status == "success":
            return event.get("result")
        if status == "failed":
            raise DaskJobFailed(event.get("exit_code"), event.get("reason"),
                                event.get("message"), event.get("log_tail"), str(name),
                                namespace=str(namespace))
        if status == "timeout":
            message = f"DaskJob {namespace}/{name} still runs after {self.timeout}s"
            if self.soft_fail:
                raise AirflowSkipException(message)
            raise AirflowSensorTimeout(message)
        raise AirflowException(f"DaskJob {namespace}/{name}: {event.get('message')}")
