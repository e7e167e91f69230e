"""``pods/log``, ``pods/portforward`` and ``pods/exec``: the API server's proxying to the kubelet of
a Pod's Node.

Why: on Kubernetes the API server owns neither logs nor Pod sockets; it authorizes the request,
finds the Node (``spec.nodeName``), and proxies to that Node's kubelet at its ``InternalIP`` and
``status.daemonEndpoints.kubeletEndpoint.Port``. Doing the same here keeps the kubelet a
separate component that could serve any control plane, and makes ``kubectl logs -f`` and
``kubectl port-forward`` behave as on a cluster.

* ``log``: the container is validated here with kube-apiserver's messages (``a container name
  must be specified for pod p, choose one of: [a b]``), a container that has not started is
  refused with the kubelet's ``is waiting to start`` message, and then the kubelet's body is
  streamed through chunked, so ``-f`` keeps streaming until the container ends. Errors from the
  kubelet become ``Status`` objects with its text, as kube-apiserver's response checker does.
* ``portforward``: an upgrade-aware proxy. The client's upgrade request (SPDY or WebSocket) is
  replayed to the kubelet's ``/portForward/<ns>/<pod>``, the kubelet's answer is relayed, and on
  a 101 both connections are spliced byte for byte. ``ports`` in the query becomes ``port``, as
  kube-apiserver rewrites ``PodPortForwardOptions`` for the kubelet.
* ``exec``: the container is chosen and checked here with kube-apiserver's messages (``container
  c is not valid for pod p``, ``pod p does not have a host assigned``), a request that is not an
  upgrade is refused (``Upgrade request required``), and the upgrade goes to the kubelet's
  ``/exec/<ns>/<pod>/<container>`` with the options as kube-apiserver passes them (``command``,
  ``input``, ``output``, ``error``, ``tty``). What the kubelet refuses (``container not found``)
  reaches the client as its text, which kubectl prints after ``unable to upgrade connection:``.

TLS to the kubelet is not verified: the kubelet is on this machine, reached over loopback only
(any other address is refused), and its serving certificate is self-issued. The API server
presents its kubelet-client certificate, as kube-apiserver does with
``--kubelet-client-certificate``: the kubelet answers nobody else (see its server module). If
the kubelet serves plain HTTP, that is detected once and used.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .._upgrade import take_over
from . import errors

if TYPE_CHECKING:
    from .server import APIServer

log = logging.getLogger(__name__)

LOG_PARAMS = ("follow", "previous", "sinceSeconds", "sinceTime", "timestamps", "tailLines",
              "limitBytes")
#: request headers an upgrade needs at the kubelet; credentials and hop-by-hop ones stay here
UPGRADE_HEADERS = {"connection", "upgrade", "x-stream-protocol-version", "sec-websocket-key",
                   "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions",
                   "user-agent", "origin"}
MAX_HEAD = 64 * 1024
CHUNK = 64 * 1024


def install_proxies(server: APIServer, client_cert: tuple[Path, Path] | None = None) -> None:
    """Register the kubelet-backed Pod subresources on ``server.proxies``; ``client_cert``
    (certificate, key) is what the API server presents to kubelets."""
    kubelets = _Kubelets(server, client_cert)
    server.proxies["log"] = functools.partial(_proxy_log, kubelets)
    server.proxies["portforward"] = functools.partial(_proxy_portforward, kubelets)
    server.proxies["exec"] = functools.partial(_proxy_exec, kubelets)


class _Kubelets:
    """Where a Pod's kubelet listens, and whether it speaks TLS (probed once per endpoint)."""

    def __init__(self, server: APIServer, client_cert: tuple[Path, Path] | None) -> None:
        self.server = server
        self._tls: dict[tuple[str, int], bool] = {}
        self.ssl = ssl.create_default_context()
        self.ssl.check_hostname = False
        self.ssl.verify_mode = ssl.CERT_NONE  # loopback, same machine: see module docstring
        if client_cert is not None:
            self.ssl.load_cert_chain(*client_cert)

    def endpoint(self, pod: dict[str, Any], what: str) -> tuple[str, int]:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if not node_name:
            raise errors.bad_request(f"pod {meta.get('name')} does not have a host assigned"
                                     + (" yet; cannot " + what if what else ""))
        node = self.server.core.store.get(("", "nodes"), None, node_name)
        if node is None:
            raise errors.not_found("nodes", node_name)
        status = node.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = addresses.get("InternalIP") or addresses.get("Hostname") or ""
        endpoint = (status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}
        port = endpoint.get("Port") or endpoint.get("port")
        if not host or not port:
            raise errors.APIError(503, "ServiceUnavailable",
                                  f"node {node_name} does not advertise a kubelet endpoint")
        if host != "localhost" and not _loopback(host):
            raise errors.APIError(503, "ServiceUnavailable",
                                  f"refusing to contact kubelet of node {node_name} at {host}: "
                                  "the local control plane only talks over loopback")
        return host, int(port)

    async def connect(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        tls = await self.uses_tls(host, port)
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.ssl if tls else None), 10)
        except (TimeoutError, OSError) as exc:
            raise _unreachable(host, port, exc) from None

    async def uses_tls(self, host: str, port: int) -> bool:
        key = (host, port)
        if key not in self._tls:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port, ssl=self.ssl), 10)
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
                self._tls[key] = True
            except ssl.SSLError:
                self._tls[key] = False
            except (TimeoutError, OSError) as exc:
                raise _unreachable(host, port, exc) from None
        return self._tls[key]

    async def base_url(self, host: str, port: int) -> str:
        return f"{'https' if await self.uses_tls(host, port) else 'http'}://{host}:{port}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unreachable(host: str, port: int, exc: BaseException) -> errors.APIError:
    reason = "timeout" if isinstance(exc, asyncio.TimeoutError) else str(exc)
    return errors.APIError(500, "InternalError",
                           f"error dialing backend: dial tcp {host}:{port}: {reason}")


def _kubelet_error(status: int, text: str, name: str) -> errors.APIError:
    """kube-apiserver's GenericHttpResponseChecker: the kubelet's text, the matching reason."""
    text = text.strip() or f"the kubelet answered {status}"
    if status == 400:
        return errors.bad_request(text)
    if status == 404:
        return errors.APIError(404, "NotFound", text, kind="pods/log", name=name)
    if status == 403:
        return errors.APIError(403, "Forbidden", text)
    return errors.APIError(500 if status >= 500 else status, "InternalError", text)


# -- logs ---------------------------------------------------------------------------------------
def _container_names(spec: dict[str, Any]) -> list[str]:
    """Every container in VisitContainers order: init, regular, ephemeral."""
    return [c.get("name", "") for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or []]


def choose_container(pod: dict[str, Any], container: str) -> str:
    """The container a log request means, or kube-apiserver's 400 when that is ambiguous."""
    name = (pod.get("metadata") or {}).get("name", "")
    spec = pod.get("spec") or {}
    if not container:
        regular = spec.get("containers") or []
        if len(regular) == 1:
            return str(regular[0].get("name", ""))
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        raise errors.bad_request(f"a container name must be specified for pod {name}, "
                                 f"choose one of: [{' '.join(_container_names(spec))}]")
    if container not in _container_names(spec):
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


def check_started(pod: dict[str, Any], container: str, previous: bool) -> None:
    """Refuse logs of a container that has not started, in the kubelet's words."""
    if previous:
        return  # the kubelet knows whether a previous instance exists
    name = (pod.get("metadata") or {}).get("name", "")
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        for cs in status.get(key) or []:
            if cs.get("name") != container:
                continue
            state, last = cs.get("state") or {}, cs.get("lastState") or {}
            if "running" in state or "terminated" in state or "terminated" in last:
                return
            reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
    raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')


async def _proxy_log(kubelets: _Kubelets, request: web.Request, pod: dict[str, Any],
                     verb: str) -> web.StreamResponse:
    if verb != "get":
        raise errors.method_not_allowed(verb, "pods/log")
    meta = pod.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    query = request.query
    container = choose_container(pod, query.get("container", ""))
    previous = query.get("previous", "").lower() in ("true", "1")
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
    check_started(pod, container, previous)
    host, port = kubelets.endpoint(pod, "read its logs")
    url = (f"{await kubelets.base_url(host, port)}/containerLogs/"
           f"{quote(namespace, safe='')}/{quote(name, safe='')}/{quote(container, safe='')}")
    params = [(k, v) for k, v in query.items() if k in LOG_PARAMS]
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        try:
            upstream = await session.get(url, params=params, ssl=kubelets.ssl)
        except aiohttp.ClientError as exc:
            raise _unreachable(host, port, exc) from None
        async with upstream:
            if upstream.status != 200:
                raise _kubelet_error(upstream.status, (await upstream.text())[:4096], name)
            resp = web.StreamResponse(headers={"Content-Type": "text/plain",
                                               "Cache-Control": "no-cache, private"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            if await _relay_body(request, upstream, resp):
                with contextlib.suppress(ConnectionError):
                    await resp.write_eof()
            return resp


async def _relay_body(request: web.Request, upstream: aiohttp.ClientResponse,
                      resp: web.StreamResponse) -> bool:
    """Copy the kubelet's body to the client; False if the client went away first.

    A following log can be idle for long, so the client's connection is watched too: once it is
    gone the kubelet request is dropped rather than left open until the container ends.
    """
    async def copy() -> None:
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)

    task = asyncio.ensure_future(copy())
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            transport = request.transport
            if not task.done() and (transport is None or transport.is_closing()):
                task.cancel()
        try:
            await task
        except (asyncio.CancelledError, ConnectionError, aiohttp.ClientPayloadError):
            return False
        return True
    finally:
        task.cancel()


# -- port-forward ---------------------------------------------------------------------------------
async def _proxy_portforward(kubelets: _Kubelets, request: web.Request, pod: dict[str, Any],
                             verb: str) -> web.StreamResponse:
    meta = pod.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    host, port = kubelets.endpoint(pod, "forward ports")
    params = [("port" if k == "ports" else k, v) for k, v in request.query.items()
              if k in ("ports", "port")]
    path = f"/portForward/{quote(namespace, safe='')}/{quote(name, safe='')}"
    return await _proxy_upgrade(kubelets, request, host, port, path, params)


# -- exec -----------------------------------------------------------------------------------------
#: PodExecOptions as the API takes them -> as kube-apiserver passes them to the kubelet
EXEC_PARAMS = {"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"}


def exec_container(pod: dict[str, Any], container: str) -> str:
    """The container an exec request means, or kube-apiserver's 400 (its streamLocation)."""
    name = (pod.get("metadata") or {}).get("name", "")
    spec = pod.get("spec") or {}
    if not container:
        regular = [str(c.get("name", "")) for c in spec.get("containers") or []]
        if len(regular) == 1:
            return regular[0]
        if not regular:
            raise errors.bad_request(f"a container name must be specified for pod {name}")
        message = (f"a container name must be specified for pod {name}, "
                   f"choose one of: [{' '.join(regular)}]")
        init = [str(c.get("name", "")) for c in spec.get("initContainers") or []]
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(message)
    if container not in _container_names(spec):
        raise errors.bad_request(f"container {container} is not valid for pod {name}")
    return container


async def _proxy_exec(kubelets: _Kubelets, request: web.Request, pod: dict[str, Any],
                      verb: str) -> web.StreamResponse:
    meta = pod.get("metadata") or {}
    name, namespace = meta.get("name", ""), meta.get("namespace", "")
    query = request.query
    container = exec_container(pod, query.get("container", ""))
    if not (pod.get("spec") or {}).get("nodeName"):
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    if not _is_upgrade(request):
        raise errors.bad_request("Upgrade request required")
    host, port = kubelets.endpoint(pod, "")
    params = [("command", c) for c in query.getall("command", [])]
    params += [(EXEC_PARAMS[k], "1") for k in EXEC_PARAMS
               if query.get(k, "").lower() in ("true", "1")]
    path = (f"/exec/{quote(namespace, safe='')}/{quote(name, safe='')}/"
            f"{quote(container, safe='')}")
    return await _proxy_upgrade(kubelets, request, host, port, path, params)


def _is_upgrade(request: web.Request) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and bool(request.headers.get("Upgrade")))


# -- the upgrade-aware proxy ----------------------------------------------------------------------
async def _proxy_upgrade(kubelets: _Kubelets, request: web.Request, host: str, port: int,
                         path: str, params: list[tuple[str, str]]) -> web.StreamResponse:
    """Replay the client's upgrade request to the kubelet at ``path``; relay its answer, and
    on a 101 splice the two connections byte for byte."""
    if params:
        path += "?" + urlencode(params)
    lines = [f"{request.method} {path} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() in UPGRADE_HEADERS]
    if request.method in ("POST", "PUT", "PATCH"):
        lines.append("Content-Length: 0")
    k_reader, k_writer = await kubelets.connect(host, port)
    try:
        k_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await k_writer.drain()
        status, reason, headers, rest = await _read_head(k_reader)
        if status != 101:
            body = rest + await _read_body(k_reader, headers, len(rest))
            out = web.Response(status=status, body=body, reason=reason)
            out.content_type = headers.get("Content-Type", "text/plain").split(";")[0]
            return out
        resp = web.StreamResponse(status=101, reason=reason)
        for key, value in headers.items():
            if key.lower() not in ("date", "server", "content-length", "transfer-encoding"):
                resp.headers.add(key, value)
        c_reader, c_writer = await take_over(request, resp)
        if rest:
            c_writer.write(rest)
            await c_writer.drain()
        await _splice(c_reader, c_writer, k_reader, k_writer)
        return resp
    finally:
        k_writer.close()
        with contextlib.suppress(Exception):
            await k_writer.wait_closed()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, CIMultiDict[str], bytes]:
    """Status line and headers of the kubelet's answer, plus any bytes already past them."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await reader.read(4096)
        if not chunk or len(buf) > MAX_HEAD:
            raise errors.APIError(502, "InternalError", "the kubelet closed the connection before answering")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    first, *header_lines = head.decode("latin-1").split("\r\n")
    parts = first.split(" ", 2)
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        key, _, value = line.partition(":")
        headers.add(key.strip(), value.strip())
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers, rest


async def _read_body(reader: asyncio.StreamReader, headers: CIMultiDict[str], have: int) -> bytes:
    length = headers.get("Content-Length")
    try:
        if length is not None:
            return await asyncio.wait_for(reader.readexactly(max(0, int(length) - have)), 10)
        return await asyncio.wait_for(reader.read(MAX_HEAD), 10)
    except (TimeoutError, asyncio.IncompleteReadError, ValueError, OSError):
        return b""


async def _splice(c_reader: asyncio.StreamReader, c_writer: Any,
                  k_reader: asyncio.StreamReader, k_writer: asyncio.StreamWriter) -> None:
    """Pipe bytes both ways until either side closes; then both are closed."""
    async def up() -> None:
        while chunk := await c_reader.read(CHUNK):
            k_writer.write(chunk)
            await k_writer.drain()

    async def down() -> None:
        while chunk := await k_reader.read(CHUNK):
            c_writer.write(chunk)
            await c_writer.drain()

    tasks = {asyncio.create_task(up()), asyncio.create_task(down())}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
