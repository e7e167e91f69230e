"""Helpers for testing against a local control plane, for this project and its users.

Import the fixtures into a ``conftest.py``::

    from dask_kube_jobs.local.testing import local_control_plane, kubectl, namespace  # noqa: F401

``local_control_plane`` is session-scoped (one control plane per test session, started on first
use); ``namespace`` gives each test a fresh namespace and deletes it afterwards, so tests do not
see each other's objects; ``kubectl`` runs the real kubectl binary against the control plane.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .launcher import LocalControlPlane

KUBECTL = os.environ.get("KUBECTL", shutil.which("kubectl") or "/usr/bin/kubectl")


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Kubectl:
    """Runs real kubectl with a kubeconfig; ``check=True`` turns a failure into an assertion."""

    def __init__(self, kubeconfig: str, namespace: str | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace

    def __call__(self, *args: str, input: str | None = None, check: bool = True,
                 timeout: float = 60, namespace: str | None = None) -> KubectlResult:
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig]
        ns = namespace or self.namespace
        if ns:
            cmd += ["--namespace", ns]
        proc = subprocess.run([*cmd, *args], input=input, capture_output=True, text=True,
                              timeout=timeout)
        result = KubectlResult(proc.returncode, proc.stdout, proc.stderr)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return result

    def in_namespace(self, namespace: str) -> Kubectl:
        return Kubectl(self.kubeconfig, namespace)


@pytest.fixture(scope="session")
def local_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    """A control plane (API server and controllers, plus kubelet and operator if installed)."""
    root = tmp_path_factory.mktemp("control-plane")
    kubelet = os.environ.get("DKJ_TEST_KUBELET", "1") != "0"
    operator = os.environ.get("DKJ_TEST_OPERATOR", "1") != "0"
    controllers = os.environ.get("DKJ_TEST_CONTROLLERS", "1") != "0"
    plane = LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state",
                              kubelet=kubelet, operator=operator, controllers=controllers)
    with plane:
        yield plane


@pytest.fixture
def kubectl(local_control_plane: LocalControlPlane, namespace: str) -> Kubectl:
    return Kubectl(local_control_plane.kubeconfig, namespace)


@pytest.fixture
def namespace(local_control_plane: LocalControlPlane) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    k = Kubectl(local_control_plane.kubeconfig)
    k("create", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    yield name
    k("delete", "namespace", name, "--wait=false", check=False)
