"""Node registration, graceful deletion, and restart safety of the kubelet itself."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .kubelet_support import (
    Plane,
    apply,
    has_event,
    node_ready,
    pod,
    processes_with,
    start_kubelet,
    status_of,
    stop_kubelet,
    wait_for,
)

pytestmark = pytest.mark.kubectl

HANDLER = """
import os, signal, sys, time, subprocess
child = subprocess.Popen(["sleep", "600"])
def on_term(*_):
    open("/out/terminated", "w").write("SIGTERM handled")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
open("/out/started", "w").write("up")
while True:
    time.sleep(0.1)
"""


def mark(marker: str) -> list[dict[str, str]]:
    """Processes of a test carry this variable, so the test can find every one of them."""
    return [{"name": "DKJ_TEST_MARKER", "value": marker}]


def test_node_is_registered_with_lease(kplane: Plane) -> None:
    k = Kubectl(kplane.kubeconfig)
    node = k("get", "node", "dkj-local-node", "-o", "json").json()
    st = node["status"]
    assert st["nodeInfo"]["kubeletVersion"] == "v1.32.0"
    assert st["nodeInfo"]["containerRuntimeVersion"] == "dask-kube-jobs-process://0.1"
    assert {"type": "InternalIP", "address": "127.0.0.1"} in st["addresses"]
    assert int(st["capacity"]["cpu"]) == os.cpu_count()
    assert st["capacity"]["pods"] == "110" and st["capacity"]["memory"].endswith("Ki")
    has_gpu = any(Path("/dev").glob("nvidia[0-9]*"))
    assert ("nvidia.com/gpu" in st["capacity"]) == has_gpu
    assert st["daemonEndpoints"]["kubeletEndpoint"]["Port"] > 0
    types = {c["type"]: c["status"] for c in st["conditions"]}
    assert types == {"Ready": "True", "MemoryPressure": "False", "DiskPressure": "False",
                     "PIDPressure": "False"}
    lease = k("get", "lease", "dkj-local-node", "-n", "kube-node-lease", "-o", "json").json()
    assert lease["spec"]["holderIdentity"] == "dkj-local-node"
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"


def test_graceful_deletion_runs_sigterm_handler(kk: Kubectl, tmp_path: Path) -> None:
    marker = f"dkj-marker-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # a hostPath keeps the host's modes: open to the container's own uid
    apply(kk, pod("graceful", [{"name": "c", "command": ["python", "-c", HANDLER],
                                "env": [{"name": "DKJ_TEST_MARKER", "value": marker}],
                                "volumeMounts": [{"name": "out", "mountPath": "/out"}]}],
                  volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
                  terminationGracePeriodSeconds=20))
    wait_for(lambda: (out / "started").exists(), 20, "the container to start")
    assert processes_with(marker)
    t0 = time.monotonic()
    kk("delete", "pod", "graceful", "--timeout=30s")
    assert time.monotonic() - t0 < 15
    assert (out / "terminated").read_text() == "SIGTERM handled"
    assert kk("get", "pod", "graceful", check=False).returncode != 0
    wait_for(lambda: not processes_with(marker), 5, "no process left")


def test_sigkill_after_grace_period_leaves_no_process(kk: Kubectl) -> None:
    marker = f"dkj-marker-{uuid.uuid4().hex[:8]}"
    script = "trap '' TERM; sleep 600 & setsid sleep 601 & sleep 602"
    apply(kk, pod("stubborn", [{"name": "c", "command": ["sh", "-c", script], "env": mark(marker)}],
                  terminationGracePeriodSeconds=2))
    wait_for(lambda: len(processes_with(marker)) >= 3, 20, "the processes")
    t0 = time.monotonic()
    kk("delete", "pod", "stubborn", "--timeout=30s")
    took = time.monotonic() - t0
    assert 1.5 < took < 10, took
    assert has_event(kk, "stubborn", "Killing", "Stopping container c")
    assert not processes_with(marker)


def test_a_killed_kubelet_leaves_containers_running_and_the_next_one_adopts_them(
        kplane: Plane, kk: Kubectl, tmp_path: Path) -> None:
    """A second node: its kubelet is SIGKILLed while Pods run. The containers keep running and
    logging; the next kubelet adopts them (same processes, start times and restart counts), so
    a container that ends meanwhile or afterwards is reported with its own exit code; deleting
    the Pods leaves nothing behind."""
    node = f"restart-{uuid.uuid4().hex[:6]}"
    state = tmp_path / "state"
    proc = start_kubelet(kplane.cp, state, node, tmp_path / "kubelet.log")
    try:
        wait_for(lambda: node_ready(kk, node), 30, "the second Node")
        marker = f"dkj-marker-{uuid.uuid4().hex[:8]}"
        apply(kk, pod("survivor", [{"name": "c", "command": [
            "sh", "-c", "setsid sleep 600 & while true; do echo tick; sleep 0.2; done"],
            "env": mark(marker)}], node=node),
            pod("once", [{"name": "c", "command": [
                "sh", "-c", "echo before; sleep 6; echo after; exit 3"], "env": mark(marker)}],
                node=node, restartPolicy="Never"))
        wait_for(lambda: status_of(kk, "survivor").get("phase") == "Running" and
                 status_of(kk, "once").get("phase") == "Running", 30, "Pods running")
        before = status_of(kk, "survivor", "c")

        def lasting() -> set[int]:  # the containers' processes, not the ticks' short sleeps
            return {p.pid for p in processes_with(marker)
                    if (p.info["cmdline"] or [])[-1:] != ["0.2"]}
        old = lasting()
        assert len(old) >= 3
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(1)
        assert old <= lasting()  # nothing died with the kubelet
        proc = start_kubelet(kplane.cp, state, node, tmp_path / "kubelet.log")
        once = wait_for(lambda: (lambda s: s if s.get("phase") == "Failed" else None)(
            status_of(kk, "once")), 40, "the Never Pod to end on its own")
        ended = once["containerStatuses"][0]
        assert ended["state"]["terminated"]["exitCode"] == 3, ended
        assert ended["restartCount"] == 0
        assert kk("logs", "once").stdout.split() == ["before", "after"]
        after = status_of(kk, "survivor", "c")
        assert after["restartCount"] == 0 and after["containerID"] == before["containerID"]
        assert after["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
        main = int(before["containerID"].removeprefix("process://"))
        assert main in old and main in lasting()  # the very same process, adopted
        ticks = kk("logs", "survivor").stdout.split()
        time.sleep(1)
        assert len(kk("logs", "survivor").stdout.split()) > len(ticks)  # still logging
        kk("delete", "pod", "survivor", "once", "--timeout=30s")
        wait_for(lambda: not processes_with(marker), 10, "no process left")
    finally:
        stop_kubelet(proc)


def test_kubelet_sigterm_stops_pod_processes(kplane: Plane, kk: Kubectl, tmp_path: Path) -> None:
    node = f"stop-{uuid.uuid4().hex[:6]}"
    proc = start_kubelet(kplane.cp, tmp_path / "state", node, tmp_path / "kubelet.log")
    marker = f"dkj-marker-{uuid.uuid4().hex[:8]}"
    try:
        wait_for(lambda: node_ready(kk, node), 30, "the Node")
        apply(kk, pod("stopme", [{"name": "c", "command": [
            "sh", "-c", "trap '' TERM; setsid sleep 600 & sleep 601"], "env": mark(marker)}],
            node=node))
        wait_for(lambda: len(processes_with(marker)) >= 2, 20, "the processes")
    finally:
        t0 = time.monotonic()
        stop_kubelet(proc)
        assert time.monotonic() - t0 < 15
        kk("delete", "pod", "stopme", "--wait=false", check=False)
        kk("delete", "node", node, check=False)
    assert not processes_with(marker)


def test_cleanup_after_a_killed_kubelet(kplane: Plane, kk: Kubectl, tmp_path: Path) -> None:
    """What a supervisor calls when its kubelet died and will not come back (``local down``)."""
    from dask_kube_jobs.local.kubelet.resources import cleanup_node

    node = f"gone-{uuid.uuid4().hex[:6]}"
    state = tmp_path / "state"
    proc = start_kubelet(kplane.cp, state, node, tmp_path / "kubelet.log")
    marker = f"dkj-marker-{uuid.uuid4().hex[:8]}"
    try:
        wait_for(lambda: node_ready(kk, node), 30, "the Node")
        apply(kk, pod("orphan", [{"name": "c", "command": [
            "sh", "-c", "setsid sleep 600 & sleep 601 & wait"], "env": mark(marker)}], node=node))
        wait_for(lambda: len(processes_with(marker)) >= 3, 20, "the processes")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert cleanup_node(state, node) >= 1
        assert not processes_with(marker)
    finally:
        stop_kubelet(proc)
        kk("delete", "pod", "orphan", "--grace-period=0", "--force", check=False)
        kk("delete", "node", node, check=False)


def test_the_kubelet_runs_as_its_node_with_a_nodes_rights(kplane: Plane, kk: Kubectl) -> None:
    """The kubelet's credentials are a node's: it reads what its Pods reference and changes only
    its own Node and Pods; the API server refuses the rest in kube-apiserver's words."""
    node = Kubectl(str(kplane.cp.state.root / "node-dkj-local-node.kubeconfig"))
    out = node("get", "secrets", "-n", kk.namespace, check=False)
    assert out.returncode != 0
    assert ('User "system:node:dkj-local-node" cannot list resource "secrets" in API group ""'
            in out.stderr), out.stderr
    kk("create", "secret", "generic", "mine", "--from-literal=k=v")
    out = node("get", "secret", "mine", "-n", kk.namespace, check=False)
    assert "no relationship found between node 'dkj-local-node' and this object" in out.stderr
    apply(kk, pod("reader", [{"name": "c", "command": ["sleep", "600"], "env": [
        {"name": "K", "valueFrom": {"secretKeyRef": {"name": "mine", "key": "k"}}}]}]))
    wait_for(lambda: status_of(kk, "reader").get("phase") == "Running", 30, "the Pod to run")
    assert node("get", "secret", "mine", "-n", kk.namespace, "-o", "name").stdout.strip() \
        == "secret/mine"
    out = node("label", "node", "dkj-local-node", "x=y", "--overwrite", check=False)
    assert out.returncode == 0, out.stderr
    other = f"other-{uuid.uuid4().hex[:6]}"
    apply(kk, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": other}})
    out = node("patch", "node", other, "--type=merge", "-p",
               '{"metadata":{"labels":{"x":"y"}}}', check=False)
    assert (f'node "dkj-local-node" is not allowed to modify node "{other}"'
            in out.stderr), out.stderr
    kk("delete", "node", other)
    kk("delete", "pod", "reader", "--wait=false")
