"""Every DaskJob ends, or says why it waits: refused children, failing schedulers, lost runners.

Each case runs on default operator settings (no test-only shortcut beyond the short kubelet
back-offs every integration test uses) and asserts the job ends with a specific reason and
the API server's or the container's own words, within a bounded time, and leaves nothing
behind it but the runner Pods kept for their logs.
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import cluster_spec, daskjob
from .test_daskjob import apply, gone, job_done, wait_for

pytestmark = pytest.mark.timeout(240)

TRIVIAL = "print('ran')"


def events(kubectl: Kubectl, kind: str, name: str) -> list[dict[str, Any]]:
    return kubectl("get", "events", "--field-selector",
                   f"involvedObject.name={name},involvedObject.kind={kind}",
                   "-o", "json").json()["items"]


def failed_with(kubectl: Kubectl, name: str, reason: str, timeout: float = 120) -> dict[str, Any]:
    job = wait_for(kubectl, "daskjob", name, job_done, timeout=timeout)
    status = job["status"]
    assert status["jobStatus"] == "Failed" and status["reason"] == reason, status
    assert any(e["type"] == "Warning" and e["reason"] == "Failed" and reason in e["message"]
               for e in events(kubectl, "DaskJob", name))
    return status


def test_a_runner_pod_the_api_server_refuses_fails_the_job_at_once(kubectl: Kubectl) -> None:
    manifest = daskjob("noimage", TRIVIAL)
    manifest["spec"]["job"]["spec"]["containers"][0]["image"] = ""
    apply(kubectl, manifest)
    status = failed_with(kubectl, "noimage", "InvalidSpec")
    assert "refused to create Pod noimage-runner-" in status["message"]
    assert "spec.containers[0].image" in status["message"], status["message"]  # the server's words
    assert status.get("attempts", 0) <= 1
    assert gone(kubectl, "daskcluster", "noimage")


def test_a_scheduler_service_the_api_server_refuses_fails_cluster_and_job(kubectl: Kubectl) -> None:
    manifest = daskjob("badsvc", TRIVIAL)
    manifest["spec"]["cluster"]["spec"]["scheduler"]["service"]["type"] = "Bogus"
    manifest["spec"]["keepClusterOnFailure"] = True
    apply(kubectl, manifest)
    status = failed_with(kubectl, "badsvc", "InvalidSpec")
    assert "DaskCluster badsvc" in status["message"] and "Service badsvc-scheduler" in status["message"]
    assert "spec.type" in status["message"], status["message"]
    assert not status.get("jobRunnerPodName")  # the runner never started: no misleading exit code
    cluster = kubectl("get", "daskcluster", "badsvc", "-o", "json").json()
    assert cluster["status"]["phase"] == "Failed"
    [cond] = [c for c in cluster["status"]["conditions"] if c["type"] == "Failed"]
    assert cond["status"] == "True" and cond["reason"] == "InvalidSpec"
    assert any(e["type"] == "Warning" and e["reason"] == "InvalidSpec"
               for e in events(kubectl, "DaskCluster", "badsvc"))


def test_a_standalone_cluster_with_refused_workers_says_so(kubectl: Kubectl) -> None:
    spec = cluster_spec(1)
    spec["worker"]["spec"]["containers"][0]["ports"] = [{"containerPort": 70000}]
    apply(kubectl, {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                    "metadata": {"name": "badport"}, "spec": spec})
    cluster = wait_for(kubectl, "daskcluster", "badport",
                       lambda o: (o.get("status") or {}).get("phase") == "Failed", timeout=60)
    [cond] = [c for c in cluster["status"]["conditions"] if c["type"] == "Failed"]
    assert "worker group badport-default" in cond["message"] and "containerPort" in cond["message"]
    group = kubectl("get", "daskworkergroup", "badport-default", "-o", "json").json()
    [failure] = [c for c in group["status"]["conditions"] if c["type"] == "ReplicaFailure"]
    assert failure["status"] == "True" and failure["reason"] == "InvalidSpec"
    # it stops asking: one FailedCreate, not one per back-off
    time.sleep(5)
    created = [e for e in events(kubectl, "DaskWorkerGroup", "badport-default")
               if e["reason"] == "FailedCreate"]
    assert len(created) == 1 and created[0].get("count", 1) == 1, created
    assert kubectl("get", "pods", "-l", "dask.org/workergroup-name=badport-default",
                   "-o", "name").stdout.strip() == ""


def crashing_scheduler(name: str, code: int, **spec: Any) -> dict[str, Any]:
    manifest = daskjob(name, TRIVIAL, **spec)
    sched = manifest["spec"]["cluster"]["spec"]["scheduler"]["spec"]["containers"][0]
    sched["args"] = ["python", "-c", f"import sys; print('scheduler says boom'); sys.exit({code})"]
    return manifest


def test_a_crash_looping_scheduler_fails_the_job_with_its_exit_code_and_log(kubectl: Kubectl) -> None:
    apply(kubectl, crashing_scheduler("crashy", 3))
    status = failed_with(kubectl, "crashy", "SchedulerFailed")
    assert "exited with code 3" in status["message"], status["message"]
    assert "scheduler says boom" in status.get("logTail", ""), status
    assert gone(kubectl, "daskcluster", "crashy")


def test_a_failing_scheduler_is_retried_within_backoff_limit(kubectl: Kubectl) -> None:
    apply(kubectl, crashing_scheduler("crashy2", 4, backoffLimit=1))
    status = failed_with(kubectl, "crashy2", "SchedulerFailed", timeout=180)
    assert status["failed"] == 2, status
    assert any(e["reason"] == "BackOff" and "replacing the scheduler" in e["message"]
               for e in events(kubectl, "DaskJob", "crashy2"))


def test_a_scheduler_that_never_gets_ready_fails_after_its_startup_timeout(kubectl: Kubectl) -> None:
    manifest = daskjob("deaf", TRIVIAL)
    cluster = manifest["spec"]["cluster"]["spec"]
    cluster["schedulerStartupTimeoutSeconds"] = 5
    cluster["scheduler"]["spec"]["containers"][0]["args"] = [
        "python", "-c", "import time; time.sleep(600)"]
    apply(kubectl, manifest)
    status = failed_with(kubectl, "deaf", "SchedulerNotReady", timeout=90)
    assert "schedulerStartupTimeoutSeconds" in status["message"]


def test_a_runner_that_cannot_start_says_why_while_it_waits(kubectl: Kubectl) -> None:
    manifest = daskjob("noconfig", TRIVIAL, env=[
        {"name": "FROM_MISSING", "valueFrom": {"configMapKeyRef": {"name": "not-there", "key": "k"}}}])
    apply(kubectl, manifest)
    job = wait_for(kubectl, "daskjob", "noconfig",
                   lambda o: (o.get("status") or {}).get("message", "").startswith("waiting: "),
                   timeout=60)
    assert job["status"]["jobStatus"] == "Running"
    assert "CreateContainerConfigError" in job["status"]["message"]
    assert "not-there" in job["status"]["message"], job["status"]["message"]
    # and once the ConfigMap exists, the note goes and the job succeeds
    kubectl("create", "configmap", "not-there", "--from-literal=k=v")
    job = wait_for(kubectl, "daskjob", "noconfig", job_done, timeout=120)
    assert job["status"]["jobStatus"] == "Successful", job["status"]
    assert not job["status"]["message"].startswith("waiting: ")


def test_a_deleted_runner_ends_its_attempt_as_runner_deleted(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("lost", "import time; time.sleep(600)"))
    job = wait_for(kubectl, "daskjob", "lost",
                   lambda o: (o.get("status") or {}).get("jobStatus") == "Running")
    runner = job["status"]["jobRunnerPodName"]
    wait_for(kubectl, "pod", runner, lambda o: o["status"].get("phase") == "Running")
    kubectl("delete", "pod", runner, "--wait=false")
    status = failed_with(kubectl, "lost", "RunnerDeleted")
    assert runner in status["message"]


def test_null_fields_in_a_job_are_absent(kubectl: Kubectl, namespace: str) -> None:
    """The job-level twin of the DaskCluster null test: nulls in the runner's spec."""
    manifest = copy.deepcopy(daskjob("nullish", TRIVIAL))
    manifest["spec"]["job"]["spec"]["containers"][0].update(resources=None)
    manifest["spec"]["job"]["spec"]["containers"][0]["env"] = None
    kubectl("create", "--raw", f"/apis/kubernetes.dask.org/v1/namespaces/{namespace}/daskjobs",
            "-f", "-", input=json.dumps(manifest))
    job = wait_for(kubectl, "daskjob", "nullish", job_done)
    assert job["status"]["jobStatus"] == "Successful", job["status"]


def autoscaler(name: str, cluster: str, minimum: int, maximum: int) -> dict[str, Any]:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
            "metadata": {"name": name},
            "spec": {"cluster": cluster, "minimum": minimum, "maximum": maximum}}


def test_an_autoscaler_with_minimum_above_maximum_scales_nothing_and_says_why(kubectl: Kubectl) -> None:
    # The CRD's CEL rule refuses it, as a 1.32 kube-apiserver does; the operator's own
    # InvalidSpec condition only matters on servers that do not evaluate CEL rules.
    apply(kubectl, {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                    "metadata": {"name": "minmax"}, "spec": cluster_spec(1)})
    out = kubectl("apply", "-f", "-", input=json.dumps(autoscaler("minmax", "minmax", 5, 2)),
                  check=False)
    assert out.returncode != 0
    assert ('The DaskAutoscaler "minmax" is invalid: spec: Invalid value: "object": minimum '
            "must not exceed maximum") in out.stderr
    assert kubectl("get", "daskautoscaler", "minmax", "--ignore-not-found", "-o",
                   "name").stdout == ""
    group = wait_for(kubectl, "daskworkergroup", "minmax-default", lambda o: True, timeout=60)
    assert group["spec"]["worker"]["replicas"] == 1  # not scaled to the minimum of 5


def test_an_autoscaler_from_a_manifest_goes_with_its_cluster(kubectl: Kubectl) -> None:
    apply(kubectl, {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                    "metadata": {"name": "owned"}, "spec": cluster_spec(1)})
    apply(kubectl, autoscaler("owned-auto", "owned", 1, 2))
    obj = wait_for(kubectl, "daskautoscaler", "owned-auto",
                   lambda o: any(r["kind"] == "DaskCluster" and r["name"] == "owned"
                                 for r in o["metadata"].get("ownerReferences") or []), timeout=60)
    [ref] = obj["metadata"]["ownerReferences"]
    assert ref["uid"] == kubectl("get", "daskcluster", "owned", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("delete", "daskcluster", "owned", "--wait=false")
    assert gone(kubectl, "daskautoscaler", "owned-auto")


def test_a_million_workers_wait_on_the_default_cap_and_nothing_is_created(kubectl: Kubectl) -> None:
    from dask_kube_jobs.local.daemon import machine_max_workers

    apply(kubectl, daskjob("huge", TRIVIAL, workers=1_000_000))
    job = wait_for(kubectl, "daskjob", "huge",
                   lambda o: (o.get("status") or {}).get("reason") == "LimitExceeded", timeout=60)
    message = job["status"]["message"]
    assert "1000000" in message and f"the operator's default of {machine_max_workers()}" in message
    assert "--default-max-workers-per-cluster" in message and "maxWorkersPerCluster" in message
    assert job["status"]["jobStatus"] == "JobCreated"
    time.sleep(3)
    assert kubectl("get", "pods,daskclusters", "-o", "name").stdout.strip() == ""


def test_a_cluster_deleted_under_a_running_job_ends_it_as_cluster_deleted(kubectl: Kubectl) -> None:
    apply(kubectl, daskjob("orphaned", "import time; time.sleep(600)"))
    wait_for(kubectl, "daskjob", "orphaned",
             lambda o: (o.get("status") or {}).get("jobStatus") == "Running")
    kubectl("delete", "daskcluster", "orphaned", "--wait=false")
    status = failed_with(kubectl, "orphaned", "ClusterDeleted")
    assert "DaskCluster orphaned was deleted" in status["message"]
    time.sleep(3)
    assert kubectl("get", "daskcluster", "orphaned", "--ignore-not-found", "-o", "name").stdout == ""


def test_workers_that_cannot_be_scheduled_are_said_on_job_group_and_cluster(kubectl: Kubectl) -> None:
    manifest = daskjob("gpuless", "from dask.distributed import Client; Client().wait_for_workers(1)")
    worker = manifest["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
    worker["resources"] = {"limits": {"nvidia.com/gpu": 1}}
    apply(kubectl, manifest)
    job = wait_for(kubectl, "daskjob", "gpuless",
                   lambda o: "worker Pod(s) cannot start" in (o.get("status") or {}).get("message", ""),
                   timeout=60)
    assert job["status"]["jobStatus"] == "Running"
    assert "Insufficient nvidia.com/gpu" in job["status"]["message"], job["status"]["message"]
    for kind, name in (("daskworkergroup", "gpuless-default"), ("daskcluster", "gpuless")):
        obj = wait_for(kubectl, kind, name, lambda o: any(
            c["type"] == "WorkersReady" and c["status"] == "False" and "Insufficient" in c["message"]
            for c in (o.get("status") or {}).get("conditions") or []), timeout=30)
        [cond] = [c for c in obj["status"]["conditions"] if c["type"] == "WorkersReady"]
        assert cond["reason"] == "Unschedulable", cond
    kubectl("delete", "daskjob", "gpuless", "--wait=false")
