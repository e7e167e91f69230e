"""`dask-kube-jobs local up/status/kubeconfig/down`, as a newcomer runs them.

The `local up --detach` / `local down` transcript of docs/local-control-plane.md is run by
``test_up_detach_then_down_leaves_no_process``, which checks its lines about the server, the
context, and what `down` stops and removes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import yaml

from dask_kube_jobs.local import kubeconfig as kc
from dask_kube_jobs.local.kubectl_context import CONTEXT
from dask_kube_jobs.local.testing import KUBECTL, Kubectl


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # `local up` adds a context to $KUBECONFIG (else ~/.kube/config): never the real one here.
    assert env.get("KUBECONFIG", "").startswith(tempfile.gettempdir()), "set KUBECONFIG to a temp file"
    return subprocess.run([sys.executable, "-m", "dask_kube_jobs.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def local_env(tmp_path: Path) -> dict[str, str]:
    """The CLI's environment: its state and the user's kubeconfig under tmp_path."""
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "DKJ_TEST": "1",
            "KUBECONFIG": str(tmp_path / "user" / "config")}


def users_kubeconfig(env: dict[str, str]) -> Path:
    """A user's kubeconfig with a cluster of their own, current."""
    path = Path(env["KUBECONFIG"])
    kc.write(path, {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
                    "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example"}}],
                    "users": [{"name": "me", "user": {"token": "mine"}}],
                    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me"}}]})
    return path


def plain_kubectl(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """kubectl as a user types it: no --kubeconfig, $KUBECONFIG and its current context."""
    return subprocess.run([KUBECTL, *args], capture_output=True, text=True, env=env, timeout=60)


def test_up_detach_then_down_leaves_no_process(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    users = users_kubeconfig(env)
    before = users.read_text()
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), "--no-operator", env=env)
    assert up.returncode == 0, up.stderr
    assert "Local control plane is up at https://127.0.0.1:" in up.stdout
    assert f"context:    {CONTEXT} in {users} (current context)" in up.stdout, up.stdout

    status = cli("local", "status", "--kubeconfig", str(kubeconfig), "-o", "json", env=env)
    record = json.loads(status.stdout)
    assert record["ready"] is True
    assert record["kubectl_context"]["kubeconfig"] == str(users)
    pids = [record["pid"], *(record.get("children") or {}).values()]
    tree = [p.pid for pid in pids for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]]

    k = Kubectl(str(kubeconfig))
    assert "default" in k("get", "namespaces", "-o", "name").stdout
    # plain kubectl reaches it through the context `up` added; without an operator the CRDs
    # are there, for one run from its image
    crds = plain_kubectl("get", "crd", "-o", "name", env=env)
    assert crds.returncode == 0, crds.stderr
    assert "customresourcedefinition.apiextensions.k8s.io/daskjobs.kubernetes.dask.org" in \
        crds.stdout.split()

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
    assert f"Removed context {CONTEXT} from {users} (current context: prod)." in down.stdout
    alive = [pid for pid in tree if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    after = cli("local", "status", "--kubeconfig", str(kubeconfig), env=env)
    assert after.returncode == 1
    assert after.stdout.startswith(f"Not running: no local control plane for {kubeconfig} "
                                   f"(state: {tmp_path / 'state'}"), after.stdout
    # nothing in the user's kubeconfig points at the server that has gone
    assert yaml.safe_load(users.read_text()) == yaml.safe_load(before)


def test_errors_are_one_line_with_a_hint(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    out = cli("local", "kubeconfig", "--kubeconfig", str(tmp_path / "none.yaml"), "--user", "x", env=env)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("error: no signing key") and lines[1].startswith("hint: ")
    assert "Traceback" not in out.stderr


def test_up_returns_once_the_node_and_the_operator_are_ready(tmp_path: Path) -> None:
    env = local_env(tmp_path)
    users = users_kubeconfig(env)
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--no-switch-context", "--kubeconfig", str(kubeconfig),
             env=env)
    try:
        assert up.returncode == 0, up.stderr
        # added, but the user's current context stays theirs
        assert f"context:    {CONTEXT} in {users} (current context stays prod)" in up.stdout
        assert f"try:        kubectl --context {CONTEXT} get nodes" in up.stdout
        assert kc.read(users)["current-context"] == "prod"
        assert plain_kubectl("--context", CONTEXT, "get", "nodes", "-o", "name",
                             env=env).stdout.strip() == "node/dkj-local-node"
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
    env = {**local_env(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    kubeconfig = tmp_path / "kc.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
    try:
        assert up.returncode == 1, up.stdout
        assert "the operator keeps crashing" in up.stderr, up.stderr
        assert "operator.log" in up.stderr and "misconfigured policy" in up.stderr
    finally:
        cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)
