"""``kubectl exec`` against the session's local control plane, through the API server's proxy
to the kubelet, over both carriers kubectl 1.32 speaks (WebSocket v5 channels by default, SPDY
with ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false``).

One Pod serves every test (started once per module, in its own namespace), so the tests cost a
kubectl run each: output and exit codes, stdin, a terminal with its size, the container's
context, and the refusals (RBAC, a container that is not the Pod's, one that is not running).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pty
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dask_kube_jobs.local.kubelet.container import enter_argv
from dask_kube_jobs.local.kubelet.podexec import ExecRequestError, exec_handler
from dask_kube_jobs.local.kubelet.server import start_kubelet_server
from dask_kube_jobs.local.testing import KUBECTL, Kubectl

pytestmark = pytest.mark.kubectl

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "box"},
    "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
        "name": "main", "image": "busybox", "command": ["sleep", "3600"],
        "workingDir": "/tmp", "env": [{"name": "GREETING", "value": "hello from main"}]}]},
}
#: an init container that keeps running: exec reaches it, and not yet the app container
WAITING_POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "starting"},
    "spec": {"terminationGracePeriodSeconds": 0,
             "initContainers": [{"name": "setup", "image": "busybox", "command": ["sleep", "3600"]}],
             "containers": [{"name": "app", "image": "busybox", "command": ["sleep", "3600"]}]},
}
CARRIERS = pytest.mark.parametrize("websockets", [True, False], ids=["websocket", "spdy"])


@pytest.fixture(scope="module")
def box(local_control_plane: Any) -> Iterator[Kubectl]:
    """kubectl in a namespace where ``box`` runs and ``starting`` is in its init container."""
    namespace = f"t-exec-{uuid.uuid4().hex[:8]}"
    admin = Kubectl(local_control_plane.kubeconfig)
    admin("create", "namespace", namespace)
    k = admin.in_namespace(namespace)
    k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                           "items": [POD, WAITING_POD]}))
    k("wait", "--for=jsonpath={.status.phase}=Running", "pod/box", "--timeout=60s", timeout=70)
    deadline = time.monotonic() + 60
    while not k("get", "pod/starting", "-o",
                "jsonpath={.status.initContainerStatuses[0].state.running.startedAt}").stdout:
        assert time.monotonic() < deadline, "the init container never ran"
        time.sleep(0.2)
    yield k
    admin("delete", "namespace", namespace, "--wait=false", check=False)


def run(k: Kubectl, *args: str, websockets: bool = True, input: str | None = None,
        ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "true" if websockets else "false"}
    cmd = [KUBECTL, "--kubeconfig", k.kubeconfig, "--namespace", str(k.namespace), *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=30, env=env)


@CARRIERS
def test_exec_streams_output_and_exit_code(box: Kubectl, websockets: bool) -> None:
    result = run(box, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3",
                 websockets=websockets)
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\ncommand terminated with exit code 3\n"
    ok = run(box, "exec", "box", "--", "true", websockets=websockets)
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "", "")


@CARRIERS
def test_exec_stdin_reaches_the_command(box: Kubectl, websockets: bool) -> None:
    text = "line one\n" + "x" * 100_000 + "\nlast\n"
    result = run(box, "exec", "-i", "box", "--", "cat", input=text, websockets=websockets)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == text


def test_exec_runs_in_the_container_context(box: Kubectl) -> None:
    result = run(box, "exec", "box", "--", "sh", "-c", 'pwd; echo "$GREETING"')
    assert (result.returncode, result.stdout) == (0, "/tmp\nhello from main\n")


def test_exec_with_a_terminal_gets_its_size(box: Kubectl) -> None:
    """``-it`` needs kubectl's stdin to be a terminal: give it one, 33 rows by 101 columns."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child becomes kubectl
        import fcntl
        import struct
        import termios

        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        os.execv(KUBECTL, [KUBECTL, "--kubeconfig", box.kubeconfig, "--namespace",
                           str(box.namespace), "exec", "-it", "box", "--", "sh", "-c",
                           "tty; stty size; exit 4"])
    out = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: kubectl has exited
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    assert "/dev/pts/" in text
    assert "33 101\n" in text
    assert os.waitstatus_to_exitcode(status) == 4


def test_exec_needs_create_on_pods_exec(box: Kubectl) -> None:
    """A user who may read Pods and even ``get`` pods/exec (enough for a WebSocket GET before
    Kubernetes 1.35) is refused: exec needs ``create``, as kube-apiserver's message says. One
    with ``create`` only (the usual Role) gets in: kubectl falls back from the refused
    WebSocket GET to SPDY's POST."""
    def role(user: str, verbs: list[str]) -> list[dict[str, Any]]:
        return [
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
             "metadata": {"name": user},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
                       {"apiGroups": [""], "resources": ["pods/exec"], "verbs": verbs}]},
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
             "metadata": {"name": user},
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
             "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
        ]

    box("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                             "items": role("peeker", ["get"]) + role("runner", ["create"])}))
    for websockets in (True, False):
        result = run(box, "exec", "--as=peeker", "box", "--", "true", websockets=websockets)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f'Error from server (Forbidden): pods "box" is forbidden: User "peeker" cannot '
            f'create resource "pods/exec" in API group "" in the namespace "{box.namespace}"')
    allowed = run(box, "exec", "--as=runner", "box", "--", "echo", "in")
    assert (allowed.returncode, allowed.stdout) == (0, "in\n")


def test_exec_refuses_containers_that_are_not_there_or_not_running(box: Kubectl) -> None:
    missing = run(box, "exec", "box", "-c", "nope", "--", "true")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error from server (BadRequest): container nope is not valid for pod box")
    waiting = run(box, "exec", "starting", "-c", "app", "--", "true")
    assert waiting.returncode == 1
    assert waiting.stderr.strip() == 'error: unable to upgrade connection: container not found ("app")'
    init = run(box, "exec", "starting", "-c", "setup", "--", "echo", "in the init container")
    assert (init.returncode, init.stdout) == (0, "in the init container\n")


def test_exec_of_a_program_the_container_lacks_is_the_runtimes_error(box: Kubectl) -> None:
    result = run(box, "exec", "box", "--", "no-such-program", "arg")
    assert result.returncode == 1
    assert result.stderr.startswith("error: Internal error occurred: error executing command in "
                                    "container: failed to exec in container: failed to start exec")
    assert result.stderr.strip().endswith(
        'exec failed: unable to start container process: exec: "no-such-program": '
        "executable file not found in $PATH: unknown")


# -- the kubelet's endpoint alone, with clients other than kubectl ------------------------------
class _Here:
    """A "container" that is this machine as it is: the command runs in ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.workdir = str(workdir)
        self.pid: int | None = None

    def exec_argv(self, command: list[str]) -> list[str]:
        return enter_argv(command, pid=None, workdir=self.workdir, namespace_mode=False)


@pytest.fixture
async def kubelet_url(tmp_path: Path) -> AsyncIterator[str]:
    async def find(namespace: str, pod: str, container: str) -> _Here:
        if container != "c":
            raise ExecRequestError(500, f'container not found ("{container}")')
        return _Here(tmp_path)

    runner, port = await start_kubelet_server(tmp_path, exec_handler=exec_handler(find))
    yield f"http://127.0.0.1:{port}/exec/ns/p/c"
    await runner.cleanup()


async def _collect(ws: aiohttp.ClientWebSocketResponse, *, text: bool = False,
                   ) -> tuple[dict[int, bytes], dict[str, Any]]:
    got: dict[int, bytes] = {}
    async for msg in ws:
        if text:
            channel, data = int(msg.data[0]), base64.b64decode(msg.data[1:])
        else:
            channel, data = msg.data[0], msg.data[1:]
        got[channel] = got.get(channel, b"") + data
    return got, json.loads(got.pop(3))


async def test_kubelet_exec_v5_ends_stdin_with_the_close_signal(kubelet_url: str) -> None:
    params = [("command", "cat"), ("input", "1"), ("output", "1"), ("error", "1")]
    async with aiohttp.ClientSession() as session, session.ws_connect(
            kubelet_url, params=params, protocols=("v5.channel.k8s.io",)) as ws:
        assert ws.protocol == "v5.channel.k8s.io"
        await ws.send_bytes(b"\x00hello ")
        await ws.send_bytes(b"\x00world")
        await ws.send_bytes(b"\xff\x00")  # close signal, channel 0 (stdin)
        got, status = await asyncio.wait_for(_collect(ws), 10)
    assert got == {1: b"hello world"}
    assert status == {"metadata": {}, "status": "Success"}


async def test_kubelet_exec_v4_base64_reports_the_exit_code(kubelet_url: str,
                                                           tmp_path: Path) -> None:
    params = [("command", "sh"), ("command", "-c"), ("command", "pwd; echo oops >&2; exit 2"),
              ("output", "1"), ("error", "1")]
    async with aiohttp.ClientSession() as session, session.ws_connect(
            kubelet_url, params=params, protocols=("v4.base64.channel.k8s.io",)) as ws:
        got, status = await asyncio.wait_for(_collect(ws, text=True), 10)
    assert got[2] == b"oops\n"
    assert got[1] == f"{tmp_path}\n".encode()  # pwd: the container's working directory
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]


async def test_kubelet_exec_kills_the_command_when_the_client_leaves(kubelet_url: str) -> None:
    params = [("command", "sh"), ("command", "-c"), ("command", "echo $$; exec sleep 60"),
              ("output", "1")]
    async with aiohttp.ClientSession() as session, session.ws_connect(
            kubelet_url, params=params, protocols=("v4.channel.k8s.io",)) as ws:
        msg = await asyncio.wait_for(ws.receive(), 10)
        pid = int(msg.data[1:])
        assert _alive(pid)
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "the command outlived its client"
        await asyncio.sleep(0.05)


async def test_kubelet_exec_refusals_are_plain_text(kubelet_url: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(kubelet_url.replace("/c", "/other"),
                               params=[("command", "ls"), ("output", "1")]) as resp:
            assert (resp.status, await resp.text()) == (500, 'container not found ("other")\n')
        async with session.get(kubelet_url, params=[("command", "ls"), ("output", "1")]) as resp:
            assert (resp.status, await resp.text()) == (400, "Upgrade request required\n")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
