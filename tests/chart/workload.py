"""The workload the chart's operator is judged by: a small DaskJob, and waiting for its end.

Shared by the chart's install test and the image test (``tests/image``), so both judge an
operator, from the chart's Pod or from the container image, by the same job.
"""

from __future__ import annotations

import json
import textwrap
import time
from typing import Any

from dask_kube_jobs.local.testing import Kubectl

IMAGE = "ghcr.io/dask/dask:2025.1.0"


def wait_for(what: str, check: Any, timeout: float = 120, every: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy, which is returned; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def daskjob(name: str) -> dict[str, Any]:
    """One scheduler, one worker, and a runner that computes on them and prints a marker."""
    def container(cname: str, args: list[str], **extra: Any) -> dict[str, Any]:
        return {"name": cname, "image": IMAGE, "args": args, **extra}

    script = textwrap.dedent("""
        from dask.distributed import Client
        client = Client()
        client.wait_for_workers(1)
        assert client.submit(sum, [1, 2, 3]).result() == 6
        print("sum on the cluster: ok")
    """)
    return {
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob", "metadata": {"name": name},
        "spec": {
            "job": {"spec": {"containers": [container("runner", ["python", "-c", script])]}},
            "cluster": {"spec": {
                "worker": {"replicas": 1, "spec": {"containers": [container(
                    "worker", ["dask", "worker", "--name", "$(DASK_WORKER_NAME)",
                               "--nthreads", "1", "--no-dashboard"])]}},
                "scheduler": {
                    "spec": {"containers": [container(
                        "scheduler", ["dask", "scheduler", "--no-dashboard"],
                        ports=[{"name": "tcp-comm", "containerPort": 8786}],
                        readinessProbe={"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1})]},
                    "service": {"ports": [{"name": "tcp-comm", "port": 8786,
                                           "targetPort": "tcp-comm"}]},
                },
            }},
        },
    }


def job_status(k: Kubectl, name: str, namespace: str) -> dict[str, Any]:
    """The DaskJob's status as `k` sees it; {} while it does not exist (or has none)."""
    out = k("get", "daskjob", name, "-o", "json", namespace=namespace, check=False)
    return (json.loads(out.stdout).get("status") or {}) if out.returncode == 0 else {}
