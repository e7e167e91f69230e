"""Upstream's own DaskJob manifest and object helpers against our operator.

The manifest is the one upstream's controller tests apply (shipped in its wheel), so this is
"manifests written for the upstream operator apply and work unchanged" checked on upstream's
words, not ours. The status fields upstream's tests read are checked for presence and shape;
where ours differ on purpose (the runner's name, and when it is written) the test says so.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import dask_kubernetes
import pytest
import yaml
from dask_kubernetes.operator._objects import DaskJob

from dask_kube_jobs.local.testing import Kubectl

from .support import eventually

pytestmark = pytest.mark.timeout(300)

UPSTREAM_RESOURCES = Path(dask_kubernetes.__file__).parent / "operator/controller/tests/resources"


def job_status(kubectl: Kubectl, name: str) -> dict[str, Any]:
    return kubectl("get", "daskjob", name, "-o", "json").json().get("status") or {}


async def upstream_view(name: str, namespace: str) -> tuple[str, str]:
    """The runner Pod and cluster that upstream's DaskJob helpers find (by labels and name)."""
    job = await DaskJob.get(name, namespace=namespace)
    pod = await job.pod()
    cluster = await job.cluster()
    return pod.name, cluster.name


def test_upstreams_simple_job_runs_and_reports_upstreams_status_fields(
        namespace: str, kubectl: Kubectl) -> None:
    manifest = yaml.safe_load((UPSTREAM_RESOURCES / "simplejob.yaml").read_text())
    # Upstream's runner connects and exits at once; a few seconds more let us look at it.
    runner = manifest["spec"]["job"]["spec"]["containers"][0]
    runner["args"][-1] += "; import time; time.sleep(5)"
    kubectl("apply", "-f", "-", input=json.dumps(manifest))

    seen: list[str] = []

    def reached(phase: str) -> dict[str, Any] | None:
        status = job_status(kubectl, "simple-job")
        if status.get("jobStatus") and status["jobStatus"] not in seen:
            seen.append(status["jobStatus"])
        return status if status.get("jobStatus") == phase else None

    running = eventually(lambda: reached("Running"), timeout=120, what="jobStatus Running")
    # Upstream names the cluster after the job, and so do we; the runner's name differs
    # (ours carries the job's uid and the attempt) and is written once the runner exists.
    assert running["clusterName"] == "simple-job"
    assert running["jobRunnerPodName"].startswith("simple-job-runner-")
    pod_name, cluster_name = asyncio.run(upstream_view("simple-job", namespace))
    assert (pod_name, cluster_name) == (running["jobRunnerPodName"], "simple-job")

    final = eventually(lambda: reached("Successful"), timeout=120, what="jobStatus Successful")
    assert {"clusterName", "jobRunnerPodName", "jobStatus", "startTime", "endTime"} <= set(final)
    assert seen[-2:] == ["Running", "Successful"]
    assert [p for p in ("JobCreated", "ClusterCreated", "Running", "Successful")
            if p in seen] == seen
