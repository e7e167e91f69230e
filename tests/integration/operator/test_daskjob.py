"""DaskJob end to end: real operator, real kubelet, real Dask processes."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob

pytestmark = pytest.mark.timeout(240)


def apply(kubectl: Kubectl, manifest: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(manifest))


def wait_for(kubectl: Kubectl, kind: str, name: str, predicate, timeout: float = 120) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = kubectl("get", kind, name, "-o", "json", check=False)
        if out.returncode == 0:
            last = out.json()
            if predicate(last):
                return last
        time.sleep(0.5)
    raise AssertionError(f"{kind}/{name} never matched; last seen: {json.dumps(last.get('status'), indent=1)}")


def printed(kubectl: Kubectl, kind: str, name: str) -> dict[str, str]:
    """The cells ``kubectl get <kind> <name>`` prints, by column header (headers such as
    NUMBER OF WORKERS hold single spaces; kubectl pads columns with three)."""
    header, row = kubectl("get", kind, name).stdout.splitlines()[:2]
    columns = list(re.finditer(r"\S+(?: \S+)*", header))
    ends = [c.start() for c in columns[1:]] + [len(row)]
    return {c.group(): row[c.start():end].strip() for c, end in zip(columns, ends, strict=True)}


def job_done(obj: dict[str, Any]) -> bool:
    return (obj.get("status") or {}).get("jobStatus") in ("Successful", "Failed")


def gone(kubectl: Kubectl, kind: str, name: str, timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if kubectl("get", kind, name, "--ignore-not-found", "-o", "name").stdout.strip() == "":
            return True
        time.sleep(0.5)
    return False


SUM_ON_WORKERS = """
    from dask.distributed import Client
    import dask.array as da
    client = Client()
    client.wait_for_workers(2)
    x = da.ones((1000, 1000), chunks=(250, 250))
    total = int(x.sum().compute())
    who = client.run(lambda: 1)
    print(f"total={total} workers={len(who)}")
    assert total == 1_000_000 and len(who) == 2
"""


def test_successful_job_reports_and_tears_down(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("adds", SUM_ON_WORKERS, workers=2))
    job = wait_for(kubectl, "daskjob", "adds", job_done)
    status = job["status"]
    assert status["jobStatus"] == "Successful", status
    assert status["exitCode"] == 0 and status["attempts"] == 1
    assert status["clusterName"] == "adds" and status["startTime"] and status["endTime"]
    runner = status["jobRunnerPodName"]
    assert runner.startswith("adds-runner-") and runner.endswith("-1")
    assert "total=1000000 workers=2" in kubectl("logs", runner).stdout
    # the cluster goes, the runner Pod stays for its logs
    assert gone(kubectl, "daskcluster", "adds")
    assert gone(kubectl, "pods", "adds-scheduler")
    assert kubectl("get", "pod", runner, "-o", "jsonpath={.status.phase}").stdout == "Succeeded"
    row = printed(kubectl, "daskjob", "adds")
    # its cluster is gone, so not listed (an empty cell, as kubectl shows a CRD's missing
    # field); COMPLETIONS and DURATION as batch/v1 Job prints them
    assert (row["STATUS"], row["CLUSTER"], row["RUNNER"], row["COMPLETIONS"]) == \
        ("Successful", "", runner, "1/1"), row
    assert re.fullmatch(r"\d+s|\d+m(\d+s)?", row["DURATION"]), row
    reasons = [e["reason"] for e in kubectl("get", "events", "--field-selector",
                                            "involvedObject.name=adds,involvedObject.kind=DaskJob",
                                            "-o", "json").json()["items"]]
    for reason in ("JobCreated", "ClusterCreated", "RunnerCreated", "Successful", "ClusterDeleted"):
        assert reason in reasons


def test_runner_env_has_the_scheduler_address(kubectl: Kubectl, namespace: str) -> None:
    script = """
        import os
        print("ADDR=" + os.environ["DASK_SCHEDULER_ADDRESS"])
    """
    apply(kubectl, daskjob("env", script))
    job = wait_for(kubectl, "daskjob", "env", job_done)
    assert job["status"]["jobStatus"] == "Successful"
    out = kubectl("logs", job["status"]["jobRunnerPodName"]).stdout
    assert f"ADDR=tcp://env-scheduler.{namespace}.svc.cluster.local:8786" in out


def test_failed_job_says_why_with_exit_code_and_log_tail(kubectl: Kubectl) -> None:
    script = """
        import sys
        print("about to give up: no input rows")
        sys.exit(3)
    """
    apply(kubectl, daskjob("fails", script))
    job = wait_for(kubectl, "daskjob", "fails", job_done)
    status = job["status"]
    assert status["jobStatus"] == "Failed"
    assert status["exitCode"] == 3 and status["reason"] == "Error"
    assert "no input rows" in status["logTail"]
    assert gone(kubectl, "daskcluster", "fails")


def test_retry_within_backoff_limit_then_success(kubectl: Kubectl) -> None:
    script = """
        import os, sys
        attempt = os.environ["POD_NAME"].rsplit("-", 1)[1]
        print("attempt", attempt)
        sys.exit(1 if attempt == "1" else 0)
    """
    apply(kubectl, daskjob("flaky", script, backoffLimit=2))
    job = wait_for(kubectl, "daskjob", "flaky", job_done)
    status = job["status"]
    assert status["jobStatus"] == "Successful", status
    assert status["attempts"] == 2 and status["failed"] == 1
    assert status["jobRunnerPodName"].endswith("-2")
    runners = kubectl("get", "pods", "-l", "dask.org/job-name=flaky", "-o", "name").stdout.split()
    assert len(runners) == 2  # both attempts kept, no duplicates


def test_retries_are_bounded(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("hopeless", "raise SystemExit(2)", backoffLimit=1))
    job = wait_for(kubectl, "daskjob", "hopeless", job_done)
    status = job["status"]
    assert status["jobStatus"] == "Failed" and status["failed"] == 2 and status["attempts"] == 2
    assert status["exitCode"] == 2


def test_active_deadline(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("slow", "import time; time.sleep(300)", activeDeadlineSeconds=8))
    job = wait_for(kubectl, "daskjob", "slow", job_done, timeout=90)
    assert job["status"]["jobStatus"] == "Failed"
    assert job["status"]["reason"] == "DeadlineExceeded"
    assert gone(kubectl, "daskcluster", "slow")


def test_ttl_after_finished_deletes_the_job(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("brief", "print('hi')", ttlSecondsAfterFinished=2))
    wait_for(kubectl, "daskjob", "brief", job_done)
    assert gone(kubectl, "daskjob", "brief", timeout=60)
    assert gone(kubectl, "pods", "-l dask.org/job-name=brief") or \
        kubectl("get", "pods", "-l", "dask.org/job-name=brief", "-o", "name").stdout == ""


def test_result_comes_back_in_status(kubectl: Kubectl) -> None:
    script = """
        import dask_kube_jobs
        dask_kube_jobs.set_result({"answer": 42, "ok": True})
    """
    apply(kubectl, daskjob("answers", script))
    job = wait_for(kubectl, "daskjob", "answers", job_done)
    assert job["status"]["jobStatus"] == "Successful"
    result = job["status"]["result"]
    decoded = json.loads(result) if isinstance(result, str) else result
    assert decoded == {"answer": 42, "ok": True}


def test_suspended_job_waits_then_runs(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("held", "print('released')", suspend=True))
    wait_for(kubectl, "daskjob", "held", lambda o: any(
        c["type"] == "Suspended" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", [])))
    assert kubectl("get", "daskcluster", "held", "--ignore-not-found", "-o", "name").stdout == ""
    kubectl("patch", "daskjob", "held", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    job = wait_for(kubectl, "daskjob", "held", job_done)
    assert job["status"]["jobStatus"] == "Successful"


def test_deleting_a_running_job_removes_everything(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("doomed", "import time; time.sleep(300)"))
    wait_for(kubectl, "daskjob", "doomed", lambda o: (o.get("status") or {}).get("jobStatus") == "Running")
    kubectl("delete", "daskjob", "doomed", "--timeout=60s")
    assert gone(kubectl, "daskcluster", "doomed")
    for label in ("dask.org/cluster-name=doomed", "dask.org/job-name=doomed"):
        deadline = time.monotonic() + 60
        while kubectl("get", "pods", "-l", label, "-o", "name").stdout.strip() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert kubectl("get", "pods", "-l", label, "-o", "name").stdout.strip() == ""


def test_invalid_job_is_refused_with_the_field_named(kubectl: Kubectl) -> None:
    bad = daskjob("bad", "print(1)", backoffLimit=-1)
    out = kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0 and "spec.backoffLimit" in out.stderr
    bad = daskjob("bad", "print(1)")
    bad["spec"]["cluster"]["spec"]["worker"]["replicas"] = "two"
    out = kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert out.returncode != 0 and "spec.cluster.spec.worker.replicas" in out.stderr
    assert kubectl("get", "daskjob", "bad", "--ignore-not-found", "-o", "name").stdout == ""


def test_out_of_memory_runner_is_reported_as_oomkilled(kubectl: Kubectl) -> None:
    job = daskjob("hungry", "x = bytearray(600 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); print('survived')")
    job["spec"]["job"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "200Mi"}}
    apply(kubectl, job)
    status = wait_for(kubectl, "daskjob", "hungry", job_done)["status"]
    assert status["jobStatus"] == "Failed"
    assert status["reason"] == "OOMKilled" and status["exitCode"] == 137


def test_unschedulable_runner_fails_with_the_schedulers_reason(kubectl: Kubectl) -> None:
    job = daskjob("needs-gpu", "print('never')")
    job["spec"]["job"]["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    apply(kubectl, job)
    status = wait_for(kubectl, "daskjob", "needs-gpu", job_done, timeout=120)["status"]
    assert status["jobStatus"] == "Failed" and status["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in status["message"]
    assert gone(kubectl, "daskcluster", "needs-gpu")


def test_a_name_too_long_for_the_scheduler_service_creates_nothing(kubectl: Kubectl) -> None:
    # The CRD's CEL rule refuses the name, as a 1.32 kube-apiserver does; the operator's own
    # InvalidName check only matters on servers that do not evaluate CEL rules.
    name = "j" + "x" * 53  # 54 characters: "<name>-scheduler" would exceed 63
    out = kubectl("apply", "-f", "-", input=json.dumps(daskjob(name, "print(1)")), check=False)
    assert out.returncode != 0
    assert f'The DaskJob "{name}" is invalid: <nil>: Invalid value: "object": metadata.name ' \
        "must start with a letter" in out.stderr and "at most 53 characters" in out.stderr
    assert kubectl("get", "daskjobs,daskclusters,pods", "-o", "name").stdout.strip() == ""


SLOW_SUM = """
    import time
    from dask.distributed import Client
    client = Client()
    client.wait_for_workers(1)
    print("connected", flush=True)
    time.sleep(6)
    total = client.submit(sum, range(101)).result()
    print(f"total={total}", flush=True)
"""


def test_a_running_job_survives_a_killed_kubelet(local_control_plane, kubectl: Kubectl) -> None:
    """kill -9 of the kubelet while the runner works: the supervisor restarts the kubelet, which
    adopts the running containers (scheduler, worker, runner), and the job ends Successful with
    its first attempt and no container restarted."""
    import os
    import signal

    apply(kubectl, daskjob("steady", SLOW_SUM, workers=1))
    job = wait_for(kubectl, "daskjob", "steady",
                   lambda o: (o.get("status") or {}).get("jobStatus") == "Running")
    runner = job["status"]["jobRunnerPodName"]
    deadline = time.monotonic() + 60
    while "connected" not in kubectl("logs", runner, check=False).stdout:
        assert time.monotonic() < deadline, "the runner never connected"
        time.sleep(0.3)
    kubelet = int(local_control_plane.state.read_endpoint()["children"]["kubelet"])
    os.kill(kubelet, signal.SIGKILL)
    job = wait_for(kubectl, "daskjob", "steady", job_done)
    status = job["status"]
    assert status["jobStatus"] == "Successful" and status["attempts"] == 1, status
    restarted = int(local_control_plane.state.read_endpoint()["children"]["kubelet"])
    assert restarted != kubelet  # the supervisor did restart it
    log = kubectl("logs", runner).stdout
    assert "connected" in log and "total=5050" in log
    pod = kubectl("get", "pod", runner, "-o", "json").json()
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
