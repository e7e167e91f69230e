"""Who a container runs as and which directories its mount namespace masks (``sandbox``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dask_kube_jobs.local.kubelet.env import ContainerConfigError
from dask_kube_jobs.local.kubelet.sandbox import (
    DEFAULT_UIDS,
    Identity,
    container_identity,
    default_uid,
    mask_lines,
    plan_masks,
)
from dask_kube_jobs.local.kubelet.volumes import launch_script


def _pod(uid: str = "u-1", **security: object) -> dict[str, object]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid},
            "spec": {"securityContext": security, "containers": []}}


def test_default_uid_is_per_pod_and_in_the_reserved_range() -> None:
    a, b = default_uid("pod-a"), default_uid("pod-b")
    assert a != b and a in DEFAULT_UIDS and b in DEFAULT_UIDS
    assert default_uid("pod-a") == a  # the same after a kubelet restart
    ident = container_identity(_pod("pod-a"), {"name": "c"})
    assert ident == Identity(a, a, (a,))


def test_container_settings_override_the_pods() -> None:
    pod = _pod(runAsUser=1000, runAsGroup=2000, fsGroup=3000, supplementalGroups=[4000])
    assert container_identity(pod, {"name": "c"}) == Identity(1000, 2000, (2000, 3000, 4000))
    inner = {"name": "c", "securityContext": {"runAsUser": 5, "allowPrivilegeEscalation": False}}
    assert container_identity(pod, inner) == Identity(5, 2000, (2000, 3000, 4000), True)
    assert Identity(5, 6, (6, 7), True).setpriv() == [
        "setpriv", "--reuid", "5", "--regid", "6", "--groups", "6,7", "--no-new-privs", "--"]


def test_no_container_runs_as_the_machines_root() -> None:
    assert container_identity(_pod(runAsNonRoot=True), {"name": "c"}).uid in DEFAULT_UIDS
    with pytest.raises(ContainerConfigError, match="runAsUser breaks non-root policy"):
        container_identity(_pod(runAsNonRoot=True), {"name": "c",
                                                     "securityContext": {"runAsUser": 0}})
    with pytest.raises(ContainerConfigError, match="runs no container as root"):
        container_identity(_pod(runAsUser=0), {"name": "c"})


def test_masks_hide_the_state_and_open_unsearchable_ancestors(tmp_path: Path) -> None:
    home = tmp_path / "home"
    state = home / "state"
    pod_dir = state / "pods" / "ns_p_u"
    env = tmp_path / "env" / "lib"
    for d in (pod_dir, state / "network", env):
        d.mkdir(parents=True)
    home.chmod(0o700)
    (tmp_path / "env").chmod(0o755)
    plan = plan_masks([str(state)], [str(pod_dir), str(state / "network"), str(env)],
                      searchable=True)
    masks = dict(plan)
    # the state first (deepest), showing only the Pod's own directory and the Service map
    assert plan[0] == (str(state), [str(state / "network"), str(pod_dir)])
    # the unsearchable home shows only the (already masked) state
    assert masks[str(home)] == [str(state)]
    assert str(tmp_path / "env") not in masks
    home.chmod(0o755)
    assert dict(plan_masks([str(state)], [str(pod_dir)], searchable=False)) == \
        {str(state): [str(pod_dir)]}


def test_the_prologue_masks_before_it_drops_to_the_containers_user(tmp_path: Path) -> None:
    err = tmp_path / "pods" / "p" / "start-error"
    plan = [("/state", ["/state/network", "/state/pods/p"])]
    masks = mask_lines(plan, Path("/run/m"), "/e")
    assert masks[0].startswith("mount -t tmpfs -o mode=0755,size=1m dkj-mask /run/m ")
    assert masks[-1].startswith("mount --move /run/m /state ")
    script = launch_script([], "namespace", cgroup=None, workdir="/w", error_file=err,
                           masks=masks, run_as=Identity(7, 8).setpriv()).splitlines()
    assert script[-1] == ('exec setpriv --reuid 7 --regid 8 --clear-groups -- "$@"')
    assert script.index(masks[-1]) < script.index(script[-2])  # masks, then cd, then exec
