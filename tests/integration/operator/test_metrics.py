"""The operator process's observability: Prometheus metrics, readiness and JSON-line logs.

One operator of the test's own (``--metrics``, ``--readiness``, ``--log-format json``) runs a
DaskJob to success and one to failure; the scrape must show exactly those outcomes, and a
restarted operator must not count them again, nor reconcile settled objects on a timer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import cluster_spec, daskjob
from .operator_procs import OperatorProcess, Samples, eventually, plane_without_operator, sample

pytestmark = pytest.mark.timeout(300)

NS = "observed"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kubectl]:
    with plane_without_operator(tmp_path_factory.mktemp("metrics-plane"), NS) as k:
        yield k


def terminal(k: Kubectl, name: str) -> str | None:
    out = k("get", "daskjob", name, "-o", "jsonpath={.status.jobStatus}", check=False).stdout
    return out if out in ("Successful", "Failed") else None


def scrape_until(op: OperatorProcess, ok: Callable[[Samples], bool], what: str) -> Samples:
    def probe() -> Samples | None:
        samples = op.scrape()
        return samples if ok(samples) else None
    return eventually(probe, 30, what)


def passes_by_kind(m: Samples) -> dict[str, float]:
    """Reconcile passes so far, by kind."""
    return {kind: sample(m, "dask_operator_reconciles_total", kind=kind, result="ok")
            + sample(m, "dask_operator_reconciles_total", kind=kind, result="error")
            for kind in ("DaskJob", "DaskCluster", "DaskWorkerGroup")}


def quiet_passes(op: OperatorProcess) -> dict[str, float] | None:
    """The pass counts, once no pass has run for a second (the first passes and the writes
    they cause are over); None until then."""
    first = passes_by_kind(op.scrape())
    time.sleep(1)
    return first if passes_by_kind(op.scrape()) == first and all(first.values()) else None


def test_metrics_readiness_and_json_logs_follow_the_jobs(plane: Kubectl, tmp_path: Path) -> None:
    op = OperatorProcess(plane.kubeconfig, NS, tmp_path / "operator.log", "--log-format", "json")
    try:
        op.start()
        assert op.wait_ready() == {"ready": True, "role": "standalone"}

        plane("apply", "-f", "-", input=json.dumps(daskjob("fine", "print('done')", workers=0)))
        plane("apply", "-f", "-", input=json.dumps(daskjob("broken", "raise SystemExit(3)", workers=0)))
        plane("apply", "-f", "-", input=json.dumps({
            "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "metadata": {"name": "calm"},
            "spec": cluster_spec(0)}))
        assert eventually(lambda: terminal(plane, "fine"), 120, "job fine to finish") == "Successful"
        assert eventually(lambda: terminal(plane, "broken"), 120, "job broken to finish") == "Failed"
        reason = plane("get", "daskjob", "broken", "-o", "jsonpath={.status.reason}").stdout

        # The job gauges follow the next pass of each daemon, which the status write wakes.
        m = scrape_until(op, lambda s: sample(s, "dask_operator_jobs", phase="Successful") == 1
                         and sample(s, "dask_operator_jobs", phase="Failed") == 1, "job gauges")
        assert sample(m, "dask_operator_job_outcomes_total", phase="Successful", reason="Completed") == 1
        assert sample(m, "dask_operator_job_outcomes_total", phase="Failed", reason=reason) == 1
        assert sum(v for (name, _), v in m.items() if name == "dask_operator_job_outcomes_total") == 2
        for phase in ("Successful", "Failed"):
            assert sample(m, "dask_operator_job_duration_seconds_count", phase=phase) == 1
            assert 0 < sample(m, "dask_operator_job_duration_seconds_sum", phase=phase) < 120
        assert sample(m, "dask_operator_managed_objects", kind="DaskJob") == 2
        for kind in ("DaskJob", "DaskCluster", "DaskWorkerGroup"):
            passes = sample(m, "dask_operator_reconciles_total", kind=kind, result="ok") + \
                sample(m, "dask_operator_reconciles_total", kind=kind, result="error")
            assert passes > 0, kind
            assert sample(m, "dask_operator_reconcile_duration_seconds_count", kind=kind) == passes
        # every job pass after the first was asked for by a watch event or a timer
        assert sample(m, "dask_operator_queue_latency_seconds_count", kind="DaskJob") > 0
        assert sample(m, "dask_operator_pods", component="job-runner", phase="Succeeded") == 1
        assert sample(m, "dask_operator_pods", component="job-runner", phase="Failed") == 1
        assert sample(m, "dask_operator_leader") == 1
        assert sample(m, "process_cpu_seconds_total") > 0

        lines = [json.loads(line) for line in op.log.read_text().splitlines() if line.strip()]
        assert lines and all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
        assert any(line["logger"].startswith("kopf") for line in lines)
        # our own loggers' records carry the object their daemon is reconciling
        assert any(line["logger"] == "dask_kube_jobs.operator" and line.get("kind") == "DaskJob"
                   and line.get("namespace") == NS and line.get("name") == "fine"
                   and "Successful" in line["message"] for line in lines), lines[-20:]

        # A restarted operator sees both jobs terminal already: it manages them, counts nothing.
        op.stop()
        op.start()
        op.wait_ready()
        m = scrape_until(op, lambda s: sample(s, "dask_operator_managed_objects", kind="DaskJob") == 2,
                         "the restarted operator to pick up both jobs")
        assert not any(name.startswith("dask_operator_job_outcomes") for name, _ in m)
        assert sample(m, "dask_operator_job_duration_seconds_count", phase="Successful") == 0

        # Settled objects (two finished jobs, a cluster whose scheduler is ready, its empty
        # worker group) are not reconciled on a timer: no pass at all for longer than the
        # 10 s resync every object used to have.
        plane("wait", "daskcluster/calm", "--for=condition=SchedulerReady", "--timeout=60s")
        before = eventually(lambda: quiet_passes(op), 30, "the restarted operator to settle")
        time.sleep(11)
        assert passes_by_kind(op.scrape()) == before
    finally:
        op.stop()
