"""`dask-kube-jobs run/submit/status/list/logs/delete` against the local control plane."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from dask_kube_jobs import cli
from dask_kube_jobs.local.testing import Kubectl

from .manifests import failing_job, result_job, sleeping_job

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, manifest: dict[str, Any]) -> str:
    path = tmp_path / f"{manifest['metadata']['name']}.json"
    path.write_text(json.dumps(manifest))
    return str(path)


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask_kube_jobs.cli", *args]


def run(*args: str, env: dict[str, str] | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)


def test_run_exits_with_the_runners_exit_code(kubeconfig: str, namespace: str,
                                              tmp_path: Path) -> None:
    out = run("run", write(tmp_path, failing_job("cli-breaks")), "--kubeconfig", kubeconfig,
              "-n", namespace, "--quiet")
    assert out.returncode == 3
    assert out.stdout.splitlines() == ["starting the work", "boom: the input is missing"]
    assert out.stderr.splitlines() == [
        'error: DaskJob "cli-breaks" failed: Error, the runner exited with code 3']


def test_run_builds_a_job_from_image_and_command(kubeconfig: str, namespace: str) -> None:
    out = run("run", "--kubeconfig", kubeconfig, "-n", namespace, "--name", "cli-built",
              "--workers", "1", "--quiet", "--image", "ghcr.io/dask/dask:latest", "--",
              "python", "-c", "import dask_kube_jobs; print('built'); "
              "dask_kube_jobs.set_result([1, 2])")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["built", "[1, 2]"]
    assert out.stderr == ""


def test_ctrl_c_deletes_the_job_and_exits_130(kubeconfig: str, namespace: str,
                                              kubectl: Kubectl, tmp_path: Path) -> None:
    # Ctrl-C as a terminal sends it; the child gets SIGINT's default disposition even when this
    # run inherited it ignored (a background job of a non-interactive shell).
    proc = subprocess.Popen(command("run", write(tmp_path, sleeping_job("cli-stop", 120)),
                                    "--kubeconfig", kubeconfig, "-n", namespace),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stdout is not None
    assert proc.stdout.readline() == "tick\n"  # the runner is running and its log streams
    assert kubectl("get", "daskjob", "cli-stop", "-o", "name").stdout.strip()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "deleted DaskJob" in err and "(interrupted by SIGINT)" in err
    # The CLI deletes without waiting; the job goes once the operator drops its finalizer.
    deadline = time.monotonic() + 30
    while kubectl("get", "daskjob", "cli-stop", "--ignore-not-found", "-o", "name") \
            .stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kubectl("get", "daskjob", "cli-stop", "--ignore-not-found", "-o", "name") \
        .stdout.strip() == ""


def test_submit_status_list_logs_delete(kubeconfig: str, namespace: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    target = ["--kubeconfig", kubeconfig, "-n", namespace]
    assert cli.main(["submit", write(tmp_path, result_job("cli-sub")), *target]) == 0
    assert capsys.readouterr().out == "cli-sub\n"
    assert cli.main(["logs", "cli-sub", "-f", *target]) == 0
    assert capsys.readouterr().out == "total is 6\n"
    deadline = time.monotonic() + 30
    while cli.main(["status", "cli-sub", "-o", "json", *target]) == 0 and \
            json.loads(capsys.readouterr().out).get("jobStatus") != "Successful":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert cli.main(["status", "cli-sub", *target]) == 0
    status = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert status["Phase"].strip() == "Successful"
    assert json.loads(status["Result"]) == {"total": 6, "ok": True}
    assert cli.main(["list", *target]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["NAME", "PHASE", "ATTEMPTS", "EXIT", "AGE"]
    assert table[1].split()[:4] == ["cli-sub", "Successful", "1", "0"]
    assert cli.main(["logs", "cli-sub", *target]) == 0
    assert capsys.readouterr().out == "total is 6\n"
    assert cli.main(["delete", "cli-sub", *target]) == 0
    assert capsys.readouterr().out == f"deleted DaskJob {namespace}/cli-sub\n"
    assert cli.main(["status", "cli-sub", *target]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [f'error: DaskJob "cli-sub" not found in namespace "{namespace}"',
                   "hint: list the jobs with `dask-kube-jobs list` (check --namespace)"]


def _port_open(server: str) -> bool:
    host, port = server.rsplit("//", 1)[1].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_run_local_runs_the_example_job_and_leaves_nothing_running(tmp_path: Path) -> None:
    # Its own control plane: temp kubeconfig and state dir under TMPDIR, so it cannot clash
    # with the session's; Pod subnets are leased machine-wide by the launcher.
    (tmp_path / "tmp").mkdir()
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "XDG_STATE_HOME": str(tmp_path / "st"),
           "KUBECONFIG": str(tmp_path / "none.yaml")}
    out = run("run", "--local", "examples/simple-job.yaml", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0].startswith("sum=") and lines[0].endswith("computed on 2 workers")
    assert json.loads(lines[-1])["workers"] == 2  # the job's result, printed last
    ready = [line for line in out.stderr.splitlines() if "local control plane ready at" in line]
    assert len(ready) == 1, out.stderr
    assert "Successful (exit code 0)" in out.stderr
    assert not _port_open(ready[0].rsplit(" ", 1)[1])
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        if str(tmp_path) in " ".join(proc.info["cmdline"] or []):
            leftovers.append(proc)
    assert leftovers == []
    # the control plane's temp dir is gone (kr8s leaves CA copies from kubeconfigs it loads:
    # its _auth writes certificate-authority-data to NamedTemporaryFile(delete=False))
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.is_dir()] == []
