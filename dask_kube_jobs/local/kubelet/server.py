"""The kubelet's own HTTPS endpoint: ``/healthz``, container logs, port-forward and exec.

As on a real node, the API server reaches Pods' logs through the kubelet: ``pods/log`` is
proxied to ``/containerLogs/<ns>/<pod>/<container>`` on the port the Node advertises in
``status.daemonEndpoints.kubeletEndpoint.port``. Logs are read from the files the kubelet core
writes in the CRI format (``<RFC3339Nano> stdout|stderr F|P <text>``), one file per container
start, so ``previous`` is the file before the current one and ``follow`` ends once the
container's ``.done`` marker exists and its file is drained, which is when ``kubectl logs -f``
ends on a real cluster.

Security: the server binds loopback only and serves TLS when given a context. With
``client_auth`` (what the kubelet runs with), every endpoint but ``/healthz`` answers only a
caller that presented a client certificate the context verified (the cluster CA's: the API
server's kubelet-client certificate), as a real kubelet with ``--client-ca-file`` and anonymous
authentication off: anyone else on the machine gets 401, and no Pod's logs or ports. Errors are
plain text with the kubelet's status codes and messages, which the API server turns into
``Status`` objects, as it does for a real kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

POLL_INTERVAL = 0.1
_LOG_NAME = re.compile(r"^(\d+)\.log$")
_TRUE = {"true", "1", "yes", "t", "y"}
_DNS_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


class LogRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# -- CRI log entries -----------------------------------------------------------------------
def parse_timestamp(value: str) -> int:
    """RFC 3339 (any fraction, ``Z`` or offset) to Unix nanoseconds, exactly."""
    m = _RFC3339.fullmatch(value.strip())
    if not m:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    seconds = int(datetime.fromisoformat(m.group(1) + zone).timestamp())
    return seconds * 1_000_000_000 + int((m.group(2) or "0")[:9].ljust(9, "0"))


def format_timestamp(value: str) -> str:
    """A CRI timestamp as Kubernetes prints it: UTC, nine fraction digits."""
    ns = parse_timestamp(value)
    base = datetime.fromtimestamp(ns // 1_000_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns % 1_000_000_000:09d}Z"


class LineAssembler:
    """Turns CRI entries into whole output lines, joining ``P`` (partial) pieces per stream."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, str]] = {}

    def feed(self, raw: str) -> tuple[str, str] | None:
        """(timestamp, text with newline) for a completed line, else None."""
        parts = raw.rstrip("\n").split(" ", 3)
        if len(parts) < 3:
            return None
        ts, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        if stream in self._pending:
            first_ts, prefix = self._pending.pop(stream)
            ts, text = first_ts, prefix + text
        if tag == "P":
            self._pending[stream] = (ts, text)
            return None
        return ts, text + "\n"


class _Options:
    """The query parameters of a log request, checked as the kubelet checks them."""

    def __init__(self, query: Mapping[str, str]) -> None:
        def flag(name: str) -> bool:
            return str(query.get(name, "")).lower() in _TRUE

        def positive(name: str, allow_zero: bool = False) -> int | None:
            raw = query.get(name)
            if raw is None or raw == "":
                return None
            try:
                value = int(raw)
            except ValueError:
                raise LogRequestError(400, f"invalid {name}: {raw!r}") from None
            if value < 0 or (value == 0 and not allow_zero):
                must = "non-negative" if allow_zero else "positive"
                raise LogRequestError(400, f"{name} must be {must}")
            return value

        self.follow = flag("follow")
        self.previous = flag("previous")
        self.timestamps = flag("timestamps")
        self.tail = positive("tailLines", allow_zero=True)
        self.limit = positive("limitBytes")
        since_seconds = positive("sinceSeconds")
        since_time = query.get("sinceTime")
        if since_seconds is not None and since_time:
            raise LogRequestError(400, "at most one of sinceTime or sinceSeconds may be specified")
        self.since: int | None = None
        if since_seconds is not None:
            self.since = time.time_ns() - since_seconds * 1_000_000_000
        elif since_time:
            try:
                self.since = parse_timestamp(since_time)
            except ValueError as exc:
                raise LogRequestError(400, str(exc)) from None


# -- finding the file ---------------------------------------------------------------------
def find_log(state_dir: Path, namespace: str, pod: str, container: str, previous: bool) -> Path:
    """The log file to serve, or a ``LogRequestError`` worded as the kubelet words it."""
    for value in (namespace, pod, container):
        if not _DNS_NAME.fullmatch(value):  # also keeps every path inside the state dir
            raise LogRequestError(400, f"invalid name {value!r}")
    candidates = []
    for d in (state_dir / "pods").glob(f"{namespace}_{pod}_*"):
        with contextlib.suppress(OSError):
            if d.is_dir() and d.name.count("_") == 2:
                candidates.append((d.stat().st_mtime_ns, d))
    if not candidates:
        raise LogRequestError(404, f'pods "{pod}" not found')
    pod_dir = max(candidates)[1]  # a Pod re-created under the same name is the newest
    cdir = pod_dir / container
    if not cdir.is_dir():
        known = sorted(p.name for p in pod_dir.iterdir() if p.is_dir() and any(p.glob("*.log")))
        if known:
            raise LogRequestError(
                400, f"container {container} is not valid for pod {pod}")
        raise LogRequestError(
            400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
    starts = sorted(int(m.group(1)) for p in cdir.iterdir() if (m := _LOG_NAME.match(p.name)))
    if previous:
        if len(starts) < 2:
            raise LogRequestError(
                400, f'previous terminated container "{container}" in pod "{pod}" not found')
        return cdir / f"{starts[-2]}.log"
    if not starts:
        raise LogRequestError(
            400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
    return cdir / f"{starts[-1]}.log"


def _done(path: Path) -> bool:
    return path.with_name(path.name + ".done").exists()


def _tail_offset(path: Path, lines: int, block: int = 64 * 1024) -> int:
    """Byte offset from which the file holds its last ``lines`` whole lines.

    Reads backwards in growing blocks and counts ``F`` entries (a line's ``P`` pieces precede
    its ``F``), so a large log costs only what is served.
    """
    with path.open("rb") as fh:
        end = fh.seek(0, 2)
        if lines == 0:
            return end
        pos, data = end, b""
        while pos > 0:
            step = min(block, pos)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
            block *= 2
            full, stop = 0, data.rfind(b"\n")
            while stop >= 0:
                begin = data.rfind(b"\n", 0, stop)
                if begin < 0 and pos > 0:
                    break  # this entry may be cut: read further back
                fields = data[begin + 1:stop].split(b" ", 3)
                if len(fields) >= 3 and fields[2] == b"F":
                    full += 1
                    if full > lines:
                        return pos + stop + 1
                stop = begin
        return 0


# -- serving ------------------------------------------------------------------------------
class _Writer:
    def __init__(self, resp: web.StreamResponse, opts: _Options) -> None:
        self.resp = resp
        self.opts = opts
        self.left = opts.limit
        self.lines = LineAssembler()

    async def entry(self, raw: str) -> bool:
        """Write one CRI entry's output; False once limitBytes is reached."""
        done = self.lines.feed(raw)
        if done is None:
            return True
        ts, text = done
        if self.opts.since is not None:
            try:
                if parse_timestamp(ts) < self.opts.since:
                    return True
            except ValueError:
                pass
        if self.opts.timestamps:
            try:
                text = f"{format_timestamp(ts)} {text}"
            except ValueError:
                text = f"{ts} {text}"
        data = text.encode("utf-8", "replace")
        if self.left is not None:
            data = data[: self.left]
            self.left -= len(data)
        await self.resp.write(data)
        return self.left is None or self.left > 0


async def _stream(path: Path, request: web.Request, resp: web.StreamResponse,
                  opts: _Options) -> None:
    writer = _Writer(resp, opts)
    start = 0 if opts.tail is None else _tail_offset(path, opts.tail)
    buf = b""
    with path.open("rb") as fh:
        fh.seek(start)
        while True:
            finished = _done(path)  # checked before reading: then EOF means drained
            chunk = fh.read(256 * 1024)
            if chunk:
                buf += chunk
                *complete, buf = buf.split(b"\n")
                for raw in complete:
                    if not await writer.entry(raw.decode("utf-8", "replace")):
                        return
                continue
            if not opts.follow or finished or not path.exists():
                if buf:  # a last entry without its newline
                    await writer.entry(buf.decode("utf-8", "replace"))
                return
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(POLL_INTERVAL)


def make_app(state_dir: Path, port_forward_handler: Handler | None = None,
             exec_handler: Handler | None = None, *,
             client_auth: bool = False) -> web.Application:
    state_dir = Path(state_dir)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path != "/healthz":
            transport = request.transport
            if transport is None or not transport.get_extra_info("peercert"):
                return web.Response(status=401, text="Unauthorized")
        return await handler(request)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def container_logs(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            opts = _Options(request.query)
            path = await asyncio.to_thread(find_log, state_dir, info["namespace"], info["pod"],
                                           info["container"], opts.previous)
        except LogRequestError as exc:
            return web.Response(status=exc.status, text=str(exc))
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            await _stream(path, request, resp, opts)
        except (ConnectionResetError, FileNotFoundError):
            return resp
        await resp.write_eof()
        return resp

    app = web.Application(middlewares=[authenticate] if client_auth else [])
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", container_logs)
    if port_forward_handler is not None:
        app.router.add_route("*", "/portForward/{namespace}/{pod}", port_forward_handler)
        app.router.add_route("*", "/portForward/{namespace}/{pod}/{uid}", port_forward_handler)
    if exec_handler is not None:
        app.router.add_route("*", "/exec/{namespace}/{pod}/{container}", exec_handler)
        app.router.add_route("*", "/exec/{namespace}/{pod}/{uid}/{container}", exec_handler)
    return app


async def start_kubelet_server(state_dir: Path, *, host: str = "127.0.0.1", port: int = 0,
                               ssl_context: ssl.SSLContext | None = None,
                               port_forward_handler: Handler | None = None,
                               exec_handler: Handler | None = None,
                               client_auth: bool = False) -> tuple[web.AppRunner, int]:
    """Serve the kubelet endpoint; returns the runner (``await runner.cleanup()``) and port.
    ``client_auth``: only callers with a client certificate ``ssl_context`` verified."""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the kubelet serves on loopback only, not {host}")
    runner = web.AppRunner(make_app(Path(state_dir), port_forward_handler, exec_handler,
                                    client_auth=client_auth),
                           access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server = site._server  # noqa: SLF001 - the only way to learn the port picked for port=0
    assert server is not None and server.sockets
    return runner, int(server.sockets[0].getsockname()[1])
