"""DaskCluster, DaskWorkerGroup and DaskAutoscaler on the local control plane with real Dask."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from dask_kube_jobs.contract import cluster_status
from dask_kube_jobs.local.testing import Kubectl

from .jobs import cluster_spec
from .operator_procs import eventually
from .test_daskjob import gone, printed, wait_for

pytestmark = pytest.mark.timeout(300)


def daskcluster(name: str, workers: int = 1, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
            "metadata": {"name": name}, "spec": {**cluster_spec(workers), **spec}}


def scheduler_ready(cluster: dict[str, Any]) -> bool:
    """Phase Running says the scheduler exists; these tests go on once it is ready."""
    return cluster_status.scheduler_ready(cluster.get("status"))


def running_workers(kubectl: Kubectl, group: str) -> list[str]:
    pods = kubectl("get", "pods", "-l", f"dask.org/workergroup-name={group}", "-o", "json").json()["items"]
    return sorted(p["metadata"]["name"] for p in pods
                  if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") == "Running")


def wait_workers(kubectl: Kubectl, group: str, n: int, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        names = running_workers(kubectl, group)
        all_pods = kubectl("get", "pods", "-l", f"dask.org/workergroup-name={group}", "-o", "name").stdout.split()
        if len(names) == n and len(all_pods) == n:
            return names
        time.sleep(0.5)
    raise AssertionError(f"{group} never had {n} workers: {running_workers(kubectl, group)}")


def test_cluster_creates_scheduler_service_and_default_group(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("basic", workers=2)))
    wait_for(kubectl, "daskcluster", "basic", scheduler_ready)
    wait_workers(kubectl, "basic-default", 2)
    svc = kubectl("get", "svc", "basic-scheduler", "-o", "json").json()
    assert svc["spec"]["selector"] == {"dask.org/cluster-name": "basic", "dask.org/component": "scheduler"}
    group = kubectl("get", "daskworkergroup", "basic-default", "-o", "json").json()
    assert group["metadata"]["ownerReferences"][0]["name"] == "basic"
    pod = kubectl("get", "pods", "-l", "dask.org/workergroup-name=basic-default", "-o", "json").json()["items"][0]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DASK_SCHEDULER_ADDRESS"] == f"tcp://basic-scheduler.{namespace}.svc.cluster.local:8786"
    assert env["DASK_WORKER_NAME"] == pod["metadata"]["name"]
    labels = pod["metadata"]["labels"]
    assert labels["dask.org/component"] == "worker" and labels["dask.org/cluster-name"] == "basic"
    wait_for(kubectl, "daskcluster", "basic", lambda o: o["status"].get("readyWorkers") == 2)
    # a lost scheduler is replaced
    old_uid = kubectl("get", "pod", "basic-scheduler", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("delete", "pod", "basic-scheduler", "--wait=true")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = kubectl("get", "pod", "basic-scheduler", "-o", "jsonpath={.metadata.uid}", check=False)
        if out.returncode == 0 and out.stdout and out.stdout != old_uid:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the scheduler was not replaced")
    # a lost Service is made again: the operator's Service cache sees it go
    old_uid = kubectl("get", "svc", "basic-scheduler", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("delete", "svc", "basic-scheduler", "--wait=true")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        out = kubectl("get", "svc", "basic-scheduler", "-o", "jsonpath={.metadata.uid}", check=False)
        if out.returncode == 0 and out.stdout and out.stdout != old_uid:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the scheduler Service was not made again")
    # deleting the cluster cascades to everything it made
    kubectl("delete", "daskcluster", "basic", "--timeout=60s")
    assert gone(kubectl, "daskworkergroup", "basic-default")
    assert gone(kubectl, "svc", "basic-scheduler")
    assert kubectl("get", "pods", "-l", "dask.org/cluster-name=basic", "-o", "name").stdout.strip() == "" or \
        gone(kubectl, "pods", "basic-scheduler")


CLIENT = textwrap.dedent("""
    import sys, time
    from dask.distributed import Client
    client = Client(sys.argv[1], timeout=30)
    client.wait_for_workers(int(sys.argv[2]))
    def slow_inc(x):
        import time
        time.sleep(0.2)
        return x + 1
    futures = client.map(slow_inc, range(int(sys.argv[3])))
    results = client.gather(futures)
    assert results == [x + 1 for x in range(int(sys.argv[3]))], results
    print("ok", len(results))
""")


def scheduler_address(kubectl: Kubectl, cluster: str) -> str:
    ip = kubectl("get", "pod", f"{cluster}-scheduler", "-o", "jsonpath={.status.podIP}").stdout
    return f"tcp://{ip}:8786"


def test_kubectl_scale_up_and_down_loses_no_task(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("elastic", workers=1)))
    wait_for(kubectl, "daskcluster", "elastic", scheduler_ready)
    wait_workers(kubectl, "elastic-default", 1)
    kubectl("scale", "daskworkergroup", "elastic-default", "--replicas=3")
    wait_workers(kubectl, "elastic-default", 3)
    client = subprocess.Popen([sys.executable, "-c", CLIENT, scheduler_address(kubectl, "elastic"), "3", "60"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # tasks are running on all three workers now
    kubectl("scale", "daskworkergroup", "elastic-default", "--replicas=1")
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert "ok 60" in out
    wait_workers(kubectl, "elastic-default", 1)
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=elastic-default",
                     "-o", "json").json()["items"]
    assert any(e["reason"] == "ScaledDown" and "retired" in e["message"] for e in events)
    # the DaskCluster's own scale subresource drives its default group
    kubectl("scale", "daskcluster", "elastic", "--replicas=2")
    wait_workers(kubectl, "elastic-default", 2)


def test_an_extra_worker_group_scales_on_its_own(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("multi", workers=1)))
    wait_for(kubectl, "daskcluster", "multi", scheduler_ready)
    group = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup",
             "metadata": {"name": "multi-highmem"},
             "spec": {"cluster": "multi", "worker": cluster_spec(2)["worker"]}}
    kubectl("apply", "-f", "-", input=json.dumps(group))
    wait_workers(kubectl, "multi-highmem", 2)
    wait_workers(kubectl, "multi-default", 1)
    owner = kubectl("get", "daskworkergroup", "multi-highmem", "-o", "json").json()["metadata"]["ownerReferences"]
    assert owner[0]["kind"] == "DaskCluster" and owner[0]["name"] == "multi"

    def both_groups_counted() -> bool:  # by WORKERS and READY alike
        row = printed(kubectl, "daskcluster", "multi")
        return (row["WORKERS"], row["READY"]) == ("3", "3")

    eventually(both_groups_counted, 30, "kubectl get daskcluster: WORKERS 3, READY 3")
    kubectl("scale", "daskworkergroup", "multi-highmem", "--replicas=0")
    wait_workers(kubectl, "multi-highmem", 0)
    assert len(running_workers(kubectl, "multi-default")) == 1  # the other group is untouched


def test_autoscaler_scales_up_under_load_and_down_when_idle(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("auto", workers=0)))
    wait_for(kubectl, "daskcluster", "auto", scheduler_ready)
    autoscaler = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
                  "metadata": {"name": "auto"},
                  "spec": {"cluster": "auto", "minimum": 1, "maximum": 3, "intervalSeconds": 1,
                           "scaleUpCooldownSeconds": 1, "scaleDownStabilizationSeconds": 5}}
    kubectl("apply", "-f", "-", input=json.dumps(autoscaler))
    wait_workers(kubectl, "auto-default", 1)  # raised to the minimum
    # an idle scheduler's target is 0; DESIRED is what the group is held at
    eventually(lambda: printed(kubectl, "daskautoscaler", "auto")["DESIRED"] == "1", 30,
               "DESIRED 1")
    load = textwrap.dedent("""
        import sys, time
        from dask.distributed import Client
        client = Client(sys.argv[1], timeout=30)
        def work(x):
            import time
            time.sleep(1)
            return x
        futures = client.map(work, range(400))
        time.sleep(25)
        client.cancel(futures)
    """)
    proc = subprocess.Popen([sys.executable, "-c", load, scheduler_address(kubectl, "auto")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_workers(kubectl, "auto-default", 3, timeout=60)
        status = kubectl("get", "daskautoscaler", "auto", "-o", "json").json()["status"]
        assert status["lastDecision"]["to"] >= 2
    finally:
        proc.wait(timeout=120)
    wait_workers(kubectl, "auto-default", 1, timeout=120)  # back to the minimum when idle


def test_idle_timeout_deletes_an_unused_cluster(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("sleepy", workers=1, idleTimeout=4)))
    wait_for(kubectl, "daskcluster", "sleepy", scheduler_ready)
    assert gone(kubectl, "daskcluster", "sleepy", timeout=90)
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=sleepy,involvedObject.kind=DaskCluster",
                     "-o", "json").json()["items"]
    assert any(e["reason"] == "IdleTimeout" for e in events)


def test_an_invalid_cluster_name_is_refused_with_nothing_created(kubectl: Kubectl) -> None:
    # The CRD's CEL rule refuses it at admission, as a 1.32 kube-apiserver does; the operator's
    # own InvalidName condition only matters on servers that do not evaluate CEL rules.
    out = kubectl("apply", "-f", "-", input=json.dumps(daskcluster("9lives")), check=False)
    assert out.returncode != 0
    assert 'The DaskCluster "9lives" is invalid' in out.stderr
    assert "must start with a letter" in out.stderr, out.stderr
    time.sleep(2)
    assert kubectl("get", "pods,svc,daskworkergroups", "-o", "name").stdout.strip() == ""


def test_scale_down_without_a_scheduler_to_ask_deletes_nothing(kubectl: Kubectl) -> None:
    cluster = daskcluster("mute", workers=2)
    # the "scheduler" listens but speaks no Dask; the "workers" run and stay ready
    cluster["spec"]["scheduler"]["spec"]["containers"][0]["args"] = ["python", "-m", "http.server", "8786"]
    cluster["spec"]["worker"]["spec"]["containers"][0]["args"] = ["python", "-c", "import time; time.sleep(600)"]
    kubectl("apply", "-f", "-", input=json.dumps(cluster))
    before = wait_workers(kubectl, "mute-default", 2)
    kubectl("scale", "daskworkergroup", "mute-default", "--replicas=1")
    obj = wait_for(kubectl, "daskworkergroup", "mute-default", lambda o: any(
        c["type"] == "ScaleDownBlocked" and c["status"] == "True" for c in (o.get("status") or {}).get("conditions", [])))
    cond = next(c for c in obj["status"]["conditions"] if c["type"] == "ScaleDownBlocked")
    assert cond["reason"] == "SchedulerUnreachable" and "scheduler" in cond["message"]
    time.sleep(3)
    assert running_workers(kubectl, "mute-default") == before  # nobody was killed at random
    events = kubectl("get", "events", "--field-selector", "involvedObject.name=mute-default", "-o", "json").json()["items"]
    assert any(e["reason"] == "ScaleDownBlocked" and e["type"] == "Warning" for e in events)


def with_nulls_as_upstream_sends(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` as upstream's ``make_cluster_spec`` shapes it: unset fields sent as ``null``."""
    spec = json.loads(json.dumps(spec))
    spec["idleTimeout"] = None
    for part in (spec["worker"], spec["scheduler"]):
        for c in part["spec"]["containers"]:
            c.update(env=None, resources=None)
    return spec


def test_null_fields_from_upstream_make_cluster_spec_are_absent(
        kubectl: Kubectl, namespace: str) -> None:
    """``"env": null`` (as upstream's ``make_cluster_spec`` emits it) used to stop a cluster from
    ever getting workers: the worker builder iterated the null."""
    manifest = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                "metadata": {"name": "nulls"},
                "spec": with_nulls_as_upstream_sends(cluster_spec(2))}
    # POSTed as a client library sends it (kubectl apply would drop the nulls on its side)
    stored = kubectl("create", "--raw",
                     f"/apis/kubernetes.dask.org/v1/namespaces/{namespace}/daskclusters",
                     "-f", "-", input=json.dumps(manifest)).json()
    assert stored["spec"]["worker"]["spec"]["containers"][0]["env"] is None  # kept: nullable
    wait_workers(kubectl, "nulls-default", 2)
    wait_for(kubectl, "daskcluster", "nulls", lambda o: o["status"].get("readyWorkers") == 2)
    pod = kubectl("get", "pods", "-l", "dask.org/workergroup-name=nulls-default", "-o", "json").json()["items"][0]
    env = {e["name"] for e in pod["spec"]["containers"][0]["env"]}
    assert {"DASK_SCHEDULER_ADDRESS", "DASK_WORKER_NAME"} <= env


def test_running_means_made_and_readiness_is_the_scheduler_ready_condition(kubectl: Kubectl) -> None:
    """Upstream's phase vocabulary: a crash-looping scheduler's cluster is Running (upstream's
    client then reports the crash loop itself), but never SchedulerReady."""
    spec = cluster_spec(0)
    spec["scheduler"]["spec"]["containers"][0]["args"] = ["python", "-c", "raise SystemExit(3)"]
    manifest = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
                "metadata": {"name": "crashing"}, "spec": spec}
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def crash_looping(pod: dict[str, Any]) -> bool:
        return any(((cs.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff"
                   for cs in (pod.get("status") or {}).get("containerStatuses") or [])
    wait_for(kubectl, "pod", "crashing-scheduler", crash_looping)
    cluster = wait_for(kubectl, "daskcluster", "crashing",
                       lambda o: (o.get("status") or {}).get("phase") == "Running")
    assert not scheduler_ready(cluster)
    condition = next(c for c in cluster["status"]["conditions"] if c["type"] == "SchedulerReady")
    assert (condition["status"], condition["reason"]) == ("False", "PodNotReady")
