"""Port-forward and logs end to end, through the API server's proxy to the kubelet endpoint.

Two layers. ``stack`` runs, in a thread of this process, the real API server (with
``install_proxies``) and the real kubelet HTTPS endpoint (``kubelet/server.py`` with
``handle_port_forward``), a Node advertising it and a Pod bound to it whose "process" is a small
server on 127.0.0.1: every client (kubectl over WebSocket-tunnelled SPDY and over plain SPDY,
kr8s, the kubernetes client) then goes client -> API server -> kubelet -> Pod exactly as on a
cluster, without depending on the kubelet's process runtime. The ``full`` tests at the end do
the same against ``LocalControlPlane`` with a Pod the kubelet really runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dask_kube_jobs.local import certs, kubeconfig
from dask_kube_jobs.local.apiserver.auth import TokenAuthenticator, new_key
from dask_kube_jobs.local.apiserver.bootstrap_rbac import bootstrap_objects
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.proxy import install_proxies
from dask_kube_jobs.local.apiserver.server import APIServer
from dask_kube_jobs.local.kubelet.portforward import port_forward_handler
from dask_kube_jobs.local.kubelet.server import start_kubelet_server
from dask_kube_jobs.local.testing import KUBECTL

pytestmark = pytest.mark.kubectl
BODY = b"hello from the pod\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    """API server + kubelet endpoint + "Pod" servers on one event loop in a daemon thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.kubelet_state = root / "kubelet"
        self.run(self._start())

    def run(self, coro: Any, timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    async def _start(self) -> None:
        pki = self.root / "pki"
        ca = certs.ensure_ca(pki)
        api_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pair = certs.issue_serving_cert(ca, pki, "apiserver")
        api_ctx.load_cert_chain(pair.cert, pair.key)
        kubelet_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        pair = certs.issue_serving_cert(ca, pki, "kubelet")
        kubelet_ctx.load_cert_chain(pair.cert, pair.key)

        self.core = core = APICore()
        authn = TokenAuthenticator(new_key(), uid_of=lambda *_: None)
        core.bootstrap(bootstrap_objects())
        server = APIServer(core, authn)
        install_proxies(server)
        self.api_runner, api_port = await server.start("127.0.0.1", 0, api_ctx)
        self.kubeconfig = str(kubeconfig.write(self.root / "kubeconfig.yaml", kubeconfig.build(
            f"https://127.0.0.1:{api_port}", authn.mint_admin(), ca_pem=ca.cert.read_bytes())))

        async def pod_ip_of(namespace: str, name: str) -> str | None:
            pod = core.store.get(("", "pods"), namespace, name)
            return ((pod or {}).get("status") or {}).get("podIP")

        self.kubelet_runner, self.kubelet_port = await start_kubelet_server(
            self.kubelet_state, ssl_context=kubelet_ctx,
            port_forward_handler=port_forward_handler(pod_ip_of))
        self.http_server = await asyncio.start_server(self._http, "127.0.0.1", 0)
        self.http_port = self.http_server.sockets[0].getsockname()[1]
        self.echo_server = await asyncio.start_server(self._echo, "127.0.0.1", 0)
        self.echo_port = self.echo_server.sockets[0].getsockname()[1]
        self.closed_port = free_port()

        self._create("nodes", None, {"metadata": {"name": "node-1"}}, status={
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": "node-1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port}}})
        running = {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                   "conditions": [{"type": t, "status": "True"} for t in ("Ready", "ContainersReady")],
                   "containerStatuses": [{"name": "web", "ready": True, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}]}
        # No controllers run here: create what the ServiceAccount controller would, so that
        # ServiceAccount admission lets the Pods in.
        self._create("serviceaccounts", "default", {"metadata": {"name": "default"}})
        self.web_uid = self._create("pods", "default", {
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{
                "name": "web", "image": "python",
                "ports": [{"name": "http", "containerPort": self.http_port},
                          {"name": "echo", "containerPort": self.echo_port}]}]}},
            status=running)["metadata"]["uid"]
        self._create("services", "default", {"metadata": {"name": "web"}, "spec": {
            "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
        self._create("pods", "default", {
            "metadata": {"name": "multi"},
            "spec": {"nodeName": "node-1", "containers": [{"name": "a", "image": "x"},
                                                          {"name": "b", "image": "x"}]}})
        self._create("pods", "default", {
            "metadata": {"name": "pending"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})

    def _create(self, plural: str, namespace: str | None, body: dict[str, Any],
                status: dict[str, Any] | None = None) -> dict[str, Any]:
        rtype = self.core.registry.get("", plural)
        assert rtype is not None
        obj = self.core.create(rtype, "v1", namespace, {"apiVersion": "v1", **body})
        if status is not None:
            obj = self.core.update(rtype, "v1", namespace, obj["metadata"]["name"],
                                   {**obj, "status": status}, subresource="status")
        return obj

    @staticmethod
    async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                         + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
            await writer.drain()
        writer.close()

    @staticmethod
    async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    def log_file(self, lines: list[str], *, done: bool) -> Path:
        cdir = self.kubelet_state / "pods" / f"default_web_{self.web_uid}" / "web"
        cdir.mkdir(parents=True, exist_ok=True)
        path = cdir / "0.log"
        path.write_text("".join(f"2026-01-01T00:00:0{i % 10}.000000000Z stdout F {line}\n"
                                for i, line in enumerate(lines)))
        marker = path.with_name("0.log.done")
        if done:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
        return path

    def close(self) -> None:
        async def stop() -> None:
            self.http_server.close()
            self.echo_server.close()
            await self.kubelet_runner.cleanup()
            await self.api_runner.cleanup()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("pf-stack"))
    try:
        yield s
    finally:
        s.close()


@contextlib.contextmanager
def port_forward(kubeconfig: str, target: str, mapping: str, *, websockets: bool = True,
                 namespace: str = "default") -> Iterator[subprocess.Popen[str]]:
    """Run ``kubectl port-forward`` until it reports it is forwarding."""
    env = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": "true" if websockets else "false"}
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", kubeconfig, "-n", namespace, "port-forward",
                             "--address", "127.0.0.1", target, mapping],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "Forwarding from" not in line:
            proc.kill()
            raise AssertionError(f"kubectl port-forward did not start: {line}{proc.communicate()[1]}")
        yield proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def http_get(port: int, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as resp:
        return bytes(resp.read())


def echo_roundtrip(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


# -- kubectl ------------------------------------------------------------------------------------
@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_pod(stack: Stack, websockets: bool) -> None:
    local, echo_local = free_port(), free_port()
    with port_forward(stack.kubeconfig, "pod/web", f"{local}:{stack.http_port}", websockets=websockets), \
            port_forward(stack.kubeconfig, "pod/web", f"{echo_local}:{stack.echo_port}", websockets=websockets):
        assert http_get(local) == BODY
        assert http_get(local) == BODY  # a second connection over the same session
        payload = os.urandom(3 * 1024 * 1024)  # several SPDY frames and WebSocket messages
        assert echo_roundtrip(echo_local, payload) == payload


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_service(stack: Stack, websockets: bool) -> None:
    local = free_port()
    with port_forward(stack.kubeconfig, "svc/web", f"{local}:80", websockets=websockets):
        assert http_get(local) == BODY


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_kubectl_port_forward_refused_port_reports_the_kubelet_error(stack: Stack, websockets: bool) -> None:
    local = free_port()
    with port_forward(stack.kubeconfig, "pod/web", f"{local}:{stack.closed_port}",
                      websockets=websockets) as proc:
        with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
            s.settimeout(10)
            assert s.recv(10) == b""  # the connection ends instead of hanging
        proc.wait(15)  # kubectl gives up on an error from the error stream, as it does upstream
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert f"error forwarding port {stack.closed_port} to pod default/web" in err
    assert "connection refused" in err


def test_port_forward_to_unbound_pod_is_a_clear_400(stack: Stack) -> None:
    result = subprocess.run([KUBECTL, "--kubeconfig", stack.kubeconfig, "get", "--raw",
                             "/api/v1/namespaces/default/pods/pending/portforward?ports=80"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "does not have a host assigned" in result.stderr


# -- kr8s and the kubernetes client -----------------------------------------------------------
async def _kr8s_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


async def test_kr8s_portforward_pod_and_service(stack: Stack) -> None:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Pod, Service

    api = await kr8s.asyncio.api(kubeconfig=stack.kubeconfig)
    pod = await Pod.get("web", namespace="default", api=api)
    async with pod.portforward(remote_port=stack.http_port, local_port="auto") as port:
        assert (await _kr8s_get(port)).endswith(BODY)
        assert (await _kr8s_get(port)).endswith(BODY)
    svc = await Service.get("web", namespace="default", api=api)
    async with svc.portforward(remote_port=stack.http_port, local_port="auto") as port:
        assert (await _kr8s_get(port)).endswith(BODY)


def _kube_client(path: str) -> Any:
    from kubernetes import client, config

    return client.CoreV1Api(api_client=config.new_client_from_config(config_file=path))


def test_kubernetes_client_portforward(stack: Stack) -> None:
    from kubernetes.stream import portforward

    api = _kube_client(stack.kubeconfig)
    pf = portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                     ports=f"{stack.http_port},{stack.closed_port}")
    sock = pf.socket(stack.http_port)
    sock.settimeout(10)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data.endswith(BODY)
    deadline = time.monotonic() + 10
    while pf.error(stack.closed_port) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "connection refused" in (pf.error(stack.closed_port) or "")
    pf.close()


async def test_kubelet_base64_channel_protocol(stack: Stack) -> None:
    """The v4 base64 dialect, straight at the kubelet endpoint (no client library uses it)."""
    import base64

    url = f"https://127.0.0.1:{stack.kubelet_port}/portForward/default/web?port={stack.echo_port}"
    async with aiohttp.ClientSession() as session, session.ws_connect(
            url, protocols=("v4.base64.channel.k8s.io",), ssl=False) as ws:
        assert ws.protocol == "v4.base64.channel.k8s.io"
        port_le = base64.b64encode(stack.echo_port.to_bytes(2, "little")).decode()
        assert [await ws.receive_str(), await ws.receive_str()] == ["0" + port_le, "1" + port_le]
        await ws.send_str("0" + base64.b64encode(b"ping").decode())
        msg = await asyncio.wait_for(ws.receive_str(), 10)
        assert msg[0] == "0" and base64.b64decode(msg[1:]) == b"ping"


async def test_kubelet_spdy_session_directly(stack: Stack) -> None:
    """Our own SPDY client at the kubelet: refused streams, a pair without requestID, errors."""
    from dask_kube_jobs.local.kubelet import spdy

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.kubelet_port, ssl=ctx)
    writer.write(b"POST /portForward/default/web HTTP/1.1\r\nHost: k\r\nContent-Length: 0\r\n"
                 b"Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                 b"X-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101") and b"X-Stream-Protocol-Version: portforward.k8s.io" in head
    session = spdy.SpdySession(reader, writer, server=False)
    runner = asyncio.create_task(session.run())
    try:
        with pytest.raises(ConnectionResetError):  # no port header: refused like kubelet does
            await asyncio.wait_for(session.open_stream({"streamtype": ["data"]}), 10)
        port = [str(stack.echo_port)]
        error = await session.open_stream({"streamtype": ["error"], "port": port})  # no requestID
        data = await session.open_stream({"streamtype": ["data"], "port": port})
        await data.write(b"abc")
        await data.close()
        assert await asyncio.wait_for(data.reader.read(), 10) == b"abc"
        assert await asyncio.wait_for(error.reader.read(), 10) == b""  # no error, then FIN
        await asyncio.wait_for(session.ping(), 10)
        closed = [str(stack.closed_port)]
        error = await session.open_stream({"streamtype": ["error"], "port": closed, "requestid": ["7"]})
        data = await session.open_stream({"streamtype": ["data"], "port": closed, "requestid": ["7"]})
        message = (await asyncio.wait_for(error.reader.read(), 10)).decode()
        assert message.startswith(f"error forwarding port {stack.closed_port} to pod default/web")
        assert await asyncio.wait_for(data.reader.read(), 10) == b""
    finally:
        session.close()
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_proxy_relays_kubelet_refusals(stack: Stack) -> None:
    """A WebSocket port-forward without ports: the kubelet's 400 reaches the client as is."""
    token = kubeconfig.read(Path(stack.kubeconfig))["users"][0]["user"]["token"]
    server = kubeconfig.server_of(kubeconfig.read(Path(stack.kubeconfig)))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await session.ws_connect(f"{server}/api/v1/namespaces/default/pods/web/portforward",
                                     headers={"Authorization": f"Bearer {token}"},
                                     protocols=("v4.channel.k8s.io",), ssl=False)
        assert exc.value.status == 400


# -- logs --------------------------------------------------------------------------------------
def test_kubectl_logs_and_follow(stack: Stack) -> None:
    path = stack.log_file(["one", "two"], done=True)
    result = subprocess.run([KUBECTL, "--kubeconfig", stack.kubeconfig, "logs", "web"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "one\ntwo\n"

    stack.log_file(["one"], done=False)
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", stack.kubeconfig, "logs", "-f", "web"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "one\n"
        with path.open("a") as fh:
            fh.write("2026-01-01T00:00:05.000000000Z stdout F later\n")
        assert proc.stdout.readline() == "later\n"
        assert proc.poll() is None  # still following
        path.with_name("0.log.done").touch()  # the container ended
        proc.wait(15)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_log_errors_match_kubernetes(stack: Stack) -> None:
    from kubernetes.client.exceptions import ApiException

    api = _kube_client(stack.kubeconfig)
    with pytest.raises(ApiException) as exc:
        api.read_namespaced_pod_log("multi", "default")
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == (
        "a container name must be specified for pod multi, choose one of: [a b]")
    with pytest.raises(ApiException) as exc:
        api.read_namespaced_pod_log("pending", "default")
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == (
        'container "c" in pod "pending" is waiting to start: ContainerCreating')
    with pytest.raises(ApiException) as exc:
        api.read_namespaced_pod_log("multi", "default", container="nope")
    assert json.loads(exc.value.body)["message"] == "container nope is not valid for pod multi"


# -- the full local control plane, with a Pod the kubelet really runs ---------------------------
WEB_POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"containers": [{
        "name": "web", "image": "python:3.11",
        "command": ["python", "-u", "-c",
                    "import http.server, sys; print('serving', flush=True); "
                    "http.server.test(HandlerClass=http.server.SimpleHTTPRequestHandler, "
                    "port=8000, bind='0.0.0.0')"],
        "ports": [{"name": "http", "containerPort": 8000}],
        "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},
    }]},
}
WEB_SVC = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]}}


@pytest.fixture
def running_web(kubectl: Any, namespace: str) -> str:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": [WEB_POD, WEB_SVC]}))
    kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=90s", timeout=100)
    return namespace


@pytest.mark.parametrize("websockets", [True, False], ids=["websocket-tunnel", "spdy"])
def test_full_kubectl_port_forward_pod_and_service(local_control_plane: Any, running_web: str,
                                                   websockets: bool) -> None:
    cfg = local_control_plane.kubeconfig
    local = free_port()
    with port_forward(cfg, "pod/web", f"{local}:8000", websockets=websockets, namespace=running_web):
        assert b"Directory listing" in http_get(local)
    local = free_port()
    with port_forward(cfg, "svc/web", f"{local}:80", websockets=websockets, namespace=running_web):
        assert b"Directory listing" in http_get(local)


async def test_full_kr8s_and_kubernetes_client(local_control_plane: Any, running_web: str) -> None:
    import kr8s.asyncio
    from kr8s.asyncio.objects import Pod
    from kubernetes.stream import portforward

    api = await kr8s.asyncio.api(kubeconfig=local_control_plane.kubeconfig)
    pod = await Pod.get("web", namespace=running_web, api=api)
    async with pod.portforward(remote_port=8000, local_port="auto") as port:
        assert b"Directory listing" in await _kr8s_get(port)

    def with_client() -> bytes:
        core = _kube_client(local_control_plane.kubeconfig)
        pf = portforward(core.connect_get_namespaced_pod_portforward, "web", running_web, ports="8000")
        sock = pf.socket(8000)
        sock.settimeout(10)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        pf.close()
        return data

    assert b"Directory listing" in await asyncio.to_thread(with_client)


def test_full_kubectl_logs_follow(local_control_plane: Any, kubectl: Any) -> None:
    kubectl("run", "counter", "--image=python:3.11", "--restart=Never", "--command", "--",
            "python", "-u", "-c", "import time\nfor i in range(3):\n print('tick', i)\n time.sleep(1)")
    kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod/counter", "--timeout=60s",
            timeout=70)
    out = kubectl("logs", "-f", "counter", timeout=60).stdout
    assert out.splitlines() == ["tick 0", "tick 1", "tick 2"]
    assert kubectl("logs", "counter").stdout == out
