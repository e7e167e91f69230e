"""Fixtures and helpers for the process kubelet's tests.

The kubelet tests get a control plane of their own (API server and controllers, no kubelet from
the daemon) plus a kubelet process started here, so that the tests can set its back-off base
(``DKJ_KUBELET_BACKOFF_BASE``), read its state directory, and kill and restart it. Fixtures are
imported explicitly by each test module (no conftest, so nothing leaks into other tests here).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from dask_kube_jobs.local.apiserver.bootstrap_rbac import node_proxier_binding
from dask_kube_jobs.local.identities import write_node_kubeconfig
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

NODE = "dkj-local-node"
T = TypeVar("T")


def node_kubeconfig(cp: LocalControlPlane, node: str) -> str:
    """The credentials a kubelet of ``node`` runs with: its node identity, plus kube-proxy's
    rights bound to it (as an administrator would), never admin."""
    path = cp.state.root / f"node-{node}.kubeconfig"
    write_node_kubeconfig(cp.state, Path(cp.kubeconfig), path, node)
    Kubectl(cp.kubeconfig)("apply", "-f", "-", input=json.dumps(node_proxier_binding(node)))
    return str(path)


def start_kubelet(cp: LocalControlPlane, state_dir: Path, node: str, log: Path,
                  backoff: str = "1") -> subprocess.Popen[bytes]:
    """A kubelet process for ``node``, running with that node's identity."""
    kubeconfig = node_kubeconfig(cp, node)
    env = {**os.environ, "DKJ_KUBELET_BACKOFF_BASE": backoff}
    with open(log, "ab") as fh:
        return subprocess.Popen(
            [sys.executable, "-m", "dask_kube_jobs.local.kubelet", "--kubeconfig", kubeconfig,
             "--state-dir", str(state_dir), "--node-name", node],
            stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True)


def stop_kubelet(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def node_ready(k: Kubectl, node: str) -> bool:
    out = k("get", "node", node, "-o", "json", check=False)
    if out.returncode:
        return False
    conds = {c["type"]: c["status"] for c in (out.json().get("status") or {}).get("conditions") or []}
    return conds.get("Ready") == "True"


@dataclass
class Plane:
    cp: LocalControlPlane
    kubelet: subprocess.Popen[bytes]
    state_dir: Path
    root: Path

    @property
    def kubeconfig(self) -> str:
        return self.cp.kubeconfig


@pytest.fixture(scope="session")
def kplane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    root = Path(tmp_path_factory.mktemp("kubelet-plane"))
    cp = LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state", kubelet=False,
                           operator=False)
    with cp:
        state = root / "kubelet"
        proc = start_kubelet(cp, state, NODE, root / "kubelet.log")
        try:
            wait_for(lambda: proc.poll() is None and node_ready(Kubectl(cp.kubeconfig), NODE),
                     30, "the kubelet's Node to be Ready")
            yield Plane(cp, proc, state, root)
        finally:
            stop_kubelet(proc)


@pytest.fixture
def kk(kplane: Plane) -> Iterator[Kubectl]:
    """kubectl in a fresh namespace of the kubelet plane."""
    ns = f"k-{uuid.uuid4().hex[:8]}"
    admin = Kubectl(kplane.kubeconfig)
    admin("create", "namespace", ns)
    wait_for(lambda: admin("get", "sa", "default", "-n", ns, check=False).returncode == 0, 10,
             "the default ServiceAccount")
    yield admin.in_namespace(ns)
    admin("delete", "namespace", ns, "--wait=false", check=False)


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in [*containers, *spec.get("initContainers", [])]:
        c.setdefault("image", "ghcr.io/dask/dask:latest")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, **spec.pop("meta", {})},
            "spec": {"nodeName": spec.pop("node", NODE), "containers": containers, **spec}}


def apply(k: Kubectl, *objs: dict[str, Any]) -> None:
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


def get(k: Kubectl, name: str) -> dict[str, Any]:
    return k("get", "pod", name, "-o", "json").json()  # type: ignore[no-any-return]


def status_of(k: Kubectl, name: str, container: str | None = None) -> dict[str, Any]:
    st = get(k, name).get("status") or {}
    if container is None:
        return st
    for cs in (st.get("containerStatuses") or []) + (st.get("initContainerStatuses") or []):
        if cs["name"] == container:
            return cs  # type: ignore[no-any-return]
    return {}


def wait_phase(k: Kubectl, name: str, phases: tuple[str, ...], timeout: float = 30) -> dict[str, Any]:
    return wait_for(lambda: (lambda s: s if s.get("phase") in phases else None)(status_of(k, name)),
                    timeout, f"pod {name} in {phases}")


def terminated(k: Kubectl, name: str, container: str, timeout: float = 30) -> dict[str, Any]:
    return wait_for(lambda: (status_of(k, name, container).get("state") or {}).get("terminated"),
                    timeout, f"{name}/{container} terminated")


def events(k: Kubectl, name: str) -> list[dict[str, Any]]:
    out = k("get", "events", "--field-selector", f"involvedObject.name={name}", "-o", "json")
    return out.json()["items"]  # type: ignore[no-any-return]


def has_event(k: Kubectl, name: str, reason: str, contains: str = "") -> bool:
    return any(e["reason"] == reason and contains in e.get("message", "") for e in events(k, name))


def logs(k: Kubectl, name: str, *args: str) -> str:
    return k("logs", name, *args).stdout


def processes_with(marker: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter(["cmdline", "environ"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in p.info["cmdline"] or []):
                out.append(p)
                continue
            if marker in (p.info.get("environ") or {}).get("DKJ_TEST_MARKER", ""):
                out.append(p)
    return out
