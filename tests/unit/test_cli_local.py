"""`dask-kube-jobs local` without starting anything: status, down after a crash, kubeconfig modes.

State directories live under a temporary XDG_STATE_HOME and the user's kubeconfig is a temporary
KUBECONFIG, never ~/.kube/config.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from dask_kube_jobs import cli
from dask_kube_jobs.local import kubeconfig as kc
from dask_kube_jobs.local.apiserver.auth import new_key
from dask_kube_jobs.local.kubectl_context import CONTEXT, add_context
from dask_kube_jobs.local.state import StateDir, state_dir_for


@pytest.fixture
def plane_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The --kubeconfig of a control plane that is not running, its state dir in tmp_path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "user-kubeconfig"))
    return tmp_path / "plane.yaml"


def stopped_state(kubeconfig: Path) -> StateDir:
    """What a control plane leaves when it dies without `local down`: its state and key."""
    state = StateDir(state_dir_for(kubeconfig))
    state.prepare()
    state.key.write_bytes(new_key())
    state.ca_cert.write_bytes(b"CA")
    kc.write(state.admin_kubeconfig, kc.build("https://127.0.0.1:40001", "t", ca_pem=None))
    return state


def test_status_says_not_running_and_where_the_state_is(
        plane_kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = state_dir_for(plane_kubeconfig)
    assert cli.main(["local", "status", "--kubeconfig", str(plane_kubeconfig)]) == 1
    assert capsys.readouterr().out == (f"Not running: no local control plane for "
                                       f"{plane_kubeconfig} (state: {state_dir})\n")
    assert cli.main(["local", "status", "--kubeconfig", str(plane_kubeconfig), "-o", "json"]) == 1
    assert json.loads(capsys.readouterr().out) == {
        "running": False, "kubeconfig": str(plane_kubeconfig), "state_dir": str(state_dir)}


def test_down_after_a_crash_still_removes_the_context_from_the_users_kubeconfig(
        plane_kubeconfig: Path, capsys: pytest.CaptureFixture[str]) -> None:
    user = kc.kubectl_kubeconfig()
    kc.write(user, {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
                    "clusters": [{"name": "prod", "cluster": {"server": "https://prod:6443"}}],
                    "users": [{"name": "me", "user": {"token": "x"}}],
                    "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "me"}}]})
    add_context(stopped_state(plane_kubeconfig), user, switch=True)
    assert kc.read(user)["current-context"] == CONTEXT
    assert cli.main(["local", "down", "--kubeconfig", str(plane_kubeconfig)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"No local control plane runs for {plane_kubeconfig}.",
                   f"Removed context {CONTEXT} from {user} (current context: prod)."]
    config = kc.read(user)
    assert config["current-context"] == "prod" and [c["name"] for c in config["contexts"]] == ["prod"]


def test_a_kubeconfig_for_a_container_user_gets_the_mode_asked_for(
        plane_kubeconfig: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stopped_state(plane_kubeconfig)
    out = tmp_path / "operator.kubeconfig"
    argv = ["local", "kubeconfig", "--kubeconfig", str(plane_kubeconfig),
            "--service-account", "dask-operator/dask-kube-jobs", "-o", str(out)]
    assert cli.main([*argv, "--mode", "0644"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert kc.server_of(kc.read(out)) == "https://127.0.0.1:40001"
    assert cli.main(argv) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # the default: the owner only
    with pytest.raises(SystemExit):
        cli.main([*argv, "--mode", "rw-r--r--"])
    assert "not an octal file mode" in capsys.readouterr().err
