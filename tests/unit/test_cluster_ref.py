"""DaskJobs on an existing cluster (spec.clusterRef) from the library, the CLI and the builders:
the manifest names the cluster, carries no cluster of its own, and a mix is refused early."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dask_kube_jobs import SpecError, cli, make_job_spec
from dask_kube_jobs._cli_jobs import job_manifest
from dask_kube_jobs.asyncio import check_job_manifest, with_cluster_ref
from dask_kube_jobs.operator import builders


def test_make_job_spec_with_a_cluster_ref_makes_no_cluster() -> None:
    job = make_job_spec("step", command=["python", "-c", "print(1)"], cluster_ref="warm")
    assert job["spec"]["clusterRef"] == {"name": "warm"} and "cluster" not in job["spec"]
    check_job_manifest(job)


@pytest.mark.parametrize("kwargs,argument", [
    pytest.param({"cluster_metadata": {"labels": {"a": "b"}}}, "cluster_metadata", id="metadata"),
    pytest.param({"keep_cluster_on_failure": True}, "keep_cluster_on_failure", id="keep"),
    pytest.param({"cluster_ref": "Not_A_Name"}, "cluster_ref", id="bad-name"),
])
def test_cluster_arguments_with_a_cluster_ref_are_refused(kwargs: dict, argument: str) -> None:
    with pytest.raises(SpecError) as caught:
        make_job_spec("step", command=["true"], **{"cluster_ref": "warm", **kwargs})
    assert caught.value.argument == argument


def test_a_manifest_with_both_or_a_bad_ref_is_refused_naming_the_field() -> None:
    job = make_job_spec("step", command=["true"])
    both = {**job, "spec": {**job["spec"], "clusterRef": {"name": "warm"}}}
    with pytest.raises(SpecError, match="set exactly one") as caught:
        check_job_manifest(both)
    assert caught.value.argument == "spec.clusterRef"
    with pytest.raises(SpecError) as caught:
        check_job_manifest(with_cluster_ref(job, ""))
    assert caught.value.argument == "spec.clusterRef.name"


def test_with_cluster_ref_replaces_the_cluster_and_leaves_the_original_alone() -> None:
    job = make_job_spec("step", command=["true"])
    moved = with_cluster_ref(job, "warm")
    assert moved["spec"]["clusterRef"] == {"name": "warm"} and "cluster" not in moved["spec"]
    assert "cluster" in job["spec"] and "clusterRef" not in job["spec"]


def test_cli_cluster_flag_from_flags_and_from_a_file(tmp_path: Path) -> None:
    args = cli.build_parser().parse_args(["run", "--cluster", "warm", "--name", "s"])
    args.argv = ["true"]  # what main() splits off after `--`
    assert job_manifest(args) == make_job_spec("s", command=["true"], cluster_ref="warm")
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(make_job_spec("orig", command=["true"])))
    manifest = job_manifest(cli.build_parser().parse_args(["submit", str(path), "--cluster", "warm"]))
    assert manifest["spec"]["clusterRef"] == {"name": "warm"} and "cluster" not in manifest["spec"]
    with pytest.raises(SpecError) as caught:
        job_manifest(cli.build_parser().parse_args(["run", str(path), "--cluster", "warm", "--workers", "2"]))
    assert caught.value.argument == "--workers"


def test_the_runner_of_a_job_on_an_existing_cluster_gets_that_scheduler() -> None:
    job = make_job_spec("step", command=["true"], cluster_ref="warm")
    job["metadata"].update(namespace="data", uid="u-1")
    pod = builders.runner_pod(job, 1)
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DASK_SCHEDULER_ADDRESS"] == "tcp://warm-scheduler.data.svc.cluster.local:8786"
    assert builders.cluster_of_job(job) == "warm"
    del job["spec"]["clusterRef"]
    assert builders.cluster_of_job(job) == "step"  # a job's own cluster bears its name


@pytest.mark.parametrize("status,words", [
    pytest.param({"phase": "Running", "conditions": [
        {"type": "SchedulerReady", "status": "False", "reason": "SchedulerFailed",
         "message": "the scheduler Pod ended: exit 7"}]},
        "is not ready: SchedulerFailed: the scheduler Pod ended: exit 7", id="scheduler-words"),
    pytest.param({}, "is not ready: its phase is not set yet", id="new"),
    pytest.param({"phase": "Pending", "conditions": [
        {"type": "Admitted", "status": "False", "reason": "LimitExceeded", "message": "too big"}]},
        "its phase is Pending (LimitExceeded: too big)", id="held-by-limits"),
    pytest.param({"phase": "Failed", "conditions": [
        {"type": "Failed", "status": "True", "reason": "PolicyViolation", "message": "hostPath"}]},
        "its phase is Failed (PolicyViolation: hostPath)", id="refused"),
])
def test_a_job_waiting_for_an_existing_cluster_says_why_in_the_clusters_words(status: dict, words: str) -> None:
    from dask_kube_jobs.operator.cluster_ref import _why_not_ready

    why = _why_not_ready({"metadata": {"name": "warm"}, "status": status}, "warm")
    assert why.startswith("the scheduler of DaskCluster warm (spec.clusterRef) is not ready: ")
    assert words in why, why
