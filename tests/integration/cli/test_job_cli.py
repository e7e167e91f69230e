"""`dask-kube-jobs run|status|list` against the session's local control plane: a file with a
ConfigMap beside its DaskJob, a Pod's Warning Event, SIGTERM, `-o yaml|wide`, and the words for
refused credentials."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_kube_jobs import cli
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

from ..api.manifests import sleeping_job

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[3]

def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask_kube_jobs.cli", *args]


def write(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs))
    return str(path)


def documented_commands() -> list[list[str]]:
    """The commands of docs/cli.md's "Run a job file" block, as argument lists."""
    page = (ROOT / "docs" / "cli.md").read_text()
    section = page.split("## Run a job file", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the commands block of docs/cli.md has moved"
    lines = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert all(words[0] == "dask-kube-jobs" for words in lines)
    return [words[1:] for words in lines]


def test_the_documented_run_applies_the_configmap_then_follows_the_job(
        local_control_plane: LocalControlPlane, namespace: str, kubectl: Kubectl,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # in this process (no interpreter start per command): the file path is the docs' own
    monkeypatch.chdir(ROOT)
    target = ["--kubeconfig", local_control_plane.kubeconfig, "-n", namespace]
    run_job, status, listing = documented_commands()
    assert run_job == ["run", "examples/result-job.yaml"]
    code = cli.main([*run_job, *target])
    out = capsys.readouterr()
    assert code == 0, out.err
    # stdout: only the runner's log, then the result it set (JSON)
    log = out.out.splitlines()
    assert len(log) == 4, log
    assert log[0].startswith("connected to ") and " with 2 workers: " in log[0]
    assert log[1].startswith(f"sum={2 * 4000 * 4000} ")
    assert log[2] == "all workers took part; result recorded"
    assert json.loads(log[3])["workers"] == 2
    assert all(line.startswith("[") and "s] " in line for line in out.err.splitlines())
    progress = [line.split("] ", 1)[1] for line in out.err.splitlines()]
    assert progress[:2] == ["configmap/result-job-runner created",
                            f"submitted DaskJob {namespace}/result-job"], progress
    assert progress[-1] == "Successful (exit code 0)"
    phases = [line.split(" ")[0] for line in progress[2:] if not line.startswith("Warning ")]
    assert len(phases) == len(set(phases)), progress  # one line per change, none repeated
    warnings = [tuple(line.split(" ")[1:3]) for line in progress if line.startswith("Warning ")]
    assert len(warnings) == len(set(warnings)), progress  # one per Pod and reason
    assert kubectl("get", "configmap", "result-job-runner", "-o", "name").stdout.strip()

    assert cli.main([*status, *target]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["jobStatus"] == "Successful"
    assert cli.main([*listing, *target]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "ATTEMPTS", "EXIT", "AGE", "CLUSTER", "RUNNER",
                                "REASON"]
    assert table[1].split()[:2] == ["result-job", "Successful"]
    assert cli.main(["list", "-o", "yaml", *target]) == 0
    listed = yaml.safe_load(capsys.readouterr().out)
    assert listed["kind"] == "List"
    assert [item["metadata"]["name"] for item in listed["items"]] == ["result-job"]


def test_a_pods_warning_shows_then_sigterm_deletes_the_job_and_exits_143(
        local_control_plane: LocalControlPlane, namespace: str, kubectl: Kubectl,
        tmp_path: Path) -> None:
    job = sleeping_job("cli-term", 120)
    runner = job["spec"]["job"]["spec"]
    runner["containers"][0]["volumeMounts"] = [{"name": "settings", "mountPath": "/opt/s"}]
    runner["volumes"] = [{"name": "settings", "configMap": {"name": "cli-term-missing"}}]
    proc = subprocess.Popen(command("run", write(tmp_path / "job.yaml", job),
                                    "--kubeconfig", local_control_plane.kubeconfig,
                                    "-n", namespace),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the runner cannot start: its Pod says why, once
        seen.append(line)
        if "Warning FailedMount pod/cli-term-runner-" in line:
            break
    else:
        raise AssertionError(f"no FailedMount warning in {seen}")
    assert 'configmap "cli-term-missing" not found' in line or "cli-term-missing" in line, line
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert f"deleted DaskJob {namespace}/cli-term (interrupted by SIGTERM)" in err
    assert "Warning FailedMount" not in err  # printed once, before
    deadline = time.monotonic() + 30
    while kubectl("get", "daskjob", "cli-term", "--ignore-not-found", "-o", "name") \
            .stdout.strip():
        assert time.monotonic() < deadline, "the job was not deleted"
        time.sleep(0.2)


def test_refused_credentials_name_the_kubeconfig_context_and_user(
        local_control_plane: LocalControlPlane, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(Path(local_control_plane.kubeconfig).read_text())
    context = config["current-context"]
    user = next(c["context"]["user"] for c in config["contexts"] if c["name"] == context)
    config["users"] = [{"name": user, "user": {"token": "not-a-valid-token"}}]
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(config))
    assert cli.main(["list", "--kubeconfig", str(wrong)]) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith("error: the Kubernetes API server at https://127.0.0.1:"), first
    assert f"refused the credentials of user {user} (kubeconfig {wrong}, context {context})" \
        in first
