"""The kubelet's ``/portForward/{namespace}/{pod}`` endpoint, in every dialect clients speak.

Why several transports: Kubernetes grew three ways to carry port-forward streams and our clients
use all of them, so the kubelet answers each exactly as a real kubelet (or, for the tunnelled
form, as kube-apiserver's tunnelling handler in front of it) would:

* **SPDY/3.1 upgrade** (``Upgrade: SPDY/3.1``, ``X-Stream-Protocol-Version: portforward.k8s.io``):
  kubectl's classic path, and its fallback when WebSockets fail. Every forwarded connection is a
  pair of SPDY streams (``streamType`` ``error`` and ``data``, same ``requestID``, ``port``).
* **SPDY tunnelled in WebSocket binary messages** (subprotocol ``SPDY/3.1+portforward.k8s.io``):
  kubectl >= 1.31's default (PortForwardWebsockets). Same SPDY session, different carrier.
* **WebSocket channels** (``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``, or no
  subprotocol): the kubernetes Python client and kr8s. Ports come from the query (``port``, and
  ``ports`` as the API sends it), data channel ``2*i``, error channel ``2*i+1``, and each channel
  first carries its port as 2 bytes little-endian.

A forwarded connection goes to ``podIP:port`` (each Pod has its own loopback address). Failures
to connect are written to the error stream/channel in the kubelet's words, which kubectl prints
as ``an error occurred forwarding A -> B: ...``.

The SPDY upgrade takes the raw connection over from aiohttp with ``.._upgrade.take_over``,
which the API server's proxy uses too.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import os
import struct
from collections.abc import Awaitable, Callable

from aiohttp import WSMsgType, web

from .._upgrade import take_over
from .spdy import ByteWriter, SpdySession, SpdyStream

log = logging.getLogger(__name__)

PORT_FORWARD_PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+" + PORT_FORWARD_PROTOCOL
V4_BINARY = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
WS_PROTOCOLS = (TUNNEL_PROTOCOL, V4_BINARY, V4_BASE64, PORT_FORWARD_PROTOCOL)
#: kubelet's streamCreationTimeout: how long the second stream of a pair may take to arrive
STREAM_CREATION_TIMEOUT = 30.0
#: after the Pod side closes, how long the client side may still flush (containerd waits 1s)
DRAIN_GRACE = 1.0
CONNECT_TIMEOUT = 10.0
CHUNK = 64 * 1024

PodIPOf = Callable[[str, str], Awaitable[str | None]]


class _WebSocketBytes:
    """A WebSocket as a byte stream: binary messages in, one binary message per drain out."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.reader = asyncio.StreamReader(limit=2 ** 20)
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self._buf += data

    async def drain(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            await self.ws.send_bytes(data)

    def close(self) -> None:
        pass  # the handler closes the WebSocket once the session is over

    async def pump(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self.reader.feed_data(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    log.warning("text message on a SPDY tunnel; closing")
                    break
        finally:
            self.reader.feed_eof()


# -- the endpoint ---------------------------------------------------------------------------------
def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


def _pod_from_path(request: web.Request) -> tuple[str, str]:
    info = request.match_info
    if "namespace" in info and "pod" in info:
        return info["namespace"], info["pod"]
    parts = [p for p in request.path.split("/") if p]
    return parts[1], parts[2]  # /portForward/<ns>/<pod>[/<uid>]


def _is_websocket(request: web.BaseRequest) -> bool:
    return ("upgrade" in request.headers.get("Connection", "").lower()
            and request.headers.get("Upgrade", "").lower() == "websocket")


def _query_ports(request: web.BaseRequest) -> list[int]:
    raw = request.query.getall("port", []) + request.query.getall("ports", [])
    if not raw:
        raise ValueError('query parameter "port" is required')
    ports: list[int] = []
    for item in raw:
        if not item:
            raise ValueError('query parameter "port" cannot be empty')
        for part in item.split(","):
            try:
                port = int(part)
            except ValueError:
                raise ValueError(f'unable to parse "{item}" as a port') from None
            if not 0 < port < 65536:
                raise ValueError(f'port "{item}" must be > 0')
            ports.append(port)
    return ports


async def handle_port_forward(request: web.Request, pod_ip_of: PodIPOf) -> web.StreamResponse:
    """Serve one port-forward request for the Pod named in the path (see module docstring)."""
    namespace, pod = _pod_from_path(request)
    ip = await pod_ip_of(namespace, pod)
    if not ip:
        return _text(404, f'pod "{pod}" in namespace "{namespace}" not found or has no IP yet')
    target = _Target(ip, namespace, pod)
    if _is_websocket(request):
        return await _serve_websocket(request, target)
    connection = request.headers.get("Connection", "").lower()
    upgrade = request.headers.get("Upgrade", "").lower()
    if "upgrade" not in connection or "spdy/3.1" not in upgrade:
        return _text(400, "unable to upgrade: missing upgrade headers in request")
    offered = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
               for p in v.split(",") if p.strip()]
    if offered and PORT_FORWARD_PROTOCOL not in offered:
        return _text(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                          f"server supports [{PORT_FORWARD_PROTOCOL}]",
                     {"X-Accepted-Stream-Protocol-Versions": PORT_FORWARD_PROTOCOL})
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1",
        "X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL})
    reader, writer = await take_over(request, response)
    await _serve_spdy(reader, writer, target)
    return response


def port_forward_handler(pod_ip_of: PodIPOf) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for the kubelet's routes (``server.make_app(port_forward_handler=...)``)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        return await handle_port_forward(request, pod_ip_of)
    return handler


async def _serve_websocket(request: web.Request, target: _Target) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=WS_PROTOCOLS, max_msg_size=16 * 2 ** 20, autoping=True)
    ready = ws.can_prepare(request)
    if not ready.ok:
        return _text(400, "unable to upgrade: not a valid WebSocket request")
    if ready.protocol == TUNNEL_PROTOCOL:
        await ws.prepare(request)
        carrier = _WebSocketBytes(ws)
        pump = asyncio.create_task(carrier.pump())
        try:
            await _serve_spdy(carrier.reader, carrier, target)
        finally:
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            await ws.close()
        return ws
    try:
        ports = _query_ports(request)
    except ValueError as exc:
        return _text(400, str(exc))
    await ws.prepare(request)
    await _serve_channels(ws, ports, target, text=ready.protocol == V4_BASE64)
    return ws


# -- forwarding one connection --------------------------------------------------------------------
class _Target:
    def __init__(self, ip: str, namespace: str, pod: str) -> None:
        self.ip, self.namespace, self.pod = ip, namespace, pod

    async def connect(self, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Dial the Pod's port, or raise ``OSError`` with the kubelet's error text."""
        try:
            return await asyncio.wait_for(asyncio.open_connection(self.ip, port), CONNECT_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno:
                reason = os.strerror(exc.errno).lower()
            else:
                reason = "i/o timeout" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            raise OSError(f"error forwarding port {port} to pod {self.namespace}/{self.pod}: "
                          f"dial tcp4 {self.ip}:{port}: connect: {reason}") from None


async def _relay(read_client: Callable[[], Awaitable[bytes]], write_client: Callable[[bytes], Awaitable[None]],
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 client_gone: Callable[[], bool] = lambda: False) -> None:
    """Copy both ways between a client stream and a Pod connection until the exchange is over.

    Like containerd: when the Pod closes, the client gets DRAIN_GRACE to finish; when the client
    stops sending, the Pod's side is half-closed and its answer still flows back.
    """
    async def up() -> None:
        while chunk := await read_client():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def down() -> None:
        while chunk := await reader.read(CHUNK):
            await write_client(chunk)

    t_up, t_down = asyncio.create_task(up()), asyncio.create_task(down())
    try:
        done, _ = await asyncio.wait({t_up, t_down}, return_when=asyncio.FIRST_COMPLETED)
        if t_down in done:
            await asyncio.wait({t_up}, timeout=DRAIN_GRACE)
        elif not client_gone() and t_up.exception() is None:
            await asyncio.wait({t_down})
    finally:
        for task in (t_up, t_down):
            task.cancel()
        for task in (t_up, t_down):
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
                await task
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


# -- SPDY ------------------------------------------------------------------------------------------
class _Pair:
    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.data: SpdyStream | None = None
        self.error: SpdyStream | None = None
        self.complete = asyncio.Event()


async def _serve_spdy(reader: asyncio.StreamReader, writer: ByteWriter, target: _Target) -> None:
    """One SPDY port-forward session: pair streams by requestID and forward each pair."""
    pairs: dict[str, _Pair] = {}
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    def on_stream(stream: SpdyStream) -> bool:
        port_s, stream_type = stream.get("port"), stream.get("streamType")
        if not port_s.isdigit() or not 0 < int(port_s) < 65536:
            log.warning("port-forward stream without a valid port header: %r", port_s)
            return False
        if stream_type not in ("error", "data"):
            log.warning("port-forward stream with invalid stream type %r", stream_type)
            return False
        request_id = stream.get("requestID")
        if not request_id:  # old clients: derive it from consecutive stream ids, as kubelet does
            request_id = str(stream.id if stream_type == "error" else stream.id - 2)
        pair = pairs.get(request_id)
        if pair is None:
            pair = pairs[request_id] = _Pair(request_id)
            spawn(_monitor(pair))
        if getattr(pair, stream_type) is not None:
            spawn(_print_error(pair, f"error processing stream for request {request_id}: "
                                     f"{stream_type} stream already assigned"))
            return True
        setattr(pair, stream_type, stream)
        if pair.data is not None and pair.error is not None:
            pair.complete.set()
            spawn(_forward(pair))
        return True

    async def _monitor(pair: _Pair) -> None:
        try:
            await asyncio.wait_for(pair.complete.wait(), STREAM_CREATION_TIMEOUT)
        except TimeoutError:
            await _print_error(pair, f"(request={pair.request_id}) timed out waiting for streams")
        finally:
            pairs.pop(pair.request_id, None)

    async def _print_error(pair: _Pair, message: str) -> None:
        if pair.error is not None:
            with contextlib.suppress(ConnectionError):
                await pair.error.write(message.encode())

    async def _forward(pair: _Pair) -> None:
        assert pair.data is not None and pair.error is not None
        data, error = pair.data, pair.error
        port = int(data.get("port"))
        try:
            try:
                pod_reader, pod_writer = await target.connect(port)
            except OSError as exc:
                log.info("%s", exc)
                await error.write(str(exc).encode())
                return
            await _relay(lambda: data.reader.read(CHUNK), data.write, pod_reader, pod_writer,
                         client_gone=lambda: data.reset_status is not None)
        except ConnectionError:
            pass
        finally:
            await data.close()
            await error.close()

    session = SpdySession(reader, writer, server=True, on_stream=on_stream)
    try:
        await session.run()
    finally:
        for task in list(tasks):
            task.cancel()
        for task in list(tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        session.closed.set()


# -- WebSocket channels ----------------------------------------------------------------------------
async def _serve_channels(ws: web.WebSocketResponse, ports: list[int], target: _Target, *,
                          text: bool) -> None:
    """The v4 channel protocol: channel 2i carries port i's bytes, 2i+1 its errors."""
    inbound = [asyncio.StreamReader(limit=2 ** 20) for _ in ports]
    send_lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with send_lock:
            if text:
                await ws.send_str(chr(ord("0") + channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes([channel]) + data)

    async def pump() -> None:
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and msg.data:
                    channel, payload = msg.data[0], msg.data[1:]
                elif msg.type == WSMsgType.TEXT and msg.data:
                    channel, payload = ord(msg.data[0]) - ord("0"), base64.b64decode(msg.data[1:])
                else:
                    continue
                if channel % 2 == 0 and channel // 2 < len(ports) and payload:
                    inbound[channel // 2].feed_data(payload)
        finally:
            for r in inbound:
                r.feed_eof()

    async def forward(i: int, port: int) -> None:
        try:
            pod_reader, pod_writer = await target.connect(port)
        except OSError as exc:
            log.info("%s", exc)
            with contextlib.suppress(ConnectionError):
                await send(2 * i + 1, str(exc).encode())
            return
        with contextlib.suppress(ConnectionError):
            await _relay(lambda: inbound[i].read(CHUNK), lambda b: send(2 * i, b),
                         pod_reader, pod_writer, client_gone=lambda: ws.closed)

    try:
        for i, port in enumerate(ports):
            prefix = struct.pack("<H", port)
            await send(2 * i, prefix)
            await send(2 * i + 1, prefix)
    except ConnectionError:
        return
    pump_task = asyncio.create_task(pump())
    forwards = asyncio.gather(*(forward(i, p) for i, p in enumerate(ports)))
    try:
        await asyncio.wait({pump_task, forwards}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # every port finished (or the client left): end the WebSocket, as kubelet's conn.Close()
        with contextlib.suppress(Exception):
            await ws.close()
        forwards.cancel()
        pump_task.cancel()
        for fut in (forwards, pump_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fut
