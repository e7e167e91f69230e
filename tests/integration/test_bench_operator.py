"""bench/operator.py at tiny sizes, so the benchmark cannot rot between the runs that matter.

The benchmark starts its own control plane and operators, like a user would run it. Upstream's
operator is measured only if its virtualenv already exists (CI has no reason to pip-install it
on every run): then both columns must be filled; otherwise the report must say why upstream is
missing, and ours must still be measured.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def upstream_version() -> str | None:
    """The benchmark's own check, loaded from its file (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_operator_procs",
                                                  BENCH / "_operator_procs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.upstream_version()  # type: ignore[no-any-return]


pytestmark = pytest.mark.timeout(280)

# The cheap workloads: stand-in schedulers and Pending Pods, plus one real scheduler and two
# real workers; they exercise the counting proxy, /metrics, RSS sampling and the CRD swap.
WORKLOADS = "jobs,scale,pods"


def test_quick_benchmark_fills_the_table_or_says_why(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run = subprocess.run([sys.executable, str(BENCH / "operator.py"), "--quick", "--no-install",
                          "--workloads", WORKLOADS, "--json", str(out)],
                         capture_output=True, text=True, timeout=270)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    ours = report["results"]["ours"]
    assert report["errors"]["ours"] == {}, report["errors"]["ours"]
    assert ours["3 jobs: makespan, all Successful (s)"] > 0
    assert ours["3 jobs: operator API requests per job"] >= 3  # create cluster, runner, status
    assert ours["3 jobs: all API requests per job (/metrics)"] > ours[
        "3 jobs: operator API requests per job"]  # the kubelet and the benchmark add theirs
    assert 0 < ours["scale 0→2: 2 worker Pods exist (s)"] <= ours["scale 0→2: 2 workers connected (s)"]
    assert ours["scale 0→2: operator API requests per worker"] >= 1  # its Pod's create
    assert ours["scale 0→2: all API requests per worker (/metrics)"] > ours[
        "scale 0→2: operator API requests per worker"]  # the kubelet's status writes
    assert "ours: operator requests during scale 0→2" in report["details"]
    assert 20 < ours["50 unrelated Pods: peak operator RSS (MiB)"] < 2000
    assert "figure" in run.stdout and "ours/upstream" in run.stdout

    if upstream_version() is None:
        assert report["results"]["upstream"] == {}
        assert "upstream not measured" in run.stdout and "--no-install" in run.stdout
    else:
        assert report["errors"]["upstream"] == {}, report["errors"]["upstream"]
        assert set(report["results"]["upstream"]) == set(ours)


def test_the_floor_runs_the_processes_our_operator_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The floor's Pods are the trivial DaskJob's, as our operator builds them, minus the owner
    bookkeeping; otherwise ours/floor would compare different work."""
    from dask_kube_jobs.operator import builders

    monkeypatch.syspath_prepend(str(BENCH))
    floor = importlib.import_module("_operator_floor")
    manifests = importlib.import_module("_operator_manifests")
    scheduler, service, worker, runner = floor.floor_objects("ns-1")
    job = manifests.daskjob(floor.CLUSTER, manifests.TRIVIAL_RUNNER, workers=1)
    job["metadata"].update(namespace="ns-1", uid="u-1")
    cluster = builders.job_cluster(job)
    cluster["metadata"]["uid"] = "u-2"  # as the API server gives it
    group = builders.default_worker_group(cluster)
    group["metadata"]["uid"] = "u-3"
    assert scheduler["spec"] == builders.scheduler_pod(cluster)["spec"]
    assert service["spec"] == builders.scheduler_service(cluster)["spec"]
    assert runner["spec"] == builders.runner_pod(job, 0)["spec"]
    ours = builders.worker_pod(group, "abc")

    def env_of(pod: dict) -> dict[str, str]:
        return {e["name"]: e["value"] for e in pod["spec"]["containers"][0].pop("env")}

    assert env_of(worker) == {**env_of(ours), "DASK_WORKER_NAME": worker["metadata"]["name"]}
    assert worker["spec"] == ours["spec"]
    for pod in (scheduler, worker, runner):
        labels = pod["metadata"]["labels"]
        assert labels["dask.org/cluster-name"] == floor.CLUSTER, labels
