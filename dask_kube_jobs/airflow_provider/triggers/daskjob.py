"""``DaskJobTrigger``: waits in the triggerer for a DaskJob to finish, following its log.

It runs :func:`~dask_kube_jobs.airflow_provider._jobwait.wait_for_job`, the coroutine the
blocking operator runs too, and yields its one event. Shaped by the triggerer's rules:

* only primitives are serialized (job name, namespace, uid, connection id, an absolute
  deadline): the trigger row is stored in Airflow's database and rebuilt in whichever
  triggerer picks it up, so credentials stay in the connection, never in the trigger table;
* nothing blocks the event loop: the client is async, the one file write (an inline
  kubeconfig) happens in a thread, and log lines go to the logger, which the triggerer routes
  into the task's log while the task is deferred;
* watching, not polling: it polls (with GET, every ``poll_interval`` seconds, saying why in
  the task log) only when RBAC forbids watching the job;
* a startup deadline fires only after the real state, read when it passes, confirms that the
  runner has not started (a timer that ran out while no triggerer was running is no evidence);
* exactly one event, whatever happens: success, failed, deleted (a 404 is an answer, not a
  crash), timeout, startup_timeout, or ``error`` carrying the exception's text;
* ``on_kill`` (Airflow 3.3+: called only when a user kills, clears or marks the task, never
  when the trigger merely moves to another triggerer) deletes the job, so killing a deferred
  task leaves no orphan (apache/airflow#36090);
* below 3.3 the triggerer never calls ``on_kill``: it only cancels ``run()``, for a killed task
  and for a trigger that moves to another triggerer or a triggerer that shuts down alike. So
  on cancellation ``run()`` reads the task instance's state: no longer ``deferred`` means the
  user acted (killed, marked, cleared) and the job is deleted; still ``deferred`` means the
  trigger is merely moving and the job is kept. A state that cannot be read keeps the job: an
  orphan can be deleted later, a wrongly cancelled job cannot be undone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS, AIRFLOW_V_3_3_PLUS
from airflow.triggers.base import BaseTrigger, TriggerEvent

from ...asyncio import POLL_INTERVAL
from .._jobwait import delete_job, wait_for_job
from ..hooks.daskjob import DEFAULT_CONN_ID, DaskKubeJobsHook, connect, resolve_conn_id

CANCEL_CLEANUP_TIMEOUT = 30.0  # seconds a cancelled run() spends reading the state and deleting
DEFERRED = "deferred"
# cleanups still running after a second cancellation (a triggerer shutting down): referenced so
# the event loop does not drop them half-way
_cleanups: set[asyncio.Task[None]] = set()


class DaskJobTrigger(BaseTrigger):
    """Fires once when the DaskJob ``name`` in ``namespace`` ends (or is deleted, or the
    ``deadline``, in seconds since the epoch, passes).

    ``uid`` pins the job incarnation (a re-created job of the same name counts as deleted);
    ``startup_deadline`` (seconds since the epoch) fires a ``startup_timeout`` event if the
    runner has not started by then -- checked against the real state when it passes;
    ``follow_logs`` streams the runner's log into the task log while deferred;
    ``delete_on_kill`` deletes the job when the user kills the deferred task;
    ``poll_interval`` is the seconds between reads should RBAC forbid watching the job;
    ``conn_id`` is the old name of ``dask_kube_jobs_conn_id`` (deprecated; trigger rows
    serialized by 0.1.0 carry it).
    """

    def __init__(self, *, name: str, namespace: str,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, uid: str | None = None,
                 deadline: float | None = None, startup_deadline: float | None = None,
                 follow_logs: bool = True, delete_on_kill: bool = True,
                 poll_interval: float = POLL_INTERVAL, conn_id: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.uid = uid
        self.deadline = deadline
        self.startup_deadline = startup_deadline
        self.poll_interval = poll_interval
        self.follow_logs = follow_logs
        self.delete_on_kill = delete_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "name": self.name, "namespace": self.namespace,
            "dask_kube_jobs_conn_id": self.dask_kube_jobs_conn_id,
            "uid": self.uid, "deadline": self.deadline,
            "startup_deadline": self.startup_deadline, "follow_logs": self.follow_logs,
            "delete_on_kill": self.delete_on_kill, "poll_interval": self.poll_interval,
        })

    async def _client(self) -> Any:
        hook = DaskKubeJobsHook(self.dask_kube_jobs_conn_id)
        return await connect(await hook.aget_target())

    def _log_line(self, line: str) -> None:
        self.log.info("[%s] %s", self.name, line)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("Waiting for DaskJob %s/%s", self.namespace, self.name)
        try:
            client = await self._client()
            try:
                event = await wait_for_job(
                    client, namespace=self.namespace, name=self.name, uid=self.uid,
                    deadline=self.deadline, startup_deadline=self.startup_deadline,
                    on_log=self._log_line if self.follow_logs else None,
                    notice=self.log.warning, poll_interval=self.poll_interval)
            finally:
                await client.close()
        except asyncio.CancelledError:
            if self.delete_on_kill and not AIRFLOW_V_3_3_PLUS:
                await self._cleanup_after_cancel()
            raise
        except Exception as exc:  # one event, always: the operator raises it in the task
            self.log.exception("Waiting for DaskJob %s failed", self.name)
            event = {"status": "error", "name": self.name, "namespace": self.namespace,
                     "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(event)

    async def _cleanup_after_cancel(self) -> None:
        """Below Airflow 3.3: delete the job if the cancellation came from the user. Runs in
        its own task, shielded, so that a second cancellation (the triggerer shutting down)
        neither interrupts a delete half-way nor holds this run() up; bounded in time."""
        cleanup = asyncio.ensure_future(self._delete_if_task_left_deferred())
        _cleanups.add(cleanup)
        cleanup.add_done_callback(_cleanups.discard)
        try:
            await asyncio.shield(cleanup)
        except asyncio.CancelledError:
            self.log.warning("Cancelled again while deciding about DaskJob %s/%s; the decision "
                             "continues in the background", self.namespace, self.name)

    async def _delete_if_task_left_deferred(self) -> None:
        try:
            async with asyncio.timeout(CANCEL_CLEANUP_TIMEOUT):
                state = await self._task_state()
                if state == DEFERRED:
                    self.log.info("Trigger cancelled while the task is still deferred (moving "
                                  "to another triggerer, or this one is stopping): DaskJob "
                                  "%s/%s keeps running", self.namespace, self.name)
                    return
                self.log.info("Task is %s, no longer deferred: deleting DaskJob %s/%s",
                              state or "gone", self.namespace, self.name)
                await self._delete()
        except Exception:
            self.log.exception("Trigger cancelled, but the task's state could not be read or "
                               "DaskJob %s/%s not deleted; the job is kept (delete it with "
                               "DeleteDaskJobOperator or kubectl if the task was killed)",
                               self.namespace, self.name)

    async def _task_state(self) -> str | None:
        """The state of the task instance this trigger waits for, read now; None when its row
        is gone (the run was deleted, so the job is nobody's). Raises when it cannot tell."""
        ti = getattr(self, "task_instance", None)  # set by the triggerer on every trigger
        if ti is None:
            raise RuntimeError("the triggerer set no task_instance on the trigger")
        map_index = getattr(ti, "map_index", -1)
        if map_index is None:
            map_index = -1
        if not AIRFLOW_V_3_0_PLUS:  # Airflow 2: the triggerer has the metadata DB
            from airflow.models.taskinstance import TaskInstance

            row = await asyncio.to_thread(
                TaskInstance.get_task_instance, dag_id=ti.dag_id, run_id=ti.run_id,
                task_id=ti.task_id, map_index=map_index)
            return None if row is None else _state_str(row.state)
        # Airflow 3.0-3.2: no DB access; the triggerer's supervisor asks the execution API
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = await asyncio.to_thread(
            RuntimeTaskInstance.get_task_states, dag_id=ti.dag_id, task_ids=[ti.task_id],
            run_ids=[ti.run_id], map_index=map_index)
        of_run = (states or {}).get(ti.run_id) or {}
        # mapped task instances are keyed "<task_id>_<map_index>", others by their task_id
        for key in ((f"{ti.task_id}_{map_index}", ti.task_id) if map_index >= 0
                    else (ti.task_id,)):
            if key in of_run:
                return _state_str(of_run[key])
        return None

    async def _delete(self) -> bool:
        client = await self._client()
        try:
            deleted = await delete_job(client, namespace=self.namespace, name=self.name,
                                       uid=self.uid)
        finally:
            await client.close()
        self.log.info("Task killed: DaskJob %s/%s %s", self.namespace, self.name,
                      "deleted" if deleted else "was already gone")
        return deleted

    async def on_kill(self) -> None:
        if self.delete_on_kill:
            await self._delete()


def _state_str(state: Any) -> str | None:
    """A TaskInstanceState (a str enum) or plain string as its value."""
    return None if state is None else str(getattr(state, "value", state))
