"""The chart installed with the real Helm engine into the local control plane, in each RBAC mode.

The control plane runs without its own operator (``operator=False``): the only operator is the
chart's Deployment, whose Pod the process kubelet runs as ``python -m dask_kube_jobs.operator``
(the image is recorded, not pulled) with the chart's arguments and the chart's ServiceAccount.
A user holding only the shipped ``<fullname>-edit`` role then runs a DaskJob to success and is
refused a Pod.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

from .chart import CHART_DIR, FULLNAME, RELEASE, RELEASE_NAMESPACE, helm, notes_submit_command
from .workload import IMAGE, daskjob, job_status, wait_for

pytestmark = pytest.mark.timeout(300)

TEAM = "team-a"          # where the user runs jobs (watched in both modes)
ELSEWHERE = "team-z"     # not in watchNamespaces in namespaced mode
USER = "alice"

VALUES: dict[str, dict[str, Any]] = {
    "cluster": {"rbac": {"scope": "cluster"}},
    "namespaced": {"rbac": {"scope": "namespaced"}, "watchNamespaces": [TEAM]},
}


@dataclass
class Installed:
    mode: str
    plane: LocalControlPlane
    admin: Kubectl
    user: Kubectl
    operator: Kubectl  # as the operator's ServiceAccount
    release: dict[str, Any]


@pytest.fixture(scope="module", params=list(VALUES))
def installed(request: pytest.FixtureRequest) -> Iterator[Installed]:
    mode = request.param
    # Under /tmp on purpose: the chart mounts an emptyDir on /tmp, which must not hide the
    # kubelet's own files or the Python environment from the operator's Pod.
    root = Path(tempfile.mkdtemp(prefix=f"dkj-chart-{mode}-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    with LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state",
                           operator=False) as plane:
        admin = Kubectl(plane.kubeconfig)
        for ns in (RELEASE_NAMESPACE, TEAM, ELSEWHERE):
            admin("create", "namespace", ns)
        # The user's only rights: the shipped edit role, in the namespaces they work in.
        for ns in (TEAM, ELSEWHERE):
            admin("create", "rolebinding", "dask-users", f"--clusterrole={FULLNAME}-edit",
                  f"--user={USER}", namespace=ns)
        h = helm()
        with h.Config(kubeconfig_path=plane.kubeconfig, namespace=RELEASE_NAMESPACE) as cfg:
            try:
                release = cfg.install(str(CHART_DIR), RELEASE, VALUES[mode],
                                      namespace=RELEASE_NAMESPACE, wait="watcher", timeout=120)
            except h.HelmError as exc:
                log = (plane.logs / "control-plane.log").read_text()[-4000:]
                raise AssertionError(f"helm install failed: {exc}\n{log}") from exc
        user = Kubectl(plane.mint_kubeconfig(root / "alice.yaml", user=USER, groups=("dask-users",),
                                             namespace=TEAM), TEAM)
        operator = Kubectl(plane.mint_kubeconfig(
            root / "operator.yaml", service_account=f"{RELEASE_NAMESPACE}/{FULLNAME}"))
        yield Installed(mode, plane, admin, user, operator, release)


def test_the_chart_operator_runs_as_the_deployment_pod_of_the_process_kubelet(
        installed: Installed) -> None:
    assert installed.release["status"] == "deployed"
    assert installed.release["app_version"] == installed.release["chart_version"] == "0.1.0"
    assert "every namespace" in installed.release["notes"] or TEAM in installed.release["notes"]
    pods = installed.admin("get", "pods", "-l", "app.kubernetes.io/component=operator",
                           "-o", "json", namespace=RELEASE_NAMESPACE).json()["items"]
    assert len(pods) == 1
    pod = pods[0]
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["serviceAccountName"] == FULLNAME
    (c,) = pod["spec"]["containers"]
    assert c["command"] == ["python", "-m", "dask_kube_jobs.operator"]
    ready = [s for s in pod["status"]["conditions"] if s["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"  # kopf's /healthz answered the readiness probe


def test_a_user_with_only_the_shipped_role_runs_a_daskjob_to_success(installed: Installed) -> None:
    name = f"hello-{installed.mode}"
    installed.user("create", "-f", "-", input=json.dumps(daskjob(name)))
    status = wait_for(f"DaskJob {name} to finish", lambda: (
        s if (s := job_status(installed.user, name, TEAM)).get("jobStatus") in ("Successful", "Failed")
        else None), timeout=180)
    assert status["jobStatus"] == "Successful", json.dumps(status, indent=1)
    events = installed.admin("get", "events", "-o", "json", namespace=TEAM).json()["items"]
    assert any(e["involvedObject"].get("name") == name for e in events)


def test_the_job_in_the_release_notes_runs_to_success_as_written(installed: Installed) -> None:
    """The notes' submit command, pasted into a shell by a user holding only the shipped role."""
    import os
    import shlex
    import subprocess

    from dask_kube_jobs.local.testing import KUBECTL

    command = notes_submit_command(installed.release["notes"]).replace("<namespace>", TEAM)
    command = command.replace("kubectl ", f"{shlex.quote(KUBECTL)} ", 1)  # the tests' kubectl
    env = {**os.environ, "KUBECONFIG": installed.user.kubeconfig}
    out = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    status = wait_for("the notes' DaskJob to finish", lambda: (
        s if (s := job_status(installed.user, "hello-dask", TEAM)).get("jobStatus")
        in ("Successful", "Failed") else None), timeout=180)
    assert status["jobStatus"] == "Successful", json.dumps(status, indent=1)


def test_the_same_user_follows_the_runners_log(installed: Installed) -> None:
    """The shipped role is enough for `dask-kube-jobs logs` (read-only Pods and pods/log)."""
    import subprocess
    import sys

    name = f"logs-{installed.mode}"
    installed.user("create", "-f", "-", input=json.dumps(daskjob(name)))
    out = subprocess.run(
        [sys.executable, "-m", "dask_kube_jobs.cli", "logs", "-f", name, "--kubeconfig",
         installed.user.kubeconfig, "-n", TEAM], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    assert "sum on the cluster: ok" in out.stdout, out.stdout + out.stderr
    assert "forbidden" not in out.stderr.lower()


def test_the_same_user_cannot_create_a_pod(installed: Installed) -> None:
    assert installed.user("auth", "can-i", "create", "pods", check=False).stdout.strip() == "no"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky"},
           "spec": {"containers": [{"name": "c", "image": IMAGE, "args": ["sleep", "60"]}]}}
    out = installed.user("create", "-f", "-", input=json.dumps(pod), check=False)
    assert out.returncode != 0 and "forbidden" in out.stderr.lower(), out.stderr
    assert installed.user("auth", "can-i", "create", "daskjobs.kubernetes.dask.org",
                          check=False).stdout.strip() == "yes"


def test_the_shipped_user_roles_aggregate_into_the_builtin_edit_and_view(installed: Installed) -> None:
    def has_daskjobs(role: str) -> bool:
        rules = installed.admin("get", "clusterrole", role, "-o", "json").json().get("rules") or []
        return any("daskjobs" in r.get("resources", []) for r in rules)

    wait_for("edit and view to aggregate the Dask rules",
             lambda: has_daskjobs("edit") and has_daskjobs("view"), timeout=30)


def test_the_operator_service_account_holds_exactly_the_rights_of_its_mode(
        installed: Installed) -> None:
    def can(*args: str) -> bool:
        return installed.operator("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    assert can("create", "pods", "-n", TEAM)
    assert can("patch", "daskjobs.kubernetes.dask.org/status", "-n", TEAM)
    assert not can("create", "pods", "-n", TEAM, "--subresource=exec")
    assert not can("get", "secrets", "-n", TEAM)
    assert not can("create", "deployments.apps", "-n", TEAM)
    if installed.mode == "cluster":
        assert can("list", "pods", "--all-namespaces")
        assert can("watch", "customresourcedefinitions.apiextensions.k8s.io")
    else:
        assert not can("list", "pods", "--all-namespaces")
        assert not can("list", "pods", "-n", ELSEWHERE)
        assert not can("list", "namespaces")
        bindings = installed.admin("get", "clusterrolebindings", "-o", "json").json()["items"]
        assert not [b for b in bindings if any(
            s.get("name") == FULLNAME for s in b.get("subjects") or [])]


def test_only_the_watched_namespaces_are_served(installed: Installed) -> None:
    installed.user("create", "-f", "-", input=json.dumps(daskjob("elsewhere")), namespace=ELSEWHERE)
    # A watched job in the meantime proves the operator is alive while the other is judged.
    installed.user("create", "-f", "-", input=json.dumps(daskjob("served")))
    wait_for("the watched job to start", lambda: job_status(installed.user, "served", TEAM)
             .get("jobStatus"), timeout=60)
    if installed.mode == "namespaced":  # team-z is not in watchNamespaces: left alone
        assert job_status(installed.user, "elsewhere", ELSEWHERE) == {}
        pods = installed.admin("get", "pods", "-o", "name", namespace=ELSEWHERE).stdout.split()
        assert pods == []
    else:  # cluster mode serves every namespace
        wait_for("the job in the other namespace to start", lambda: job_status(
            installed.user, "elsewhere", ELSEWHERE).get("jobStatus"), timeout=60)
