"""When a waiting object's next timed pass comes, and what the runner is told to wait.

Settled objects sleep ``runtime.SETTLED`` between passes; a promise that falls due at a time
(a scheduler's pending or startup timeout, activeDeadlineSeconds) must bring the next pass no
later than the moment it is due, or the promise would be kept up to ten minutes late.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dask_kube_jobs.contract.times import fmt_time
from dask_kube_jobs.operator import builders, diagnosis
from dask_kube_jobs.operator.job import JobReconciler, pending_timeout
from dask_kube_jobs.operator.runtime import SETTLED

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.timezone.utc)


def ago(seconds: float) -> str:
    return fmt_time(NOW - dt.timedelta(seconds=seconds))


def scheduler(created_ago: float, *, status: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "c-scheduler", "creationTimestamp": ago(created_ago)},
            "spec": {"containers": [{"name": "scheduler"}]}, "status": status}


UNSCHEDULABLE = {"phase": "Pending", "conditions": [
    {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}]}


def running_unready(started_ago: float) -> dict[str, Any]:
    return {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
            "containerStatuses": [{"name": "scheduler", "ready": False, "restartCount": 0,
                                   "state": {"running": {"startedAt": ago(started_ago)}}}]}


def test_a_scheduler_that_cannot_start_is_looked_at_when_its_pending_timeout_runs_out() -> None:
    pod = scheduler(5, status=UNSCHEDULABLE)
    left = diagnosis.scheduler_problem_in(pod, now=NOW, startup_timeout=300, pending_timeout=20)
    assert left is not None and 14 <= left <= 15
    assert diagnosis.scheduler_problem(pod, now=NOW, startup_timeout=300, pending_timeout=20) is None
    due = NOW + dt.timedelta(seconds=left + 1)
    problem = diagnosis.scheduler_problem(pod, now=due, startup_timeout=300, pending_timeout=20)
    assert problem is not None and problem.reason == "SchedulerUnschedulable"


def test_a_scheduler_that_runs_unready_is_looked_at_when_its_startup_timeout_runs_out() -> None:
    pod = scheduler(200, status=running_unready(100))
    left = diagnosis.scheduler_problem_in(pod, now=NOW, startup_timeout=300, pending_timeout=20)
    assert left is not None and 199 <= left <= 200
    due = NOW + dt.timedelta(seconds=left + 1)
    problem = diagnosis.scheduler_problem(pod, now=due, startup_timeout=300, pending_timeout=20)
    assert problem is not None and problem.reason == "SchedulerNotReady"


def test_a_scheduler_whose_next_step_is_an_event_needs_no_timer() -> None:
    ready = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
             "containerStatuses": [{"name": "scheduler", "ready": True,
                                    "state": {"running": {"startedAt": ago(5)}}}]}
    for status in (ready, {"phase": "Pending"}, {"phase": "Failed"}):
        pod = scheduler(10, status=status)
        assert diagnosis.scheduler_problem_in(pod, now=NOW, startup_timeout=300,
                                              pending_timeout=20) is None, status


def job(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
            "metadata": {"name": "j", "namespace": "ns", "uid": "1234-5678"},
            "spec": {"job": {"spec": {"containers": [{"name": "runner", "image": "dask"}]}},
                     "cluster": {"spec": {}}, **spec}}


def test_a_running_job_is_looked_at_when_its_active_deadline_runs_out() -> None:
    obj = job(activeDeadlineSeconds=30)
    obj["status"] = {"jobStatus": "Running", "startTime": fmt_time(dt.datetime.now(dt.timezone.utc)
                                                                   - dt.timedelta(seconds=10))}
    reconciler = JobReconciler(None, obj)  # type: ignore[arg-type]  (no request is made)
    assert 19 <= reconciler.within_deadline(SETTLED) <= 21.5
    assert reconciler.within_deadline(2.0) == 2.0
    obj["status"]["jobStatus"] = "Failed"  # a finished job's deadline promises nothing more
    assert JobReconciler(None, obj).within_deadline(SETTLED) == SETTLED  # type: ignore[arg-type]
    assert JobReconciler(None, job()).within_deadline(SETTLED) == SETTLED  # type: ignore[arg-type]


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


def test_the_runner_is_told_to_wait_for_its_scheduler_unless_it_says_otherwise() -> None:
    env = env_of(builders.runner_pod(job(), 1, connect_timeout=380))
    assert env[builders.CONNECT_TIMEOUT_ENV] == "380s"
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://j-scheduler.ns.svc.cluster.local:8786"
    own = job()
    own["spec"]["job"]["spec"]["containers"][0]["env"] = [
        {"name": builders.CONNECT_TIMEOUT_ENV, "value": "5s"}]
    assert env_of(builders.runner_pod(own, 1, connect_timeout=380))[builders.CONNECT_TIMEOUT_ENV] == "5s"
    assert builders.CONNECT_TIMEOUT_ENV not in env_of(builders.runner_pod(job(), 1))


def test_the_runners_wait_outlasts_the_operators_verdict_on_its_scheduler() -> None:
    obj = job()
    obj["spec"]["cluster"]["spec"]["schedulerStartupTimeoutSeconds"] = 120
    waits = JobReconciler(None, obj).runner_connect_timeout()  # type: ignore[arg-type]
    assert waits > pending_timeout() + 120
