"""DaskJobs on an existing DaskCluster (``spec.clusterRef``) on the local control plane: what a
job says while its cluster is missing, and the CRD's rule. A job that succeeds on a shared
cluster and leaves it running is the example's test (tests/integration/examples,
examples/job-on-shared-cluster.yaml), not repeated here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob
from .test_daskjob import wait_for

pytestmark = pytest.mark.timeout(60)


def on_cluster(name: str, cluster: str, script: str) -> dict[str, Any]:
    job = daskjob(name, script)
    del job["spec"]["cluster"]
    job["spec"]["clusterRef"] = {"name": cluster}
    return job


def test_a_job_on_a_missing_cluster_says_what_it_waits_for(kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(on_cluster("orphan", "nowhere", "print('hi')")))
    obj = wait_for(kubectl, "daskjob", "orphan",
                   lambda o: "nowhere" in str((o.get("status") or {}).get("message")), timeout=30)
    status = obj["status"]
    assert status["message"] == (f"waiting: DaskCluster nowhere (spec.clusterRef) does not exist "
                                 f"in namespace {namespace}")
    assert status["jobStatus"] == "JobCreated" and status["clusterName"] == "nowhere"
    assert status["reason"] == "ClusterNotFound"
    assert kubectl("get", "pods,daskclusters", "-o", "name").stdout == ""


def test_a_job_naming_both_a_cluster_and_a_cluster_ref_is_refused_by_the_api_server(
        kubectl: Kubectl, namespace: str) -> None:
    job = daskjob("both", "print('hi')")
    job["spec"]["clusterRef"] = {"name": "warm"}
    out = kubectl("apply", "-f", "-", input=json.dumps(job), check=False)
    assert out.returncode != 0
    assert "set exactly one of spec.cluster" in out.stderr
