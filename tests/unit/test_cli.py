"""The `dask-kube-jobs` command without a cluster: parsing, manifests from flags, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from dask_kube_jobs import JobStatus, SpecError, cli, make_cluster_spec, make_job_spec
from dask_kube_jobs._cli_jobs import Progress


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No kubeconfig anywhere: empty HOME, no $KUBECONFIG, not in a Pod."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return tmp_path


def errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_gen_job_prints_what_make_job_spec_builds(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["gen", "job", "--name", "sums", "--workers", "2", "--env", "A=1", "--image", "img:1",
            "--backoff-limit", "2", "--", "python", "-c", "print(1)"]
    assert cli.main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == make_job_spec("sums", image="img:1", command=["python", "-c", "print(1)"],
                                    n_workers=2, env={"A": "1"}, backoff_limit=2)


def test_gen_cluster_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["gen", "cluster", "--name", "c1", "--workers", "4", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == make_cluster_spec("c1", n_workers=4)


def test_gen_job_from_a_script_gets_a_generated_name(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "Nightly_ETL.py"
    script.write_text("print('etl')\n")
    assert cli.main(["gen", "job", "--script", str(script)]) == 0
    name = yaml.safe_load(capsys.readouterr().out)["metadata"]["name"]
    assert name.startswith("nightly-etl-") and len(name) == len("nightly-etl-") + 6


@pytest.mark.parametrize(("argv", "message"), [
    (["gen", "job", "--name", "x"], "error: FILE: give a manifest FILE, --script PATH, or --image"),
    (["gen", "job", "--name", "Bad_Name", "--", "true"], "error: name: 'Bad_Name' must consist"),
    (["gen", "job", "--name", "x", "--env", "NOVALUE", "--", "true"],
     "error: --env: 'NOVALUE' must look like NAME=VALUE"),
    (["gen", "job", "--name", "x", "--workers", "-1", "--", "true"], "error: n_workers:"),
], ids=["no-runner", "bad-name", "bad-env", "negative-workers"])
def test_bad_flags_are_one_line_naming_the_argument(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 1
    lines = errors(capsys)
    assert len(lines) == 1 and lines[0].startswith(message), lines


def test_a_bad_manifest_is_refused_before_any_connection(tmp_path: Path, no_cluster: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    job = make_job_spec("x", command=["true"], n_workers=1)
    job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]["image"] = ""
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    assert cli.main(["run", str(path)]) == 1
    assert errors(capsys) == ["error: spec.cluster.spec.worker.spec.containers[0].image: is "
                              "required (a non-empty string)"]
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    assert cli.main(["submit", str(path)]) == 1
    assert errors(capsys) == ["error: kind: must be DaskJob (got 'Pod')"]


def test_a_manifest_file_takes_name_and_workers_from_flags(tmp_path: Path) -> None:
    from dask_kube_jobs._cli_jobs import job_manifest

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(make_job_spec("orig", command=["true"], n_workers=3)))
    args = cli.build_parser().parse_args(["run", str(path), "--name", "renamed",
                                          "--workers", "1"])
    manifest = job_manifest(args)
    assert manifest["metadata"]["name"] == "renamed"
    assert manifest["spec"]["cluster"]["spec"]["worker"]["replicas"] == 1


def test_file_and_image_together_are_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", str(tmp_path / "x.yaml"), "--image", "img", "--", "true"]) == 1
    assert errors(capsys)[0].startswith("error: FILE: give a manifest FILE or --image")


def test_without_a_kubeconfig_the_hint_says_local(no_cluster: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["status", "some-job"]) == 1
    assert errors(capsys) == [
        "error: no kubeconfig found (looked at --kubeconfig, $KUBECONFIG, ~/.kube/config and "
        "the in-cluster service account)",
        "hint: run with --local, or start one with `dask-kube-jobs local up`, or pass "
        "--kubeconfig"]
    assert cli.main(["list", "--kubeconfig", str(no_cluster / "missing.yaml")]) == 1
    assert errors(capsys)[0] == f"error: kubeconfig {no_cluster / 'missing.yaml'} does not exist"


def test_the_local_up_kubeconfig_is_the_last_fallback(no_cluster: Path) -> None:
    from dask_kube_jobs.jobs._client import find_kubeconfig

    local = no_cluster / ".kube" / "dask-kube-jobs-local.yaml"
    local.parent.mkdir()
    local.write_text("{}")
    assert find_kubeconfig() == str(local)
    (no_cluster / ".kube" / "config").write_text("{}")
    assert find_kubeconfig() == str(no_cluster / ".kube" / "config")


def test_the_fallback_is_where_local_up_writes() -> None:
    from dask_kube_jobs.jobs._client import LOCAL_KUBECONFIG
    from dask_kube_jobs.local.kubeconfig import DEFAULT_KUBECONFIG

    assert LOCAL_KUBECONFIG == DEFAULT_KUBECONFIG


def test_debug_shows_the_traceback(no_cluster: Path) -> None:
    from dask_kube_jobs import KubeconfigError

    with pytest.raises(KubeconfigError):
        cli.main(["--debug", "status", "x"])


def test_a_command_after_dashes_only_where_it_means_something(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["status", "x", "--", "python"])
    assert info.value.code == 2
    assert "`status` takes no command after `--`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["run", "--image", "img", "--"])
    assert "nothing after `--`" in capsys.readouterr().err


def test_run_local_refuses_a_kubeconfig(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--local", "--kubeconfig", "kc.yaml", "--", "true"]) == 1
    assert errors(capsys)[0] == "error: --local: starts its own control plane; drop --kubeconfig"


def test_operator_gets_the_rest_of_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import dask_kube_jobs.operator.__main__ as operator_main

    seen: list[list[str]] = []
    monkeypatch.setattr(operator_main, "main", lambda argv: seen.append(argv))
    assert cli.main(["operator", "--namespace", "a", "-v", "--", "x"]) == 0
    assert seen == [["--namespace", "a", "-v", "--", "x"]]


def test_run_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("124 on --timeout", "130 on Ctrl-C", "--local", "--keep", "--quiet"):
        assert phrase in text


def test_progress_prints_one_line_per_change() -> None:
    out = io.StringIO()
    progress = Progress(quiet=False, stream=out)
    for raw in ({"jobStatus": "JobCreated"}, {"jobStatus": "JobCreated"},
                {"jobStatus": "ClusterCreated", "clusterName": "c"},
                {"jobStatus": "Running", "jobRunnerPodName": "r-1", "attempts": 1},
                {"jobStatus": "Running", "jobRunnerPodName": "r-2", "attempts": 2},
                {"jobStatus": "Failed", "reason": "Error", "message": "exit 3"}):
        progress.update(JobStatus.from_job({"status": raw}))
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["JobCreated", "ClusterCreated (Dask cluster c)", "Running (runner r-1)",
                     "Running (runner r-2, attempt 2)", "Failed (Error, exit 3)"]
    quiet = io.StringIO()
    Progress(quiet=True, stream=quiet).update(JobStatus.from_job({"status": raw}))
    assert quiet.getvalue() == ""


def test_progress_says_why_a_job_is_held_before_it_starts() -> None:
    out = io.StringIO()
    progress = Progress(quiet=False, stream=out)
    held = {"jobStatus": "JobCreated", "reason": "LimitExceeded",
            "message": "DaskJob quota of namespace team-a is full (2 of 2)"}
    for raw in ({"jobStatus": "JobCreated"}, held, held,
                {"jobStatus": "ClusterCreated", "clusterName": "c"}):
        progress.update(JobStatus.from_job({"status": raw}))
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["JobCreated",
                     "JobCreated (waiting: DaskJob quota of namespace team-a is full (2 of 2))",
                     "ClusterCreated (Dask cluster c)"]


def test_a_wait_timeout_carries_the_reason_the_job_is_held() -> None:
    from dask_kube_jobs import WaitTimeout

    err = WaitTimeout("j", "ns", 5, "JobCreated", "spec.worker.replicas=80 exceeds the limit")
    assert "phase: JobCreated; spec.worker.replicas=80 exceeds the limit" in str(err)
    assert err.message == "spec.worker.replicas=80 exceeds the limit"
    assert "(phase: Running)" in str(WaitTimeout("j", "ns", 5, "Running"))


def test_spec_and_result_errors_share_the_base_class() -> None:
    from dask_kube_jobs import DaskKubeJobsError, ResultError

    assert issubclass(SpecError, DaskKubeJobsError) and issubclass(SpecError, ValueError)
    assert issubclass(ResultError, DaskKubeJobsError)
