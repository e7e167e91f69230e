"""Two operator replicas with kopf peering: one works, the other stands by and takes over.

The replicas run as the chart runs them with ``replicas > 1`` (``--peering`` on a KopfPeering in
the watched namespace), with a short peering lifetime so that a killed leader's keep-alive lapses
in seconds. The second job's runner waits for a file the test writes only after the takeover, so
the standby must finish a job whose cluster and runner the killed leader made.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob
from .operator_procs import OperatorProcess, eventually, plane_without_operator, sample

pytestmark = pytest.mark.timeout(180)

NS = "ha"
PEERING = "dask-operator"
# The runner waits until the test listens on a loopback port: Pods share the machine's network,
# but not its files (the kubelet runs them as their own users, with the host's private
# directories hidden), and the default Pod policy refuses hostPath volumes.
WAIT_FOR_RELEASE = """
    import os, socket, time
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(os.environ["RELEASE_PORT"])), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    print("released")
"""


def replica(k: Kubectl, log: Path, priority: int) -> OperatorProcess:
    return OperatorProcess(k.kubeconfig, NS, log, "--peering", PEERING, "--priority", str(priority),
                           "--peering-lifetime", "6")


def role(op: OperatorProcess) -> str | None:
    code, body = op.readiness()
    return body.get("role") if code == 200 else None


def phase(k: Kubectl, name: str) -> str:
    return k("get", "daskjob", name, "-o", "jsonpath={.status.jobStatus}", check=False).stdout


def pods(k: Kubectl, component: str, cluster: str) -> list[dict[str, Any]]:
    return k("get", "pods", "-l", f"dask.org/component={component},dask.org/cluster-name={cluster}",
             "-o", "json").json()["items"]


def passes(op: OperatorProcess) -> float:
    return sum(v for (name, _), v in op.scrape().items() if name == "dask_operator_reconciles_total")


def test_the_standby_takes_over_a_running_job_from_a_killed_leader(tmp_path: Path) -> None:
    with plane_without_operator(tmp_path, NS) as k:
        k("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}))
        release: socket.socket | None = None
        leader = replica(k, tmp_path / "leader.log", 200)
        standby = replica(k, tmp_path / "standby.log", 100)
        try:
            leader.start().wait_ready()
            eventually(lambda: role(leader) == "active", 30, "the first replica to lead")
            standby.start().wait_ready()
            assert role(standby) == "standby"

            k("apply", "-f", "-", input=json.dumps(daskjob("first", "print('one')", workers=0)))
            eventually(lambda: phase(k, "first") == "Successful", 90, "the first job")
            release = socket.socket()  # bound, not listening: the runner's connects are refused
            release.bind(("127.0.0.1", 0))
            k("apply", "-f", "-", input=json.dumps(daskjob(
                "second", WAIT_FOR_RELEASE, workers=0,
                env=[{"name": "RELEASE_PORT", "value": str(release.getsockname()[1])}])))
            runner = eventually(lambda: [p for p in pods(k, "job-runner", "second")
                                         if p.get("status", {}).get("phase") == "Running"],
                                90, "the second job's runner to run")
            scheduler = pods(k, "scheduler", "second")
            assert len(runner) == 1 and len(scheduler) == 1

            # Until now only the leader has acted: the standby ran no reconcile pass at all.
            assert passes(leader) > 0
            m = standby.scrape()
            assert passes(standby) == 0 and sample(m, "dask_operator_leader") == 0
            assert sample(m, "dask_operator_managed_objects", kind="DaskJob") == 0

            leader.stop(signal.SIGKILL)
            eventually(lambda: role(standby) == "active", 30, "the standby to take over")
            eventually(lambda: passes(standby) > 0, 30, "the new leader to reconcile")
            # it adopted the scheduler the old leader made instead of making another
            assert [p["metadata"]["uid"] for p in pods(k, "scheduler", "second")] == \
                [scheduler[0]["metadata"]["uid"]]
            release.listen()
            eventually(lambda: phase(k, "second") == "Successful", 60, "the second job")

            status = k("get", "daskjob", "second", "-o", "json").json()["status"]
            assert status["attempts"] == 1
            assert status["jobRunnerPodName"] == runner[0]["metadata"]["name"]
            # the new leader adopted what the old one made: the same runner, no second one
            after = pods(k, "job-runner", "second")
            assert [p["metadata"]["uid"] for p in after] == [runner[0]["metadata"]["uid"]]
            assert "released" in k("logs", runner[0]["metadata"]["name"]).stdout
            created = [e for e in k("get", "events", "-o", "json").json()["items"]
                       if e["involvedObject"]["name"] == "second"
                       and e["reason"] in ("RunnerCreated", "ClusterCreated")]
            assert sorted(e["reason"] for e in created) == ["ClusterCreated", "RunnerCreated"]
            assert all(e.get("count", 1) == 1 for e in created)
        finally:
            if release is not None:
                release.close()
            leader.stop(signal.SIGKILL)
            standby.stop()
