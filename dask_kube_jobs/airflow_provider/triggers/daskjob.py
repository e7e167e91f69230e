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
  task leaves no orphan (apache/airflow#36090).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from .._jobwait import POLL_INTERVAL, delete_job, wait_for_job
from ..hooks.daskjob import DEFAULT_CONN_ID, DaskKubeJobsHook, connect


class DaskJobTrigger(BaseTrigger):
    """Fires once when the DaskJob ``name`` in ``namespace`` ends (or is deleted, or the
    ``deadline``, in seconds since the epoch, passes).

    ``uid`` pins the job incarnation (a re-created job of the same name counts as deleted);
    ``startup_deadline`` (seconds since the epoch) fires a ``startup_timeout`` event if the
    runner has not started by then -- checked against the real state when it passes;
    ``follow_logs`` streams the runner's log into the task log while deferred;
    ``delete_on_kill`` deletes the job when the user kills the deferred task;
    ``poll_interval`` is the seconds between reads should RBAC forbid watching the job.
    """

    def __init__(self, *, name: str, namespace: str, conn_id: str = DEFAULT_CONN_ID,
                 uid: str | None = None, deadline: float | None = None,
                 startup_deadline: float | None = None, follow_logs: bool = True,
                 delete_on_kill: bool = True, poll_interval: float = POLL_INTERVAL) -> None:
        super().__init__()
        self.name = name
        self.namespace = namespace
        self.conn_id = conn_id
        self.uid = uid
        self.deadline = deadline
        self.startup_deadline = startup_deadline
        self.poll_interval = poll_interval
        self.follow_logs = follow_logs
        self.delete_on_kill = delete_on_kill

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "name": self.name, "namespace": self.namespace, "conn_id": self.conn_id,
            "uid": self.uid, "deadline": self.deadline,
            "startup_deadline": self.startup_deadline, "follow_logs": self.follow_logs,
            "delete_on_kill": self.delete_on_kill, "poll_interval": self.poll_interval,
        })

    async def _client(self) -> Any:
        return await connect(await DaskKubeJobsHook(self.conn_id).aget_target())

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
        except Exception as exc:  # one event, always: the operator raises it in the task
            self.log.exception("Waiting for DaskJob %s failed", self.name)
            event = {"status": "error", "name": self.name, "namespace": self.namespace,
                     "message": f"{type(exc).__name__}: {exc}"}
        yield TriggerEvent(event)

    async def on_kill(self) -> None:
        if not self.delete_on_kill:
            return
        client = await self._client()
        try:
            deleted = await delete_job(client, namespace=self.namespace, name=self.name,
                                       uid=self.uid)
        finally:
            await client.close()
        self.log.info("Task killed: DaskJob %s/%s %s", self.namespace, self.name,
                      "deleted" if deleted else "was already gone")
