"""`dask-kube-jobs profiles` and `run --profile/--option`, as docs/cli.md's "Cluster profiles"
block runs them, against the session's local control plane and the real operator."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from dask_kube_jobs import cli
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[3]
PROFILE = "team-small"  # the name docs/cli.md uses


def documented_commands() -> list[list[str]]:
    """The commands of docs/cli.md's "Cluster profiles" block, as argument lists."""
    section = (ROOT / "docs" / "cli.md").read_text().split("## Cluster profiles", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, "the commands block of docs/cli.md's Cluster profiles has moved"
    lines = [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]
    assert all(words[0] == "dask-kube-jobs" for words in lines)
    return [words[1:] for words in lines]


@pytest.fixture
def team_small(kubectl: Kubectl) -> Iterator[str]:
    """The profile the page's commands use (cluster-scoped: deleted after the test)."""
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
        "metadata": {"name": PROFILE},
        "spec": {"description": "one small worker", "worker": {"replicas": 1},
                 "options": [
                     {"name": "worker_memory", "description": "Memory per worker",
                      "target": "worker.memory",
                      "quantity": {"default": "512Mi", "min": "256Mi", "max": "1Gi"}},
                     {"name": "workers", "target": "worker.replicas",
                      "integer": {"default": 1, "min": 1, "max": 2}}]}}))
    yield PROFILE
    kubectl("delete", "daskclusterprofile", PROFILE, "--ignore-not-found", "--wait=false",
            check=False)


def test_profiles_are_listed_shown_and_picked_by_run(
        local_control_plane: LocalControlPlane, namespace: str, kubectl: Kubectl,
        team_small: str, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = ["--kubeconfig", local_control_plane.kubeconfig]
    listing, show, run = documented_commands()
    assert listing == ["profiles"] and show == ["profiles", PROFILE]
    assert run[:7] == ["run", "--profile", PROFILE, "--option", "worker_memory=768Mi",
                       "--option", "workers=1"]

    assert cli.main([*listing, *kubeconfig]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["NAME", "OPTIONS", "DESCRIPTION"]
    assert [PROFILE, "worker_memory,workers", "one", "small", "worker"] in rows
    assert cli.main([*show, *kubeconfig]) == 0
    shown = capsys.readouterr().out
    assert "worker_memory   worker.memory     512Mi     256Mi to 1Gi   Memory per worker" in shown
    assert cli.main([*show, "-o", "json", *kubeconfig]) == 0
    assert json.loads(capsys.readouterr().out)["options"][1]["max"] == 2
    assert cli.main(["profiles", "no-such-profile", *kubeconfig]) == 1
    assert "DaskClusterProfile \"no-such-profile\" does not exist (there are: " in \
        capsys.readouterr().err

    # Out of range: refused before the job is created, in the words of the profile.
    dashes = run.index("--")
    target = [*kubeconfig, "-n", namespace, "--name"]
    greedy = [w.replace("768Mi", "64Gi") for w in run]
    assert cli.main([*greedy[:dashes], *target, "too-big", *greedy[dashes:]]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"error: profile '{PROFILE}': option worker_memory='64Gi' is out of "
                      "range; allowed: 256Mi to 1Gi")
    assert err[1] == f"hint: see what it offers: dask-kube-jobs profiles {PROFILE}"
    assert kubectl("get", "daskjobs", "-o", "name").stdout.strip() == ""

    # The page's run: the operator applies the profile and its options; its worker computes.
    assert cli.main([*run[:dashes], *target, "profiled", *run[dashes:]]) == 0
    assert capsys.readouterr().out.splitlines() == ["3"]
    status = kubectl("get", "daskjob", "profiled", "-o", "json").json()["status"]
    assert status["jobStatus"] == "Successful"
    assert status["profile"]["name"] == PROFILE
    assert status["profile"]["options"] == {"worker_memory": "768Mi", "workers": 1}
