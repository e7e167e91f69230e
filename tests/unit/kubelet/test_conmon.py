"""The container monitor on its own: it outlives nobody here, it just runs a program, writes
its pid, its CRI log and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dask_kube_jobs.local.kubelet.container import CONMON


def test_monitor_writes_pid_log_and_exit_status(tmp_path: Path) -> None:
    run, log = tmp_path / "run", tmp_path / "0.log"
    run.mkdir()
    script = "echo out; echo err >&2; printf tail; exit 3"
    done = subprocess.run([sys.executable, "-I", str(CONMON), str(run), str(log), "", "--",
                           "sh", "-c", script], timeout=30)
    assert done.returncode == 0
    assert int((run / "pid").read_text()) > 1
    status = json.loads((run / "exit").read_text())
    assert status["code"] == 3 and status["finishedAt"].endswith("Z")
    lines = [line.split(" ", 3) for line in log.read_text().splitlines()]
    assert sorted((s, tag, text) for _, s, tag, text in lines) == [
        ("stderr", "F", "err"), ("stdout", "F", "out"), ("stdout", "F", "tail")]
    assert all(len(stamp) == 30 and stamp.endswith("Z") for stamp, *_ in lines)


def test_a_program_that_cannot_start_is_reported(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    subprocess.run([sys.executable, "-I", str(CONMON), str(run), str(tmp_path / "0.log"), "",
                    "--", str(tmp_path / "missing")], timeout=30, check=True)
    status = json.loads((run / "exit").read_text())
    assert status["code"] == 128 and "missing" in status["error"]
    assert not (run / "pid").exists()
