"""Cancelling a running DaskJobTrigger, as the triggerer does, against the local control plane.

Below Airflow 3.3 a triggerer only cancels ``run()`` -- for a task the user killed, marked or
cleared, and for a trigger that moves to another triggerer alike -- so the trigger reads the
task instance's state from Airflow's metadata database (a real row here, SQLite): the job goes
when the task is no longer deferred and stays while it still is. From 3.3 the triggerer calls
``on_kill`` for user actions only, so a cancellation alone must never delete. Each leg of the
CI (3.x in /work/venv, 2.11 in its own venv) asserts what its Airflow must do.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_3_PLUS

from dask_kube_jobs import kube
from dask_kube_jobs.airflow_provider.triggers import daskjob as trigger_module
from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger
from dask_kube_jobs.contract.api_resources import DASKJOBS
from dask_kube_jobs.spec import make_job_spec

from .helpers import FakeTI, create_job

pytestmark = pytest.mark.timeout(180)

SLEEPER = "import time\nprint('runner up', flush=True)\ntime.sleep(300)\n"


def make_task_instance_row(dag_id: str, run_id: str, task_id: str) -> Callable[[str], None]:
    """Airflow 2.11: a real DAG run with one task instance in the metadata DB; returns a
    function that sets that row's state (what the UI's "mark failed" or the scheduler does)."""
    from airflow.models.dag import DAG
    from airflow.models.taskinstance import TaskInstance
    from airflow.operators.empty import EmptyOperator
    from airflow.utils import timezone
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunType

    now = timezone.utcnow()
    dag = DAG(dag_id, schedule=None, start_date=now)
    EmptyOperator(task_id=task_id, dag=dag)
    with create_session() as session:
        dag.create_dagrun(state=DagRunState.RUNNING, run_id=run_id, execution_date=now,
                          data_interval=(now, now), run_type=DagRunType.MANUAL,
                          session=session)

    def set_state(state: str) -> None:
        with create_session() as session:
            ti = session.query(TaskInstance).filter_by(
                dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=-1).one()
            ti.state = state

    return set_state


async def job_state(kubeconfig: str, namespace: str, name: str) -> str:
    """``running``, ``deleting`` (marked for deletion) or ``gone``."""
    client = await kube.Client.connect(kubeconfig)
    try:
        obj = await client.get(DASKJOBS, namespace, name)
    finally:
        await client.close()
    if obj is None:
        return "gone"
    return "deleting" if obj["metadata"].get("deletionTimestamp") else "running"


async def cancel_while_waiting(trigger: DaskJobTrigger, kubeconfig: str, namespace: str
                               ) -> None:
    """Run the trigger until it is watching the job's runner, then cancel it as the triggerer
    does; the cancellation must come out of ``run()`` (no event instead of it)."""
    events: list[Any] = []

    async def drain() -> None:
        async for event in trigger.run():
            events.append(event)

    task = asyncio.create_task(drain())
    await asyncio.sleep(3)  # connected, watching, following the runner's log
    assert not task.done() and await job_state(kubeconfig, namespace, trigger.name) == "running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    assert events == []


@pytest.mark.parametrize("ti_state", ["failed", "deferred"])
async def test_a_cancelled_trigger_deletes_the_job_only_when_its_airflow_says_so(
        ti_state: str, airflow_db: Path, local_control_plane: Any, namespace: str,
        dkj_connection: Any) -> None:
    kubeconfig = local_control_plane.kubeconfig
    name = f"cancel-{ti_state}"
    job = await create_job(kubeconfig, namespace,
                           make_job_spec(name, script=SLEEPER, n_workers=0))
    ti = FakeTI(dag_id=f"cancel_{uuid.uuid4().hex[:8]}", task_id="wait", run_id=f"run-{name}")
    trigger = DaskJobTrigger(name=name, namespace=namespace, uid=job["metadata"]["uid"])
    trigger.task_instance = ti  # what the triggerer sets on every trigger it runs
    if not AIRFLOW_V_3_3_PLUS:
        set_state = await asyncio.to_thread(make_task_instance_row, ti.dag_id, ti.run_id,
                                            ti.task_id)
        # "failed": the user marked the deferred task failed (or killed it) and the triggerer
        # cancelled its trigger; "deferred": the trigger moves to another triggerer
        await asyncio.to_thread(set_state, ti_state)

    await cancel_while_waiting(trigger, kubeconfig, namespace)
    after_cancel = await job_state(kubeconfig, namespace, name)

    if not AIRFLOW_V_3_3_PLUS:
        if ti_state == "deferred":
            assert after_cancel == "running", "a trigger on its way to another triggerer " \
                "deleted the job"
        else:
            assert after_cancel in ("deleting", "gone"), "the task was marked failed, yet " \
                "cancelling its trigger left the job running (an orphan)"
        return
    # 3.3+: a cancellation is never a reason to delete (whatever the task's state, the
    # triggerer calls on_kill when the user acted); on_kill deletes.
    assert after_cancel == "running", f"3.3+: a cancellation deleted the job ({after_cancel})"
    await trigger.on_kill()
    assert await job_state(kubeconfig, namespace, name) in ("deleting", "gone")


async def test_a_second_cancellation_does_not_stop_the_delete_half_way(
        airflow_db: Path, local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    """A triggerer that shuts down right after cancelling a killed task's trigger cancels it
    again while it is deciding: run() ends at once, the decision and delete finish anyway."""
    kubeconfig = local_control_plane.kubeconfig
    name = "cancel-twice"
    job = await create_job(kubeconfig, namespace,
                           make_job_spec(name, script=SLEEPER, n_workers=0))
    ti = FakeTI(dag_id=f"cancel_{uuid.uuid4().hex[:8]}", task_id="wait", run_id="run-twice")
    trigger = DaskJobTrigger(name=name, namespace=namespace, uid=job["metadata"]["uid"])
    trigger.task_instance = ti
    if not AIRFLOW_V_3_3_PLUS:
        set_state = await asyncio.to_thread(make_task_instance_row, ti.dag_id, ti.run_id,
                                            ti.task_id)
        await asyncio.to_thread(set_state, "failed")
    task = asyncio.create_task(trigger.run().__anext__())
    await asyncio.sleep(3)
    assert not task.done()
    task.cancel()
    for _ in range(100):  # until run() is inside its shielded cleanup (below 3.3)
        if trigger_module._cleanups or task.done():
            break
        await asyncio.sleep(0.01)
    background = set(trigger_module._cleanups)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 60)
    if AIRFLOW_V_3_3_PLUS:
        assert background == set()
        assert await job_state(kubeconfig, namespace, name) == "running"
        return
    assert len(background) == 1, "run() did not clean up in a task of its own"
    await asyncio.wait_for(asyncio.gather(*background), 60)
    assert await job_state(kubeconfig, namespace, name) in ("deleting", "gone")


async def test_an_unreadable_task_state_keeps_the_job(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    """No task instance to ask about (the triggerer always sets one; a trigger run some other
    way does not): the safe side is to keep the job, on every Airflow."""
    kubeconfig = local_control_plane.kubeconfig
    job = await create_job(kubeconfig, namespace,
                           make_job_spec("cancel-unknown", script=SLEEPER, n_workers=0))
    trigger = DaskJobTrigger(name="cancel-unknown", namespace=namespace,
                             uid=job["metadata"]["uid"])
    trigger.task_instance = None  # type: ignore[assignment]
    await cancel_while_waiting(trigger, kubeconfig, namespace)
    assert await job_state(kubeconfig, namespace, "cancel-unknown") == "running"
