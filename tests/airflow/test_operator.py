"""DaskJobOperator outside a DAG run: reattach after a worker crash, a later try never reusing a
finished job, kill deleting the job, argument checks. Real jobs on the local control plane."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from dask_kube_jobs.airflow_provider.operators.daskjob import DaskJobOperator
from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger

from .helpers import FakeTI, jobs_of

pytestmark = pytest.mark.timeout(240)

SLOW = "import time\nfrom dask_kube_jobs import set_result\n" \
       "print('working', flush=True)\ntime.sleep(6)\nset_result({'done': True})\n"


def jobs(plane: Any, namespace: str, task_id: str) -> list[dict[str, Any]]:
    return asyncio.run(jobs_of(plane.kubeconfig, namespace, task_id))


def test_a_retry_after_a_worker_crash_reattaches_instead_of_duplicating(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    # Try 1 submits and defers; its worker then "dies": the trigger never runs.
    first = DaskJobOperator(task_id="crashy", script=SLOW, n_workers=1, deferrable=True,
                            on_finish_action="keep")
    ti1 = FakeTI(task_id="crashy", try_number=1)
    with pytest.raises(TaskDeferred) as deferred:
        first.execute({"ti": ti1})
    assert isinstance(deferred.value.trigger, DaskJobTrigger)
    assert ti1.xcoms["job_name"] == deferred.value.trigger.name
    # Try 2 runs blocking on another worker: it must find try 1's running job.
    second = DaskJobOperator(task_id="crashy", script=SLOW, n_workers=1, deferrable=False,
                             on_finish_action="keep")
    ti2 = FakeTI(task_id="crashy", try_number=2)
    assert second.execute({"ti": ti2}) == {"done": True}
    assert ti2.xcoms["job_name"] == ti1.xcoms["job_name"]
    assert len(jobs(local_control_plane, namespace, "crashy")) == 1
    # Try 3 (the user cleared the task): the finished job is not reused; a new one runs.
    third = DaskJobOperator(task_id="crashy", script=SLOW, n_workers=1, deferrable=False,
                            on_finish_action="keep")
    ti3 = FakeTI(task_id="crashy", try_number=3)
    assert third.execute({"ti": ti3}) == {"done": True}
    assert ti3.xcoms["job_name"] != ti1.xcoms["job_name"]
    assert len(jobs(local_control_plane, namespace, "crashy")) == 2


def test_the_same_try_executing_twice_makes_one_job(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    results = []
    for _ in range(2):
        op = DaskJobOperator(task_id="twice", script=SLOW, n_workers=1, deferrable=False,
                             on_finish_action="keep")
        results.append(op.execute({"ti": FakeTI(task_id="twice", try_number=1)}))
    assert results == [{"done": True}] * 2
    assert len(jobs(local_control_plane, namespace, "twice")) == 1


def test_on_kill_deletes_the_running_job(local_control_plane: Any, namespace: str,
                                         dkj_connection: Any) -> None:
    op = DaskJobOperator(task_id="killed", script="import time; time.sleep(300)", n_workers=1,
                         deferrable=False)
    outcome: list[BaseException | Any] = []

    def run() -> None:
        try:
            outcome.append(op.execute({"ti": FakeTI(task_id="killed")}))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(200):
        if op._job is not None:
            break
        time.sleep(0.1)
    assert op._job is not None
    time.sleep(1)
    op.on_kill()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(outcome[0], AirflowException) and "deleted" in str(outcome[0])
    for _ in range(100):
        if not jobs(local_control_plane, namespace, "killed"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "killed") == []


def test_a_successful_job_is_deleted_by_default(local_control_plane: Any, namespace: str,
                                               dkj_connection: Any) -> None:
    op = DaskJobOperator(task_id="tidy", script="print('hi')", n_workers=1, deferrable=False)
    assert op.execute({"ti": FakeTI(task_id="tidy")}) is None
    for _ in range(100):
        if not jobs(local_control_plane, namespace, "tidy"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "tidy") == []


@pytest.mark.parametrize("kwargs", [
    pytest.param({}, id="nothing-to-run"),
    pytest.param({"manifest": {"kind": "DaskJob"}, "script": "print(1)"}, id="manifest-and-keywords"),
    pytest.param({"script": "print(1)", "on_finish_action": "explode"}, id="bad-finish-action"),
])
def test_contradictory_arguments_are_refused_at_parse_time(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DaskJobOperator(task_id="bad", **kwargs)


def test_the_deferrable_default_follows_airflow_config() -> None:
    assert DaskJobOperator(task_id="d", script="print(1)").deferrable is False
