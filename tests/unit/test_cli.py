"""The `dask-kube-jobs` command without a cluster: parsing, manifests from flags, errors."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
import yaml

from dask_kube_jobs import JobStatus, SpecError, cli, make_cluster_spec, make_job_spec
from dask_kube_jobs._cli_progress import Progress


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
    assert errors(capsys)[0] == ("error: --local: starts its own control plane; drop "
                                 "--kubeconfig/--context")


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


def _kubeconfig(path: Path, server: str, *, context: str = "ctx", user: str = "alice") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": user, "user": {"token": "t"}}, {"name": "bob", "user": {"token": "b"}}],
        "contexts": [{"name": context, "context": {"cluster": "c", "user": user}},
                     {"name": "other", "context": {"cluster": "c", "user": "bob"}}]}))
    return path


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_server_names_the_url_the_kubeconfig_and_the_context(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = f"https://127.0.0.1:{_closed_port()}"
    kc = _kubeconfig(tmp_path / "kc.yaml", server)
    assert cli.main(["list", "--kubeconfig", str(kc), "--context", "other"]) == 1
    lines = errors(capsys)
    assert lines[0] == (f"error: cannot reach the Kubernetes API server at {server} "
                        f"(kubeconfig {kc}, context other): connection refused "
                        "(nothing listens there)")
    assert "ConnectError" not in lines[0] and "All connection attempts" not in lines[0]
    assert lines[1].startswith("hint: is the cluster running")


def test_kubeconfig_origin_reads_a_kubeconfig_list_as_kubectl_merges_it(tmp_path: Path) -> None:
    from dask_kube_jobs.kube import kubeconfig_origin

    first = _kubeconfig(tmp_path / "a.yaml", "https://a:6443", context="one", user="ann")
    second = _kubeconfig(tmp_path / "b.yaml", "https://b:6443", context="two", user="ben")
    listed = f"{first}:{second}"
    origin = kubeconfig_origin(listed)
    assert (origin.server, origin.context, origin.user) == ("https://a:6443", "one", "ann")
    assert kubeconfig_origin(listed, context="two").user == "ben"
    assert origin.describe(user=True) == f"kubeconfig {listed}, context one, user ann"
    assert kubeconfig_origin({"current-context": "x"}).describe() == "kubeconfig (inline), context x"
    assert kubeconfig_origin(tmp_path / "missing.yaml").server == ""


def test_progress_is_coloured_on_a_terminal_unless_no_color(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from dask_kube_jobs._cli_progress import colour_wanted

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert colour_wanted(Terminal()) and not colour_wanted(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Terminal())
    monkeypatch.setenv("NO_COLOR", "")  # empty: no-color.org says it does not count
    assert colour_wanted(Terminal())
    out = Terminal()
    Progress(quiet=False, stream=out).update(JobStatus.from_job({"status": {
        "jobStatus": "Failed", "reason": "Error"}}))
    assert "\x1b[31mFailed (Error)\x1b[0m" in out.getvalue()


def test_piped_progress_is_plain_and_has_no_live_line() -> None:
    out = io.StringIO()
    progress = Progress(quiet=False, stream=out)
    assert not progress.live and not progress.colour
    progress.draw_live()
    progress.say("submitted")
    assert "\x1b" not in out.getvalue() and out.getvalue().count("\n") == 1


def test_the_live_line_counts_since_the_last_change_and_is_cleared_before_a_line() -> None:
    out = io.StringIO()
    progress = Progress(quiet=False, stream=out, live=True, colour=False)
    progress.update(JobStatus.from_job({"status": {"jobStatus": "Running",
                                                   "jobRunnerPodName": "r-1"}}))
    progress.draw_live()
    assert out.getvalue().endswith("... still Running (runner r-1), for 0s")
    progress.say("next")
    tail = out.getvalue().split("for 0s", 1)[1]
    assert tail.startswith("\r\x1b[2K[") and tail.endswith("] next\n")


def test_pod_warnings_are_printed_once_each() -> None:
    out = io.StringIO()
    progress = Progress(quiet=False, stream=out)
    event = {"involvedObject": {"kind": "Pod", "name": "j-runner-abcde-1"}, "reason": "FailedMount",
             "message": 'MountVolume.SetUp failed for volume "runner" : configmap "x" not found'}
    for count in (1, 2, 3):
        progress.warning({**event, "count": count, "message": f"{event['message']} ({count})"})
    progress.warning({**event, "reason": "BackOff", "message": "Back-off restarting"})
    progress.warning({**event, "reason": "Unhealthy",
                      "message": "Readiness probe failed: connection refused"})
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ['Warning FailedMount pod/j-runner-abcde-1: MountVolume.SetUp failed for '
                     'volume "runner" : configmap "x" not found (1)',
                     "Warning BackOff pod/j-runner-abcde-1: Back-off restarting"]


def test_run_refuses_a_file_with_kinds_it_does_not_apply_naming_them(
        tmp_path: Path, no_cluster: Path, capsys: pytest.CaptureFixture[str]) -> None:
    job = make_job_spec("j", command=["true"], n_workers=1)
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all([cm, role, job, {**job}]))
    assert cli.main(["run", str(path)]) == 1
    assert errors(capsys)[0] == (
        f"error: FILE: {path}: `run` would not apply Role/r (document 2), DaskJob/j "
        "(document 4); it applies one DaskJob and the ConfigMaps and Secrets beside it (apply "
        "anything else with kubectl apply -f first, then run the DaskJob alone)")
    path.write_text(yaml.safe_dump_all([{**cm, "metadata": {"name": "c", "namespace": "a"}}, job]))
    assert cli.main(["run", str(path), "-n", "b"]) == 1
    assert errors(capsys)[0].startswith("error: metadata.namespace: ConfigMap/c (document 1) is "
                                        "for namespace 'a' but --namespace 'b' was given")


def test_the_documents_run_applies_keep_the_files_order(tmp_path: Path) -> None:
    from dask_kube_jobs._cli_apply import read_run_file

    job = make_job_spec("j", command=["true"], n_workers=1)
    docs = [{"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
            for kind, name in (("ConfigMap", "a"), ("Secret", "b"))]
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump_all([docs[0], job, docs[1]]))
    run_file = read_run_file(str(path))
    assert (run_file.before, run_file.job, run_file.after) == ([docs[0]], job, [docs[1]])


def test_context_is_global_and_per_command() -> None:
    parser = cli.build_parser()
    assert parser.parse_args(["--context", "a", "list"]).context == "a"
    assert parser.parse_args(["list", "--context", "b"]).context == "b"
    assert parser.parse_args(["--context", "a", "status", "x", "--context", "b"]).context == "b"
    assert parser.parse_args(["list"]).context is None


def test_status_and_list_formats() -> None:
    from dask_kube_jobs import _cli_output as output

    job = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
           "metadata": {"name": "j", "namespace": "ns", "uid": "u-1",
                        "creationTimestamp": "2020-01-01T00:00:00Z"},
           "status": {"jobStatus": "Failed", "clusterName": "j", "jobRunnerPodName": "j-r-1",
                      "attempts": 1, "exitCode": 3, "reason": "Error",
                      "conditions": [{"type": "Failed", "status": "True", "reason": "Error"}]}}
    st = JobStatus.from_job(job)
    text = output.status_text(job, st)
    assert text.splitlines()[:2] == ["Name:       ns/j", "Phase:      Failed"]
    assert "UID" not in text
    wide = output.status_text(job, st, wide=True)
    assert "UID:" in wide and "Condition Failed: True (Error)" in wide
    assert yaml.safe_load(output.structured(st.raw, "yaml")) == job["status"]
    table = output.jobs_table([job], wide=True).splitlines()
    assert table[0].split() == ["NAME", "PHASE", "ATTEMPTS", "EXIT", "AGE", "CLUSTER", "RUNNER",
                                "REASON"]
    assert table[1].split()[:4] + table[1].split()[5:] == ["j", "Failed", "1", "3", "j", "j-r-1",
                                                          "Error"]
    assert json.loads(output.structured(output.jobs_list([job]), "json"))["items"] == [job]


@pytest.mark.parametrize(("signame", "code"), [("SIGTERM", 143), ("SIGHUP", 129)])
def test_a_signal_ends_a_command_with_128_plus_its_number(signame: str, code: int) -> None:
    import os
    import signal

    from dask_kube_jobs._cli_signals import run_stoppable

    signum = getattr(signal, signame)

    async def main(stopper: object) -> int:
        os.kill(os.getpid(), signum)
        await asyncio.sleep(10)
        return 0

    # A command starts with the default disposition, as a shell gives it; tests that ran
    # earlier in this process (Airflow's task runner) may have left SIGTERM/SIGHUP ignored,
    # which run_stoppable rightly keeps ignored (nohup).
    outer = signal.signal(signum, signal.SIG_DFL)
    try:
        assert run_stoppable(main) == code
        assert signal.getsignal(signum) is signal.SIG_DFL  # given back as it found it
    finally:
        signal.signal(signum, outer)


def test_shell_completion_answers_as_docs_cli_md_sets_it_up(tmp_path: Path) -> None:
    """The completion block of docs/cli.md, run: its script, then an answer."""
    import os
    import subprocess
    import sys

    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    assert 'eval "$(register-python-argcomplete dask-kube-jobs)"' in page
    script = subprocess.run([str(Path(sys.executable).parent / "register-python-argcomplete"),
                             "dask-kube-jobs"], capture_output=True, text=True, check=True)
    assert "dask-kube-jobs" in script.stdout
    answer = tmp_path / "completions"
    line = "dask-kube-jobs li"
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_STDOUT_FILENAME": str(answer), "_ARGCOMPLETE_IFS": "\n"}
    subprocess.run([sys.executable, "-m", "dask_kube_jobs.cli"], env=env, check=True,
                   capture_output=True)
    assert answer.read_text().split() == ["list"]


def test_the_live_line_runs_while_run_waits_and_is_gone_after() -> None:
    from dask_kube_jobs import _cli_progress

    out = io.StringIO()
    progress = Progress(quiet=False, stream=out, live=True, colour=False)

    async def wait_a_little() -> None:
        with progress.live_line():
            await asyncio.sleep(_cli_progress.LIVE_INTERVAL * 2.5)

    asyncio.run(wait_a_little())
    text = out.getvalue()
    assert text.count("... waiting, for ") >= 2  # redrawn in place
    assert text.endswith("\r\x1b[2K")  # and erased at the end


def test_a_context_the_kubeconfig_lacks_is_named_with_the_ones_it_has(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = _kubeconfig(tmp_path / "kc.yaml", f"https://127.0.0.1:{_closed_port()}")
    assert cli.main(["--context", "prod", "list", "--kubeconfig", str(kc)]) == 1
    assert errors(capsys) == [
        f"error: kubeconfig {kc} has no context 'prod' (it has: ctx, other)",
        "hint: choose one of those (--context in the CLI, context= in Python), or none for its "
        "current-context"]
