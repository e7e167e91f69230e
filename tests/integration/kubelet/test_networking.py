"""Pod networking end to end: two Dask clusters side by side on the local control plane.

Each cluster is what the operator would make of a DaskJob: a scheduler Pod behind a Service
(whose port maps to a *named* target port), two worker Pods and a runner Pod that finds the
scheduler through ``DASK_SCHEDULER_ADDRESS=tcp://<svc>.<ns>.svc.cluster.local:8786``. Both
schedulers listen on 8786, each on its own Pod IP; ``kubectl logs -f`` follows the runner to
the end of its output and then returns, as on a real cluster.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from typing import Any

import pytest

from dask_kube_jobs.local.testing import KUBECTL, Kubectl

pytestmark = pytest.mark.kubectl

RUNNER = """
import json, os, time
print("runner starting", flush=True)
time.sleep(2)  # long enough for a log follower to attach
import dask.array as da
from dask.distributed import Client
with Client() as client:  # DASK_SCHEDULER_ADDRESS, as the operator injects it
    client.wait_for_workers(2, timeout=60)
    info = client.scheduler_info()
    total = int(da.arange(1_000_000, chunks=100_000).sum().compute())
    print("RESULT " + json.dumps({"total": total, "scheduler": info["address"],
                                   "workers": sorted(info["workers"])}), flush=True)
print("runner done", flush=True)
"""


def cluster(name: str, ns: str) -> list[dict[str, Any]]:
    address = f"tcp://{name}-scheduler.{ns}.svc.cluster.local:8786"
    labels = {"dask.org/cluster-name": name}

    def pod(suffix: str, component: str, container: dict[str, Any], restart: str = "Always") -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-{suffix}",
                             "labels": {**labels, "dask.org/component": component}},
                "spec": {"restartPolicy": restart, "containers": [container]}}

    scheduler = pod("scheduler", "scheduler", {
        "name": "scheduler", "image": "ghcr.io/dask/dask:latest",
        "args": ["dask", "scheduler", "--dashboard-address", ":8787"],
        "ports": [{"name": "tcp-comm", "containerPort": 8786}, {"name": "http-dashboard", "containerPort": 8787}],
        "readinessProbe": {"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1},
    })
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"{name}-scheduler"},
               "spec": {"selector": {**labels, "dask.org/component": "scheduler"},
                        "ports": [{"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"},
                                  {"name": "http-dashboard", "port": 8787, "targetPort": "http-dashboard"}]}}
    workers = [pod(f"worker-{i}", "worker", {
        "name": "worker", "image": "ghcr.io/dask/dask:latest",
        "args": ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", "1", "--no-dashboard"],
        "env": [{"name": "DASK_SCHEDULER_ADDRESS", "value": address},
                {"name": "DASK_WORKER_NAME", "value": f"{name}-worker-{i}"}],
    }) for i in range(2)]
    runner = pod("runner", "job-runner", {
        "name": "runner", "image": "ghcr.io/dask/dask:latest",
        "command": ["python", "-c", RUNNER],
        "env": [{"name": "DASK_SCHEDULER_ADDRESS", "value": address}],
    }, restart="Never")
    return [scheduler, service, *workers, runner]


def wait_for(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def follow_logs(kubectl: Kubectl, pod: str, timeout: float = 180) -> str:
    """``kubectl logs -f`` from as early as the container allows, until it returns by itself."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run([KUBECTL, "--kubeconfig", kubectl.kubeconfig, "-n", str(kubectl.namespace),
                               "logs", "-f", pod], capture_output=True, text=True,
                              timeout=max(1.0, deadline - time.monotonic()))
        if proc.returncode == 0:
            return proc.stdout
        assert "waiting to start" in proc.stderr or "ContainerCreating" in proc.stderr, proc.stderr
        time.sleep(0.3)
    raise AssertionError(f"kubectl logs -f {pod} never attached")


@pytest.mark.timeout(400)
def test_two_dask_clusters_side_by_side(kubectl: Kubectl, namespace: str) -> None:
    objects = cluster("alpha", namespace) + cluster("beta", namespace)
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}))

    followed = {name: follow_logs(kubectl, f"{name}-runner") for name in ("alpha", "beta")}

    def runners_done() -> dict[str, Any] | None:
        pods = {p["metadata"]["name"]: p for p in kubectl("get", "pods", "-o", "json").json()["items"]}
        phases = {n: pods[f"{n}-runner"]["status"].get("phase") for n in ("alpha", "beta")}
        assert "Failed" not in phases.values(), kubectl("logs", "alpha-runner", check=False).stdout
        return pods if set(phases.values()) == {"Succeeded"} else None

    pods = wait_for(runners_done, 240, "both runners to succeed")
    ips = {name: p["status"]["podIP"] for name, p in pods.items()}
    assert len(set(ips.values())) == len(ips)  # every Pod its own address
    assert all(ip.startswith("127.") for ip in ips.values())  # loopback, one /16 per kubelet

    for name in ("alpha", "beta"):
        log = followed[name]
        assert log.startswith("runner starting\n") and log.endswith("runner done\n"), log
        result = json.loads(next(line for line in log.splitlines() if line.startswith("RESULT "))[7:])
        assert result["total"] == sum(range(1_000_000))
        # the Service name led to this cluster's scheduler, which listens on 8786 at its Pod IP
        assert result["scheduler"] == f"tcp://{ips[f'{name}-scheduler']}:8786"
        worker_hosts = sorted(w.split("//")[1].rsplit(":", 1)[0] for w in result["workers"])
        assert worker_hosts == sorted(ips[f"{name}-worker-{i}"] for i in range(2))
        # the same through kubectl logs without -f (and the scheduler's own log)
        assert "runner done" in kubectl("logs", f"{name}-runner").stdout
        sched_log = kubectl("logs", f"{name}-scheduler").stdout
        assert f"tcp://{ips[f'{name}-scheduler']}:8786" in sched_log
        # the host reaches Pods at their addresses
        with socket.create_connection((ips[f"{name}-scheduler"], 8786), timeout=5):
            pass


def test_kubectl_log_options_reach_the_kubelet(kubectl: Kubectl, namespace: str) -> None:
    script = "import sys\nfor i in range(5): print(f'line {i}')\nprint('oops', file=sys.stderr)"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "chatty"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "python:3.11", "command": ["python", "-c", script]}]}}))

    def phase() -> str | None:
        value = kubectl("get", "pod", "chatty", "-o", "jsonpath={.status.phase}").stdout
        return value if value in ("Succeeded", "Failed") else None

    assert wait_for(phase, 60, "chatty to finish") == "Succeeded"
    lines = [f"line {i}" for i in range(5)]
    assert sorted(kubectl("logs", "chatty").stdout.splitlines()) == sorted([*lines, "oops"])
    assert kubectl("logs", "chatty", "--tail=1").stdout.strip() in ("oops", "line 4")
    assert len(kubectl("logs", "chatty", "--tail=3").stdout.splitlines()) == 3
    assert kubectl("logs", "chatty", "--limit-bytes=4").stdout == "line"
    assert len(kubectl("logs", "chatty", "--since=1h").stdout.splitlines()) == 6
    stamped = kubectl("logs", "chatty", "--timestamps").stdout.splitlines()
    assert all(len(s.split(" ", 1)[0]) == 30 and s.split(" ", 1)[0].endswith("Z") for s in stamped)
    failed = kubectl("logs", "chatty", "--previous", check=False)
    assert failed.returncode != 0
    assert 'previous terminated container "c" in pod "chatty" not found' in failed.stderr
