"""DaskJobs on an existing DaskCluster (``spec.clusterRef``), with the real operator and real Dask
on the local control plane: the runner uses the named cluster, which outlives the job."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob
from .test_daskcluster import daskcluster, scheduler_ready
from .test_daskjob import job_done, wait_for

pytestmark = pytest.mark.timeout(120)

ON_THE_SHARED_CLUSTER = """
    import os
    from dask.distributed import Client
    client = Client()
    print("scheduler", os.environ["DASK_SCHEDULER_ADDRESS"], flush=True)
    assert client.run_on_scheduler(lambda: 6 * 7) == 42
"""


def on_cluster(name: str, cluster: str, script: str) -> dict[str, Any]:
    job = daskjob(name, script)
    del job["spec"]["cluster"]
    job["spec"]["clusterRef"] = {"name": cluster}
    return job


def test_a_job_on_an_existing_cluster_succeeds_and_leaves_it_running(kubectl: Kubectl, namespace: str) -> None:
    # no workers: the runner only needs to reach the scheduler, and every process costs CI time
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("warm", workers=0)))
    # the job may be created before its cluster is ready: it waits for the scheduler
    kubectl("apply", "-f", "-", input=json.dumps(on_cluster("borrow", "warm", ON_THE_SHARED_CLUSTER)))
    obj = wait_for(kubectl, "daskjob", "borrow", job_done, timeout=90)
    assert obj["status"]["jobStatus"] == "Successful", obj["status"]
    assert obj["status"]["clusterName"] == "warm"
    log = kubectl("logs", obj["status"]["jobRunnerPodName"]).stdout
    assert f"scheduler tcp://warm-scheduler.{namespace}.svc.cluster.local:8786" in log
    # nothing was made for the job, and nothing of the cluster was removed when it ended
    clusters = kubectl("get", "daskclusters", "-o", "name").stdout.split()
    assert clusters == ["daskcluster.kubernetes.dask.org/warm"]
    cluster = kubectl("get", "daskcluster", "warm", "-o", "json").json()
    assert scheduler_ready(cluster) and cluster["metadata"].get("deletionTimestamp") is None
    reasons = [e["reason"] for e in kubectl("get", "events", "--field-selector",
                                            "involvedObject.name=borrow", "-o", "json").json()["items"]]
    assert "ClusterCreated" not in reasons and "ClusterDeleted" not in reasons


def test_a_job_on_a_missing_cluster_says_what_it_waits_for(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(on_cluster("orphan", "nowhere", "print('hi')")))
    obj = wait_for(kubectl, "daskjob", "orphan",
                   lambda o: "nowhere" in str((o.get("status") or {}).get("message")), timeout=30)
    status = obj["status"]
    assert status["message"] == (f"waiting: DaskCluster nowhere (spec.clusterRef) does not exist "
                                 f"in namespace {namespace}")
    assert status["jobStatus"] == "JobCreated" and status["clusterName"] == "nowhere"
    assert kubectl("get", "pods,daskclusters", "-o", "name").stdout == ""


def test_a_job_naming_both_a_cluster_and_a_cluster_ref_is_refused_by_the_api_server(
        kubectl: Kubectl, namespace: str) -> None:
    job = daskjob("both", "print('hi')")
    job["spec"]["clusterRef"] = {"name": "warm"}
    out = kubectl("apply", "-f", "-", input=json.dumps(job), check=False)
    assert out.returncode != 0
    assert "set exactly one of spec.cluster" in out.stderr
