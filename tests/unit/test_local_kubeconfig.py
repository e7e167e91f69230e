"""`local up`'s context in the user's kubeconfig: merged beside others, removed by `local down`.

Files only (in tmp_path, with KUBECONFIG pointing there), never the real ~/.kube/config.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_kube_jobs.local import kubeconfig as kc
from dask_kube_jobs.local.kubectl_context import CONTEXT, add_context, read_record, remove_context
from dask_kube_jobs.local.state import StateDir

SERVER = "https://127.0.0.1:41234"


def theirs() -> dict[str, Any]:
    """A user's kubeconfig with a real cluster in it (and a user named like ours: admin)."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": "prod",
            "clusters": [{"name": "prod", "cluster": {"server": "https://prod.example:6443"}}],
            "users": [{"name": "admin", "user": {"token": "prod-token"}}],
            "contexts": [{"name": "prod", "context": {"cluster": "prod", "user": "admin"}}],
            "preferences": {"colors": True}}


def names(config: dict[str, Any], section: str) -> list[str]:
    return [e["name"] for e in config.get(section) or []]


@pytest.fixture
def user_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home" / ".kube" / "config"
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    state = StateDir(tmp_path / "state")
    state.prepare()
    kc.write(state.admin_kubeconfig, kc.build(SERVER, "our-token", ca_pem=b"CA"))
    return state


def test_merge_adds_our_three_entries_and_keeps_everything_else(user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs(), mode=0o640)
    previous = kc.merge(user_kubeconfig, kc.build(SERVER, "t", ca_pem=None), name=CONTEXT,
                        switch=True)
    config = kc.read(user_kubeconfig)
    assert previous == "prod" and config["current-context"] == CONTEXT
    for section in ("clusters", "users", "contexts"):
        assert names(config, section) == [names(theirs(), section)[0], CONTEXT]
    assert config["users"][0] == theirs()["users"][0]  # their "admin" is not ours to replace
    assert config["preferences"] == {"colors": True}
    assert kc.server_of(config) == SERVER
    assert stat.S_IMODE(user_kubeconfig.stat().st_mode) == 0o640  # their mode is kept
    assert not Path(f"{user_kubeconfig}.lock").exists()


def test_merge_without_switching_leaves_the_current_context(user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs())
    kc.merge(user_kubeconfig, kc.build(SERVER, "t", ca_pem=None), name=CONTEXT, switch=False)
    assert kc.read(user_kubeconfig)["current-context"] == "prod"


def test_merge_refuses_a_file_that_is_not_a_kubeconfig_and_leaves_it(user_kubeconfig: Path) -> None:
    user_kubeconfig.parent.mkdir(parents=True)
    user_kubeconfig.write_text("- just\n- a list\n")
    with pytest.raises(ValueError, match="not a kubeconfig"):
        kc.merge(user_kubeconfig, kc.build(SERVER, "t", ca_pem=None), name=CONTEXT, switch=True)
    assert user_kubeconfig.read_text() == "- just\n- a list\n"


def test_a_symlinked_kubeconfig_is_written_through(tmp_path: Path, user_kubeconfig: Path) -> None:
    real = tmp_path / "dotfiles" / "kubeconfig"
    kc.write(real, theirs())
    user_kubeconfig.parent.mkdir(parents=True)
    user_kubeconfig.symlink_to(real)
    kc.merge(user_kubeconfig, kc.build(SERVER, "t", ca_pem=None), name=CONTEXT, switch=True)
    assert user_kubeconfig.is_symlink()
    assert names(kc.read(real), "contexts") == ["prod", CONTEXT]


def test_a_held_lock_is_waited_for(user_kubeconfig: Path) -> None:
    """kubectl holds <file>.lock while it writes; we wait for it rather than race it."""
    kc.write(user_kubeconfig, theirs())
    lock = Path(f"{user_kubeconfig}.lock")
    lock.touch()
    release = threading.Timer(0.3, lock.unlink)
    release.start()
    started = time.monotonic()
    kc.merge(user_kubeconfig, kc.build(SERVER, "t", ca_pem=None), name=CONTEXT, switch=True)
    assert time.monotonic() - started >= 0.25
    assert CONTEXT in names(kc.read(user_kubeconfig), "contexts")


def test_a_lock_never_released_is_an_error_naming_it(user_kubeconfig: Path) -> None:
    lock = Path(f"{user_kubeconfig}.lock")
    lock.parent.mkdir(parents=True)
    lock.touch()
    with pytest.raises(kc.KubeconfigLocked, match=str(lock)), kc.locked(user_kubeconfig, timeout=0.1):
        pass
    assert lock.exists()  # not ours to remove


def test_kubectl_kubeconfig_is_where_kubectl_adds_a_context(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    assert kc.kubectl_kubeconfig({"HOME": str(tmp_path)}) == Path("~/.kube/config").expanduser()
    both = {"KUBECONFIG": os.pathsep.join([str(first), str(second)])}
    assert kc.kubectl_kubeconfig(both) == first  # none exists: the first
    second.write_text("{}")
    assert kc.kubectl_kubeconfig(both) == second  # else the first that exists
    first.write_text("{}")
    assert kc.kubectl_kubeconfig(both) == first


def test_up_then_down_gives_back_the_users_kubeconfig(state: StateDir, user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs())
    added = add_context(state, kc.kubectl_kubeconfig(), switch=True)
    assert (added.kubeconfig, added.context, added.current) == (user_kubeconfig, CONTEXT, CONTEXT)
    assert kc.server_of(kc.read(user_kubeconfig)) == SERVER
    removed = remove_context(state)
    assert removed is not None and removed.current == "prod"
    assert kc.read(user_kubeconfig) == theirs()
    assert read_record(state) is None and remove_context(state) is None


def test_a_kubeconfig_that_up_created_is_removed_by_down(state: StateDir,
                                                         user_kubeconfig: Path) -> None:
    add_context(state, user_kubeconfig, switch=False)  # no current context: ours anyway
    assert kc.read(user_kubeconfig)["current-context"] == CONTEXT
    assert stat.S_IMODE(user_kubeconfig.stat().st_mode) == 0o600
    assert remove_context(state) is not None
    assert not user_kubeconfig.exists()


def test_down_leaves_a_context_another_control_plane_took(state: StateDir,
                                                          user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs())
    add_context(state, user_kubeconfig, switch=True)
    other = kc.build("https://127.0.0.1:50000", "other", ca_pem=None)
    kc.merge(user_kubeconfig, other, name=CONTEXT, switch=True)
    assert remove_context(state) is None
    config = kc.read(user_kubeconfig)
    assert kc.server_of(config) == "https://127.0.0.1:50000" and CONTEXT in names(config, "users")


def test_an_up_after_a_crash_still_gives_back_the_first_context(state: StateDir,
                                                                user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs())
    add_context(state, user_kubeconfig, switch=True)
    add_context(state, user_kubeconfig, switch=True)  # no `down` in between
    removed = remove_context(state)
    assert removed is not None and removed.current == "prod"
    assert yaml.safe_load(user_kubeconfig.read_text()) == theirs()


def test_the_current_context_is_unset_when_the_one_before_has_gone(state: StateDir,
                                                                   user_kubeconfig: Path) -> None:
    kc.write(user_kubeconfig, theirs())
    add_context(state, user_kubeconfig, switch=True)
    config = kc.read(user_kubeconfig)
    config["contexts"] = [c for c in config["contexts"] if c["name"] != "prod"]
    kc.write(user_kubeconfig, config)
    removed = remove_context(state)
    assert removed is not None and removed.current == ""
    assert kc.read(user_kubeconfig)["current-context"] == ""
