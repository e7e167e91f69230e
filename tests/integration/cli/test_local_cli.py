"""`dask-kube-jobs local up/status/kubeconfig/down`, as a newcomer runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil

from dask_kube_jobs.local.testing import Kubectl


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dask_kube_jobs.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def test_up_detach_then_down_leaves_no_process(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "DKJ_TEST": "1"}
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), "--no-operator", env=env)
    assert up.returncode == 0, up.stderr
    assert "Local control plane is up at https://127.0.0.1:" in up.stdout

    status = cli("local", "status", "--kubeconfig", str(kubeconfig), "-o", "json", env=env)
    record = json.loads(status.stdout)
    assert record["ready"] is True
    pids = [record["pid"], *(record.get("children") or {}).values()]
    tree = [p.pid for pid in pids for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]]

    k = Kubectl(str(kubeconfig))
    assert "default" in k("get", "namespaces", "-o", "name").stdout

    # a second `up` for the same kubeconfig refuses instead of starting a twin
    again = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
    assert again.returncode == 1 and "already runs" in again.stderr

    user = cli("local", "kubeconfig", "--kubeconfig", str(kubeconfig), "--user", "ann",
               "--group", "analysts", "-o", str(tmp_path / "ann.yaml"), env=env)
    assert user.returncode == 0, user.stderr
    denied = Kubectl(str(tmp_path / "ann.yaml"))("get", "pods", check=False)
    assert 'User "ann" cannot list resource "pods"' in denied.stderr

    down = cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)
    assert down.returncode == 0 and "Stopped" in down.stdout
    alive = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    after = cli("local", "status", "--kubeconfig", str(kubeconfig), env=env)
    assert after.returncode == 1 and "No local control plane" in after.stdout


def test_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    out = cli("local", "kubeconfig", "--kubeconfig", str(tmp_path / "none.yaml"), "--user", "x", env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("error: no signing key") and lines[1].startswith("hint: ")
    assert "Traceback" not in out.stderr


def test_up_returns_once_the_node_and_the_operator_are_ready(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "DKJ_TEST": "1"}
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
    try:
        assert up.returncode == 0, up.stderr
        # right after `up`: the Node is there and Ready, not "No resources found"
        nodes = Kubectl(str(kubeconfig))("get", "nodes", "-o", "json").json()["items"]
        assert [c["status"] for n in nodes for c in n["status"]["conditions"]
                if c["type"] == "Ready"] == ["True"]
        status = cli("local", "status", "--kubeconfig", str(kubeconfig), env=env)
        assert "kubelet: ready" in status.stdout and "operator: ready" in status.stdout
        assert "operator.log" in status.stdout  # where to look, when it is not
    finally:
        cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)


def test_up_fails_with_the_log_of_a_component_that_keeps_crashing(tmp_path: Path) -> None:
    from tests.integration.operator.test_plugins import install_plugin

    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "broken_plugin", "raise RuntimeError('misconfigured policy')\n")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "DKJ_TEST": "1",
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
    try:
        assert up.returncode == 1, up.stdout
        assert "the operator keeps crashing" in up.stderr, up.stderr
        assert "operator.log" in up.stderr and "misconfigured policy" in up.stderr
    finally:
        cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)
