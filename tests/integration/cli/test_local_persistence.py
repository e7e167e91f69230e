"""`local down` + `local up` keeps what the cluster held; `local down --purge` wipes it."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local import kubeconfig as kc
from dask_kube_jobs.local.state import StateDir, state_dir_for
from dask_kube_jobs.local.testing import Kubectl
from tests.integration.operator.jobs import daskjob

from .test_local_cli import cli

pytestmark = pytest.mark.timeout(600)

RUNNER = """
    import dask_kube_jobs
    from dask.distributed import Client
    Client().wait_for_workers(1)
    dask_kube_jobs.set_result({"answer": 42})
"""


def _finished(k: Kubectl, name: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        out = k("get", "daskjob", name, "-o", "json", check=False)
        if out.returncode == 0:
            last = out.json()
            if (last.get("status") or {}).get("jobStatus") in ("Successful", "Failed"):
                return last
        time.sleep(1)
    raise AssertionError(f"daskjob/{name} never finished: {json.dumps(last.get('status'))}")


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The CLI's environment; this process shares its state root, to look at what it kept."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return {**os.environ, "DKJ_TEST": "1", "KUBECONFIG": str(tmp_path / "user" / "config")}


def test_down_then_up_keeps_jobs_results_rbac_and_minted_kubeconfigs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path, monkeypatch)
    kubeconfig = tmp_path / "kc.yaml"
    ann_kubeconfig = tmp_path / "ann.yaml"
    up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
    try:
        assert up.returncode == 0, up.stderr
        server = kc.server_of(kc.read(kubeconfig))
        admin = Kubectl(str(kubeconfig))
        admin("create", "namespace", "team")
        team = admin.in_namespace("team")
        team("create", "role", "job-reader", "--verb=get,list",
             "--resource=daskjobs.kubernetes.dask.org")
        team("create", "rolebinding", "ann-reads-jobs", "--role=job-reader", "--user=ann")
        minted = cli("local", "kubeconfig", "--kubeconfig", str(kubeconfig), "--user", "ann",
                     "--namespace", "team", "-o", str(ann_kubeconfig), env=env)
        assert minted.returncode == 0, minted.stderr
        team("apply", "-f", "-", input=json.dumps(daskjob("answers", RUNNER)))
        before = _finished(team, "answers")
        assert before["status"]["jobStatus"] == "Successful", before["status"]

        down = cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)
        assert down.returncode == 0 and "Stopped" in down.stdout, down.stderr
        restarted = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        up = cli("local", "up", "--detach", "--kubeconfig", str(kubeconfig), env=env)
        assert up.returncode == 0, up.stderr
        assert f"up at {server}" in up.stdout and "note:" not in up.stdout
        # ready means the kubelet is back, not that the Node kept from before said Ready
        node = admin("get", "nodes", "-o", "json").json()["items"][0]
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True" and ready["lastHeartbeatTime"] >= restarted
        assert kc.server_of(kc.read(kubeconfig)) == server

        # ann's kubeconfig, minted before the restart: same URL, same key, same RoleBinding
        ann = Kubectl(str(ann_kubeconfig))
        after = ann("get", "daskjob", "answers", "-o", "json").json()
        assert after["metadata"]["uid"] == before["metadata"]["uid"]
        assert after["status"]["jobStatus"] == "Successful"
        assert after["status"]["result"] == before["status"]["result"]
        result = after["status"]["result"]
        assert (json.loads(result) if isinstance(result, str) else result) == {"answer": 42}
        denied = ann("get", "pods", check=False)
        assert 'User "ann" cannot list resource "pods"' in denied.stderr
        assert admin("get", "namespace", "team", "-o", "name").stdout.strip() == "namespace/team"
        # resourceVersions went on from where they were
        assert int(admin("get", "daskjob", "answers", "-n", "team", "-o",
                         "jsonpath={.metadata.resourceVersion}").stdout) >= \
            int(before["metadata"]["resourceVersion"])
        created = admin("create", "configmap", "later", "-n", "team", "-o", "json").json()
        assert int(created["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    finally:
        cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)

    state = StateDir(state_dir_for(kubeconfig))
    assert state.objects.exists()
    purged = cli("local", "down", "--purge", "--kubeconfig", str(kubeconfig), env=env)
    assert purged.returncode == 0 and "Removed its state" in purged.stdout, purged.stdout
    assert not state.root.exists()
    fresh = cli("local", "up", "--detach", "--no-operator", "--no-kubelet",
                "--kubeconfig", str(kubeconfig), env=env)
    try:
        assert fresh.returncode == 0, fresh.stderr
        gone = Kubectl(str(kubeconfig))("get", "namespace", "team", check=False)
        assert gone.returncode != 0 and 'namespaces "team" not found' in gone.stderr
    finally:
        cli("local", "down", "--purge", "--kubeconfig", str(kubeconfig), env=env)


def test_up_says_so_when_its_previous_port_is_taken(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path, monkeypatch)
    kubeconfig = tmp_path / "kc.yaml"
    flags = ("--detach", "--no-operator", "--no-kubelet", "--kubeconfig", str(kubeconfig))
    up = cli("local", "up", *flags, env=env)
    try:
        assert up.returncode == 0, up.stderr
        first = kc.server_of(kc.read(kubeconfig))
        cli("local", "down", "--kubeconfig", str(kubeconfig), env=env)
        port = int(first.rsplit(":", 1)[1])
        with socket.socket() as squatter:
            # As the API server binds (aiohttp sets SO_REUSEADDR): connections the server
            # closed at shutdown may hold the port in TIME_WAIT for a minute.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            up = cli("local", "up", *flags, env=env)
            assert up.returncode == 0, up.stderr
            second = kc.server_of(kc.read(kubeconfig))
            assert second != first
            assert f"port {port}, where it served before, is taken" in up.stdout, up.stdout
            assert "default" in Kubectl(str(kubeconfig))("get", "namespaces", "-o", "name").stdout
    finally:
        cli("local", "down", "--purge", "--kubeconfig", str(kubeconfig), env=env)


def test_up_refuses_state_written_by_another_schema_and_says_how_to_wipe_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _env(tmp_path, monkeypatch)
    kubeconfig = tmp_path / "kc.yaml"
    state = StateDir(state_dir_for(kubeconfig))
    state.prepare()
    db = sqlite3.connect(state.objects)
    db.execute("CREATE TABLE objects (x TEXT)")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    flags = ("--detach", "--no-operator", "--no-kubelet", "--kubeconfig", str(kubeconfig))
    up = cli("local", "up", *flags, env=env)
    assert up.returncode == 1, up.stdout
    assert "another version of dask-kube-jobs" in up.stderr
    assert "local down --purge" in up.stderr
    purged = cli("local", "down", "--purge", "--kubeconfig", str(kubeconfig), env=env)
    assert "Removed its state" in purged.stdout and not state.root.exists()
    up = cli("local", "up", *flags, env=env)
    try:
        assert up.returncode == 0, up.stderr
    finally:
        cli("local", "down", "--purge", "--kubeconfig", str(kubeconfig), env=env)
