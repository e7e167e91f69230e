"""The daemon runs the controllers itself and stops them cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time

from dask_kube_jobs.local.controllers.manager import run_controllers
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import KUBECTL


def test_daemon_runs_the_controllers_and_stops_them_without_complaints(tmp_path):
    cp = LocalControlPlane(tmp_path / "kubeconfig.yaml", state_dir=tmp_path / "state",
                           kubelet=False, operator=False, controllers=True)
    with cp:
        kubectl = [KUBECTL, "--kubeconfig", cp.kubeconfig]
        subprocess.run([*kubectl, "create", "namespace", "smoke"], check=True, capture_output=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = subprocess.run([*kubectl, "-n", "smoke", "get", "serviceaccount/default",
                                  "configmap/kube-root-ca.crt", "-o", "name"],
                                 capture_output=True, text=True)
            if got.returncode == 0:
                break
            time.sleep(0.2)
        assert got.stdout.split() == ["serviceaccount/default", "configmap/kube-root-ca.crt"]
        subprocess.run([*kubectl, "delete", "namespace", "smoke", "--timeout=20s"], check=True,
                       capture_output=True)
    log = (cp.logs / "control-plane.log").read_text()
    for bad in ("Traceback", "Task was destroyed", "Unclosed", "never awaited", "ERROR"):
        assert bad not in log, log[-3000:]


async def test_cancelling_run_controllers_leaves_no_tasks(plane):
    before = set(asyncio.all_tasks())
    task = asyncio.create_task(run_controllers(plane.kubeconfig))
    await asyncio.sleep(1.0)
    assert not task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    assert not left, left
