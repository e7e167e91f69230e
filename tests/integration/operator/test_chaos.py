"""The operator is SIGKILLed at random moments while many jobs run, and restarted each time.

Every handler may be cut off half-way; a new operator process must take over from what it
observes. At the end every job must be in the state its runner earned, with no duplicate
runner Pods, no leftover clusters and no Pod without a live owner.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob

pytestmark = pytest.mark.timeout(600)

JOBS = 8
KILLS = 6


def test_jobs_converge_while_the_operator_is_killed(local_control_plane, kubectl: Kubectl) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(int(os.environ.get("DKJ_CHAOS_SEED", "20261125")))
    expected = {}
    for i in range(JOBS):
        name = f"chaos-{i}"
        if i % 4 == 3:
            script, retries, outcome = "raise SystemExit(4)", 1, "Failed"
        elif i % 4 == 2:  # fails on its first attempt, succeeds on its second
            script = ("import os, sys; "
                      "sys.exit(1 if os.environ['POD_NAME'].endswith('-1') else 0)")
            retries, outcome = 2, "Successful"
        else:
            script, retries, outcome = "import time; time.sleep(1); print('done')", 0, "Successful"
        kubectl("apply", "-f", "-", input=json.dumps(daskjob(name, script, backoffLimit=retries)))
        expected[name] = outcome

    started = time.monotonic()
    kills = 0
    while kills < KILLS:
        time.sleep(rng.uniform(0.5, 3.0))
        pid = (local_control_plane.state.read_endpoint() or {}).get("children", {}).get("operator")
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass  # between a death and its restart

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = {j["metadata"]["name"]: j for j in kubectl("get", "daskjobs", "-o", "json").json()["items"]}
        if all((jobs[n].get("status") or {}).get("jobStatus") in ("Successful", "Failed") for n in expected):
            break
        time.sleep(1)
    elapsed = time.monotonic() - started
    phases = {n: (jobs[n].get("status") or {}).get("jobStatus") for n in expected}
    assert phases == expected, phases

    pods = kubectl("get", "pods", "-o", "json").json()["items"]
    for name, job in jobs.items():
        status = job["status"]
        runners = [p for p in pods if p["metadata"].get("labels", {}).get("dask.org/job-name") == name
                   and p["metadata"].get("labels", {}).get("dask.org/component") == "job-runner"]
        # one Pod per attempt, never two for the same attempt
        attempts = sorted(p["metadata"]["labels"]["dask.org/job-attempt"] for p in runners)
        assert attempts == [str(a) for a in range(1, status["attempts"] + 1)], (name, attempts)
    # teardown: no cluster and no scheduler or worker left for finished jobs
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        clusters = kubectl("get", "daskclusters", "-o", "name").stdout.split()
        members = kubectl("get", "pods", "-l", "dask.org/component in (scheduler,worker)", "-o", "name").stdout.split()
        if not clusters and not members:
            break
        time.sleep(1)
    assert clusters == [] and members == [], (clusters, members)
    # no orphans: every remaining Pod's owner exists
    uids = {j["metadata"]["uid"] for j in jobs.values()}
    for pod in kubectl("get", "pods", "-o", "json").json()["items"]:
        owners = pod["metadata"].get("ownerReferences") or []
        assert owners and all(o["uid"] in uids for o in owners), pod["metadata"]["name"]
    print(f"\nchaos: {JOBS} jobs, {kills} operator SIGKILLs, converged in {elapsed:.0f}s")
