"""The kubelet's ``/exec/{namespace}/{pod}/{container}`` endpoint: ``kubectl exec``.

Why here: on Kubernetes the API server authorizes ``pods/exec`` and proxies the upgraded
connection to the kubelet of the Pod's Node, which runs the command in the container and
streams its input and output. The local kubelet does the same with a process started in the
container's context (``ContainerProcess.exec_argv``: its mount namespace, working directory,
cgroup) and environment, so the command sees what the container's program sees.

Two carriers, as kubectl 1.32 speaks them (WebSocket first, SPDY when the upgrade fails):

* **WebSocket channels** (``v5.channel.k8s.io``, ``v4.channel.k8s.io``, and the text form
  ``v4.base64.channel.k8s.io``): each message starts with its channel: 0 stdin, 1 stdout,
  2 stderr, 3 error (the final ``Status``), 4 resize (``{"Width": w, "Height": h}``). v5 adds
  the close signal ``[255, channel]``, by which kubectl ends stdin (``kubectl exec -i ... cat``).
* **SPDY/3.1** (``X-Stream-Protocol-Version`` ``v5.channel.k8s.io`` or ``v4.channel.k8s.io``):
  one stream per ``streamType`` (``error``, ``stdin``, ``stdout``, ``stderr``, ``resize``); the
  command starts once every stream the query asks for exists; a FIN on stdin ends its input.

With ``tty`` the command gets a pseudo-terminal (its controlling terminal, ``TERM=xterm``
unless the container sets one) that resize messages size; stderr then goes to stdout, as on a
real node. The exit status travels on the error channel as a ``Status``: ``Success``, or
``NonZeroExitCode`` with the code as an ``ExitCode`` cause, which kubectl turns into
``command terminated with exit code N`` and its own exit code. When the client goes away before
the command ends, the command's whole session is killed, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import json
import logging
import os
import select
import signal
import struct
import termios
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import WSMsgType, web

from .._upgrade import take_over
from .spdy import SpdySession, SpdyStream

log = logging.getLogger(__name__)

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
WS_PROTOCOLS = (V5, V4, V4_BASE64)
SPDY_PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE_SIGNAL = 255
STREAM_TYPES = {"stdin": STDIN, "stdout": STDOUT, "stderr": STDERR, "error": ERROR,
                "resize": RESIZE}
#: kubelet's streamCreationTimeout: how long the streams of a SPDY session may take to arrive
STREAM_CREATION_TIMEOUT = 30.0
#: after the command ends, how long output still held open by its children is copied
OUTPUT_GRACE = 1.0
CHUNK = 32 * 1024
_TRUE = {"1", "true", "yes", "t", "y"}


class ExecRequestError(Exception):
    """A request the kubelet refuses before upgrading: plain text with its status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ExecContext(Protocol):
    """A running container as exec needs it (``ContainerProcess`` is one)."""

    env: dict[str, str]
    workdir: str
    pid: int | None

    def exec_argv(self, command: list[str]) -> list[str]: ...


#: (namespace, pod, container) -> the running container, or ``ExecRequestError``
FindContainer = Callable[[str, str, str], Awaitable[ExecContext]]
Send = Callable[[int, bytes], Awaitable[None]]


@dataclass
class ExecOptions:
    command: list[str]
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @classmethod
    def from_query(cls, query: Any) -> ExecOptions:
        """The request's options; the API server's names (``stdin``) and the kubelet's
        (``input``/``output``/``error``) both count."""
        def flag(*names: str) -> bool:
            return any(str(query.get(n, "")).lower() in _TRUE for n in names)

        opts = cls(command=list(query.getall("command", [])), stdin=flag("stdin", "input"),
                   stdout=flag("stdout", "output"), stderr=flag("stderr", "error"),
                   tty=flag("tty"))
        if not opts.command:
            raise ExecRequestError(400, "you must specify at least 1 command")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise ExecRequestError(400, "you must specify at least 1 of stdin, stdout, stderr")
        if opts.tty:
            opts.stderr = False  # a terminal has one output, as the kubelet decides
        return opts

    def streams(self) -> set[int]:
        """The channels a client opens for these options (SPDY waits for each of them)."""
        wanted = {ERROR}
        for on, channel in ((self.stdin, STDIN), (self.stdout, STDOUT), (self.stderr, STDERR),
                            (self.tty, RESIZE)):
            if on:
                wanted.add(channel)
        return wanted


def exit_status(command: list[str], code: int | None, error: str = "") -> dict[str, Any]:
    """The ``Status`` the error channel carries once the command has ended (or failed to)."""
    if error:
        message = f"error executing command in container: {error}"
        return {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                "message": f"Internal error occurred: {message}",
                "details": {"causes": [{"message": message}]}}
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command)}], exit code {code}",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


class ResizeDecoder:
    """Terminal sizes from a resize stream: JSON objects back to back, possibly split."""

    def __init__(self) -> None:
        self._buf = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[tuple[int, int]]:
        self._buf += data.decode("utf-8", "replace")
        sizes = []
        while True:
            text = self._buf.lstrip()
            if not text:
                self._buf = ""
                return sizes
            try:
                obj, end = self._decoder.raw_decode(text)
            except ValueError:
                self._buf = text
                return sizes
            self._buf = text[end:]
            if isinstance(obj, dict):
                with contextlib.suppress(TypeError, ValueError):
                    sizes.append((int(obj.get("Width") or 0), int(obj.get("Height") or 0)))


# -- the command ----------------------------------------------------------------------------------
def missing_program(ctx: ExecContext, program: str) -> str:
    """The runtime's refusal when ``program`` is not an executable file as the container sees
    it (looked up on its PATH, through ``/proc/<pid>/root``: its mount namespace), else "".

    Why check first: the command starts through a shell, whose own "not found" (exit code 127)
    would pass for the program's; a runtime refuses to start the exec instead, and kubectl
    prints that error and exits 1.
    """
    root = f"/proc/{ctx.pid}/root" if ctx.pid else ""
    try:
        os.stat(root + "/")
    except OSError:
        return ""  # gone, or not ours to look into: the runtime decides
    if "/" in program:
        candidates = [os.path.join(ctx.workdir, program)]
    else:
        candidates = [os.path.join(d, program) for d in ctx.env.get("PATH", "").split(":") if d]
    present = False
    for candidate in candidates:
        path = root + os.path.normpath(candidate)
        if os.path.isfile(path):
            if os.access(path, os.X_OK):
                return ""
            present = True
    if present:
        reason = f'exec: "{program}": permission denied'
    elif "/" in program:
        reason = f'exec: "{program}": stat {program}: no such file or directory'
    else:
        reason = f'exec: "{program}": executable file not found in $PATH'
    return (f'failed to exec in container: failed to start exec "{uuid.uuid4().hex}": OCI '
            f"runtime exec failed: exec failed: unable to start container process: {reason}: "
            "unknown")


def _controlling_terminal() -> None:  # pragma: no cover - runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _set_size(fd: int, width: int, height: int) -> None:
    if width > 0 and height > 0:
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _read_fd(fd: int) -> bytes:
    """One read of a non-blocking descriptor (a pty's master); b"" at its end."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _settle, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        except OSError:  # EIO: every holder of the terminal's other side has gone
            return b""


class _Command:
    """The exec'd process with pipes or a pseudo-terminal, fed and drained by the session."""

    def __init__(self, proc: asyncio.subprocess.Process, master: int | None) -> None:
        self.proc = proc
        self.master = master

    @classmethod
    async def start(cls, ctx: ExecContext, opts: ExecOptions) -> _Command:
        argv = ctx.exec_argv(opts.command)
        env = dict(ctx.env)
        pipe, null = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        if not opts.tty:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=pipe if opts.stdin else null,
                stdout=pipe if opts.stdout else null, stderr=pipe if opts.stderr else null,
                start_new_session=True)
            return cls(proc, None)
        env.setdefault("TERM", "xterm")
        master, slave = os.openpty()
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=slave, stdout=slave, stderr=slave,
                start_new_session=True, preexec_fn=_controlling_terminal)  # noqa: PLW1509
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(proc, master)

    def outputs(self, opts: ExecOptions) -> list[tuple[int, Callable[[], Awaitable[bytes]]]]:
        if self.master is not None:
            master = self.master
            return [(STDOUT, lambda: _read_fd(master))] if opts.stdout else []
        out = []
        if self.proc.stdout is not None:
            reader = self.proc.stdout
            out.append((STDOUT, lambda: reader.read(CHUNK)))
        if self.proc.stderr is not None:
            errors = self.proc.stderr
            out.append((STDERR, lambda: errors.read(CHUNK)))
        return out

    async def feed(self, stdin: asyncio.StreamReader) -> None:
        """Copy the client's input to the command until the client ends it."""
        while data := await stdin.read(CHUNK):
            if self.master is not None:
                await asyncio.to_thread(_write_all, self.master, data)
            elif self.proc.stdin is not None:
                self.proc.stdin.write(data)
                await self.proc.stdin.drain()
        if self.master is not None:
            await asyncio.to_thread(_write_all, self.master, b"\x04")  # ^D: end of input
        elif self.proc.stdin is not None:
            self.proc.stdin.close()

    def resize(self, width: int, height: int) -> None:
        if self.master is not None:
            _set_size(self.master, width, height)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.master is not None:
            with contextlib.suppress(OSError):
                os.close(self.master)
            self.master = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [], 1.0)


async def run_command(ctx: ExecContext, opts: ExecOptions, send: Send,
                      stdin: asyncio.StreamReader | None, resizes: asyncio.Queue[tuple[int, int]],
                      gone: asyncio.Event) -> dict[str, Any] | None:
    """Run the command, stream it to ``send``; its final ``Status``, or None if the client left."""
    missing = await asyncio.to_thread(missing_program, ctx, opts.command[0])
    if missing:
        return exit_status(opts.command, None, missing)
    try:
        command = await _Command.start(ctx, opts)
    except OSError as exc:
        return exit_status(opts.command, None, str(exc))
    tasks: list[asyncio.Task[Any]] = []

    async def copy(channel: int, read: Callable[[], Awaitable[bytes]]) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await read():
                await send(channel, data)

    async def sizes() -> None:
        while True:
            command.resize(*await resizes.get())

    try:
        copies = [asyncio.create_task(copy(ch, read)) for ch, read in command.outputs(opts)]
        tasks += copies
        tasks.append(asyncio.create_task(sizes()))
        if stdin is not None:
            tasks.append(asyncio.create_task(command.feed(stdin)))
        waiter = asyncio.create_task(command.proc.wait())
        tasks.append(waiter)
        left = asyncio.create_task(gone.wait())
        tasks.append(left)
        await asyncio.wait({waiter, left}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            command.kill()
            return None
        if copies:
            await asyncio.wait(copies, timeout=OUTPUT_GRACE)
        code = waiter.result()
        return exit_status(opts.command, 128 - code if code < 0 else code)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if command.proc.returncode is None:
            command.kill()
        command.close()


# -- the endpoint ---------------------------------------------------------------------------------
def _text(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=message + "\n", headers=headers)


def exec_handler(find: FindContainer) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An aiohttp handler for the kubelet's exec routes (``server.make_app(exec_handler=...)``)."""
    async def handler(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        try:
            opts = ExecOptions.from_query(request.query)
            ctx = await find(info["namespace"], info["pod"], info["container"])
        except ExecRequestError as exc:
            return _text(exc.status, str(exc))
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await _serve_websocket(request, ctx, opts)
        if "spdy/3.1" in request.headers.get("Upgrade", "").lower():
            return await _serve_spdy(request, ctx, opts)
        return _text(400, "Upgrade request required")
    return handler


async def _serve_websocket(request: web.Request, ctx: ExecContext,
                           opts: ExecOptions) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=WS_PROTOCOLS, max_msg_size=16 * 2 ** 20, autoping=True)
    ready = ws.can_prepare(request)
    if not ready.ok or ready.protocol is None:
        return _text(400, "unable to upgrade: no supported channel protocol offered "
                          f"(supported: {', '.join(WS_PROTOCOLS)})")
    text = ready.protocol == V4_BASE64
    await ws.prepare(request)
    stdin = asyncio.StreamReader(limit=2 ** 20) if opts.stdin else None
    resizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    gone = asyncio.Event()
    lock = asyncio.Lock()

    async def send(channel: int, data: bytes) -> None:
        async with lock:
            for start in range(0, max(len(data), 1), CHUNK):
                piece = data[start:start + CHUNK]
                if text:
                    await ws.send_str(chr(ord("0") + channel) + base64.b64encode(piece).decode())
                else:
                    await ws.send_bytes(bytes([channel]) + piece)

    async def pump() -> None:
        decoder = ResizeDecoder()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.BINARY and msg.data:
                    channel, payload = msg.data[0], bytes(msg.data[1:])
                elif msg.type == WSMsgType.TEXT and msg.data:
                    channel, payload = ord(msg.data[0]) - ord("0"), base64.b64decode(msg.data[1:])
                else:
                    continue
                if channel == CLOSE_SIGNAL and ready.protocol == V5:
                    if payload[:1] == bytes([STDIN]) and stdin is not None:
                        stdin.feed_eof()
                elif channel == STDIN and stdin is not None and payload:
                    stdin.feed_data(payload)
                elif channel == RESIZE:
                    for size in decoder.feed(payload):
                        resizes.put_nowait(size)
        finally:
            gone.set()
            if stdin is not None and not stdin.at_eof():
                stdin.feed_eof()

    pump_task = asyncio.create_task(pump())
    try:
        status = await run_command(ctx, opts, send, stdin, resizes, gone)
        if status is not None:
            with contextlib.suppress(ConnectionError):
                await send(ERROR, json.dumps(status).encode())
    finally:
        with contextlib.suppress(Exception):
            await ws.close()
        pump_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await pump_task
    return ws


async def _serve_spdy(request: web.Request, ctx: ExecContext,
                      opts: ExecOptions) -> web.StreamResponse:
    offered = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
               for p in v.split(",") if p.strip()]
    protocol = next((p for p in offered if p in SPDY_PROTOCOLS), None)
    if protocol is None:
        return _text(403, f"unable to upgrade: unable to negotiate protocol: client supports "
                          f"{offered}, server supports [{', '.join(SPDY_PROTOCOLS)}]",
                     {"X-Accepted-Stream-Protocol-Versions": ", ".join(SPDY_PROTOCOLS)})
    response = web.StreamResponse(status=101, headers={
        "Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": protocol})
    reader, writer = await take_over(request, response)
    wanted = opts.streams()
    streams: dict[int, SpdyStream] = {}
    complete = asyncio.Event()

    def on_stream(stream: SpdyStream) -> bool:
        channel = STREAM_TYPES.get(stream.get("streamType"))
        if channel is None or channel not in wanted or channel in streams:
            log.warning("exec: unexpected stream type %r", stream.get("streamType"))
            return False
        streams[channel] = stream
        if set(streams) == wanted:
            complete.set()
        return True

    session = SpdySession(reader, writer, server=True, on_stream=on_stream)
    running = asyncio.create_task(session.run())
    try:
        waiting = asyncio.create_task(complete.wait())
        await asyncio.wait({waiting, running}, timeout=STREAM_CREATION_TIMEOUT,
                           return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if not complete.is_set():
            log.info("exec: the client did not open its streams (%s)", sorted(streams))
            return response
        resizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        resize_task = None
        if RESIZE in streams:
            resize_task = asyncio.create_task(_read_resizes(streams[RESIZE], resizes))

        async def send(channel: int, data: bytes) -> None:
            await streams[channel].write(data)

        stdin = streams[STDIN].reader if STDIN in streams else None
        status = await run_command(ctx, opts, send, stdin, resizes, session.closed)
        if resize_task is not None:
            resize_task.cancel()
        for channel in (STDOUT, STDERR):
            if channel in streams:
                await streams[channel].close()
        if status is not None:
            with contextlib.suppress(ConnectionError):
                await streams[ERROR].write(json.dumps(status).encode())
            await streams[ERROR].close()
        return response
    finally:
        await session.goaway()
        session.close()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running


async def _read_resizes(stream: SpdyStream, sizes: asyncio.Queue[tuple[int, int]]) -> None:
    decoder = ResizeDecoder()
    while data := await stream.reader.read(CHUNK):
        for size in decoder.feed(data):
            sizes.put_nowait(size)
