"""The runner starts with its cluster: its Client() waits for the scheduler, and a scheduler
that never comes up still ends the job with the scheduler's reason, not the runner's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from dask_kube_jobs.contract.times import parse_time
from dask_kube_jobs.local.testing import Kubectl
from dask_kube_jobs.operator.builders import CONNECT_TIMEOUT_ENV

from .jobs import daskjob
from .test_daskjob import apply, job_done, wait_for
from .test_failures import failed_with

pytestmark = pytest.mark.timeout(180)

SLEEP = 5
SLOW_SCHEDULER = ["python", "-c", f"import os, time; time.sleep({SLEEP}); "
                  "os.execvp('dask', ['dask', 'scheduler'])"]


def runner_of(kubectl: Kubectl, job: str) -> dict[str, Any]:
    [pod] = kubectl("get", "pods", "-l", f"dask.org/job-name={job},dask.org/component=job-runner",
                    "-o", "json").json()["items"]
    return pod


def test_the_runner_starts_with_the_cluster_and_its_client_waits_for_the_scheduler(
        kubectl: Kubectl) -> None:
    manifest = daskjob("eager", """
        from dask.distributed import Client
        with Client() as client:  # no address, no timeout: the injected configuration waits
            print("answer", client.run_on_scheduler(lambda: 42))
    """, workers=0)
    manifest["spec"]["cluster"]["spec"]["scheduler"]["spec"]["containers"][0]["args"] = SLOW_SCHEDULER
    apply(kubectl, manifest)
    # The runner is made while the scheduler still sleeps: before it can be ready.
    wait_for(kubectl, "daskjob", "eager",
             lambda o: (o.get("status") or {}).get("jobRunnerPodName"), timeout=60)
    runner = runner_of(kubectl, "eager")
    scheduler = kubectl("get", "pod", "eager-scheduler", "-o", "json").json()
    [state] = [cs["state"] for cs in scheduler["status"].get("containerStatuses") or [{"state": {}}]]
    started = parse_time((state.get("running") or {}).get("startedAt"))
    created = parse_time(runner["metadata"]["creationTimestamp"])
    # (timestamps are whole seconds: the scheduler listens no sooner than SLEEP after it started)
    assert created is not None and (started is None or
                                    created <= started + dt.timedelta(seconds=SLEEP)), (created, state)
    env = {e["name"]: e.get("value") for e in runner["spec"]["containers"][0]["env"]}
    assert env[CONNECT_TIMEOUT_ENV].endswith("s") and float(env[CONNECT_TIMEOUT_ENV][:-1]) > 300

    job = wait_for(kubectl, "daskjob", "eager", job_done, timeout=120)
    assert job["status"]["jobStatus"] == "Successful", job["status"]
    assert job["status"]["attempts"] == 1  # its Client() waited: no failed attempt, no retry
    assert "answer 42" in kubectl("logs", job["status"]["jobRunnerPodName"]).stdout


def test_a_scheduler_that_never_gets_ready_fails_the_job_with_its_reason_not_the_runners(
        kubectl: Kubectl) -> None:
    # The user's own, short connect timeout is kept: the runner gives up long before the
    # scheduler's startup timeout, and the job still ends with the scheduler's reason.
    manifest = daskjob("impatient", "from dask.distributed import Client; Client()", workers=0,
                       env=[{"name": CONNECT_TIMEOUT_ENV, "value": "1s"}])
    cluster = manifest["spec"]["cluster"]["spec"]
    cluster["schedulerStartupTimeoutSeconds"] = 12
    cluster["scheduler"]["spec"]["containers"][0]["args"] = ["python", "-c", "import time; time.sleep(600)"]
    apply(kubectl, manifest)
    held = wait_for(kubectl, "daskjob", "impatient", lambda o: "before the scheduler was ready" in
                    (o.get("status") or {}).get("message", ""), timeout=60)
    assert held["status"]["jobStatus"] == "Running", held["status"]
    # Nothing happens to any object from here on: only the operator's timer ends the wait.
    status = failed_with(kubectl, "impatient", "SchedulerNotReady", timeout=60)
    assert "schedulerStartupTimeoutSeconds" in status["message"], status["message"]
    assert "exitCode" not in status and status.get("attempts") == 1, status
    runner = runner_of(kubectl, "impatient")  # kept, with its log
    assert runner["status"]["phase"] == "Failed"
    assert "Timed out trying to connect" in kubectl("logs", runner["metadata"]["name"]).stdout

