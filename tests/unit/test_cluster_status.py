"""ClusterStatus: what a DaskCluster's status means to every reader, and the cluster manifest
loader they share."""

from __future__ import annotations

from pathlib import Path

import pytest

from dask_kube_jobs import make_cluster_spec
from dask_kube_jobs.clusters import ClusterStatus, load_cluster_manifest


def cluster(phase: str | None, ready: int = 0, conditions: list | None = None) -> dict:
    return {"metadata": {"name": "c", "namespace": "ns"},
            "status": {"phase": phase, "readyWorkers": ready, "conditions": conditions or []}}


READY = [{"type": "SchedulerReady", "status": "True", "reason": "PodReady"}]


def test_ready_means_a_running_scheduler_and_enough_ready_workers() -> None:
    assert ClusterStatus.from_cluster(cluster("Running", 2, READY)).ready(2)
    assert not ClusterStatus.from_cluster(cluster("Running", 1, READY)).ready(2)
    # Running is upstream's "actioned" (scheduler Pod and Service made): not yet ready
    assert not ClusterStatus.from_cluster(cluster("Running", 2)).running
    assert not ClusterStatus.from_cluster(cluster("Pending", 5)).ready(0)
    assert ClusterStatus.from_cluster(None).phase is None
    assert ClusterStatus.from_cluster(cluster("Failed")).failed


def test_the_problem_is_said_in_the_conditions_words_and_only_when_they_say_so() -> None:
    conds = [{"type": "SchedulerReady", "status": "True", "reason": "Ready", "message": "ok"},
             {"type": "WorkersReady", "status": "False", "reason": "Unschedulable",
              "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."},
             {"type": "Failed", "status": "False", "reason": "Created", "message": "fine"}]
    st = ClusterStatus.from_cluster(cluster("Running", 0, conds))
    assert st.problem() == "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."
    assert st.describe(1) == ("Running with 0/1 ready worker(s); 0/1 nodes are available: "
                              "1 Insufficient nvidia.com/gpu.")
    refused = [{"type": "SchedulerReady", "status": "False", "reason": "Waiting"},
               {"type": "InvalidName", "status": "True", "reason": "InvalidName",
                "message": "must start with a letter"}]
    assert ClusterStatus.from_cluster(cluster("Failed", 0, refused)).problem() == \
        "must start with a letter; Waiting"
    assert ClusterStatus.from_cluster(cluster("Running", 1, conds[:1])).problem() is None


def test_manifests_load_from_dicts_files_and_text_and_are_checked(tmp_path: Path) -> None:
    spec = make_cluster_spec("x", n_workers=1)
    loaded = load_cluster_manifest(spec)
    loaded["spec"]["worker"]["replicas"] = 5
    assert spec["spec"]["worker"]["replicas"] == 1  # the caller's dict is not changed
    (tmp_path / "c.yaml").write_text("metadata: {name: y}\nspec: {}\n")
    assert load_cluster_manifest(tmp_path / "c.yaml")["metadata"]["name"] == "y"
    assert load_cluster_manifest(str(tmp_path / "c.yaml"))["kind"] == "DaskCluster"
    assert load_cluster_manifest("metadata: {name: z}\nspec: {}\n")["metadata"]["name"] == "z"
    with pytest.raises(ValueError, match="custom_cluster_spec: metadata.name is required"):
        load_cluster_manifest({"spec": {}}, argument="custom_cluster_spec", require_name=True)
    with pytest.raises(ValueError, match="cannot read"):
        load_cluster_manifest(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="must be a DaskCluster .got 'DaskJob'"):
        load_cluster_manifest({"kind": "DaskJob", "spec": {}})
