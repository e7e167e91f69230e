"""SPDY/3.1 framing and a minimal session, as Kubernetes' streaming protocols use them.

Why this exists: ``kubectl port-forward`` (and exec/attach) speak SPDY/3.1 to the kubelet, either
over a raw upgraded HTTP/1.1 connection or tunnelled inside WebSocket binary messages
(``SPDY/3.1+portforward.k8s.io``, kubectl >= 1.31). No maintained Python SPDY library exists, so
this module implements the subset Kubernetes' Go peer (moby/spdystream) needs:

* every control frame of SPDY/3 (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY,
  HEADERS, WINDOW_UPDATE) and DATA frames, encoded and decoded byte for byte;
* name/value header blocks compressed with one zlib stream per direction, primed with the
  SPDY/3 dictionary (a published constant of the spec, written out below) and flushed with
  ``Z_SYNC_FLUSH`` after every block, as the spec requires;
* a session that accepts or opens streams, answers PINGs, honours GOAWAY and half-closes.

Flow control is tracked but not enforced: spdystream neither sends WINDOW_UPDATE nor waits for
one, so enforcing 64 KiB windows would only stall transfers with the one peer that matters.
Header names are sent lowercased (spdystream rejects anything else) and looked up
case-insensitively, because Go canonicalises them on its side (``Streamtype``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)

VERSION = 3
# control frame types
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
FLAG_SETTINGS_CLEAR = 0x01
# RST_STREAM status codes
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL, INTERNAL_ERROR = 1, 2, 3, 4, 5, 6
FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED, FRAME_TOO_LARGE = 7, 8, 9, 11
# GOAWAY status codes
GOAWAY_OK, GOAWAY_PROTOCOL_ERROR, GOAWAY_INTERNAL_ERROR = 0, 1, 2
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_FRAME_DATA = (1 << 24) - 1
#: how much payload one DATA frame we send carries; small enough to interleave streams
DATA_CHUNK = 32 * 1024


def _dictionary() -> bytes:
    """The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): 1423 bytes."""
    words = [
        "options", "head", "post", "put", "delete", "trace", "accept", "accept-charset",
        "accept-encoding", "accept-language", "accept-ranges", "age", "allow", "authorization",
        "cache-control", "connection", "content-base", "content-encoding", "content-language",
        "content-length", "content-location", "content-md5", "content-range", "content-type",
        "date", "etag", "expect", "expires", "from", "host", "if-match", "if-modified-since",
        "if-none-match", "if-range", "if-unmodified-since", "last-modified", "location",
        "max-forwards", "pragma", "proxy-authenticate", "proxy-authorization", "range", "referer",
        "retry-after", "server", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
        "vary", "via", "warning", "www-authenticate", "method", "get", "status", "200 OK",
        "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin",
    ]
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
        "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
        "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
        "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    out = b"".join(struct.pack(">I", len(w)) + w.encode("ascii") for w in words)
    return out + tail.encode("ascii")


DICTIONARY = _dictionary()
assert len(DICTIONARY) == 1423

Headers = dict[str, list[str]]


class SpdyProtocolError(Exception):
    """The peer sent something that is not valid SPDY/3."""


# -- frames -----------------------------------------------------------------------------------
@dataclass
class DataFrame:
    stream_id: int
    data: bytes = b""
    flags: int = 0


@dataclass
class SynStream:
    stream_id: int
    headers: Headers
    flags: int = 0
    associated_to: int = 0
    priority: int = 0
    slot: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    #: (flags, id, value) triples
    entries: list[tuple[int, int, int]] = field(default_factory=list)
    flags: int = 0


@dataclass
class Ping:
    ping_id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = GOAWAY_OK


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass
class UnknownControl:
    frame_type: int
    flags: int
    payload: bytes


Frame = (DataFrame | SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame
         | WindowUpdate | UnknownControl)


class Framer:
    """Encodes and decodes frames for one direction pair of a session.

    The zlib contexts are per session and per direction (the spec shares one compression
    context across all header blocks), so one Framer must serve exactly one connection.
    """

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zlib.Z_BEST_COMPRESSION, zlib.DEFLATED, 15, 8,
                                         zlib.Z_DEFAULT_STRATEGY, DICTIONARY)
        self._inflate = zlib.decompressobj(15, zdict=DICTIONARY)

    # header blocks
    def compress_headers(self, headers: Headers) -> bytes:
        parts = [struct.pack(">I", len(headers))]
        for name, values in headers.items():
            raw_name = name.lower().encode()
            raw_value = "\x00".join(values).encode()
            parts += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
        block = b"".join(parts)
        return self._deflate.compress(block) + self._deflate.flush(zlib.Z_SYNC_FLUSH)

    def decompress_headers(self, data: bytes) -> Headers:
        try:
            block = self._inflate.decompress(data)
        except zlib.error as exc:
            raise SpdyProtocolError(f"bad header block: {exc}") from exc
        try:
            (count,), pos = struct.unpack_from(">I", block, 0), 4
            headers: Headers = {}
            for _ in range(count):
                (n,) = struct.unpack_from(">I", block, pos)
                name = block[pos + 4:pos + 4 + n].decode()
                pos += 4 + n
                (n,) = struct.unpack_from(">I", block, pos)
                value = block[pos + 4:pos + 4 + n].decode()
                pos += 4 + n
                headers.setdefault(name.lower(), []).extend(value.split("\x00"))
        except (struct.error, UnicodeDecodeError) as exc:
            raise SpdyProtocolError(f"malformed name/value block: {exc}") from exc
        return headers

    # frames
    @staticmethod
    def _control(frame_type: int, flags: int, payload: bytes) -> bytes:
        if len(payload) > MAX_FRAME_DATA:
            raise ValueError("control frame too large")
        return struct.pack(">HHI", 0x8000 | VERSION, frame_type, (flags << 24) | len(payload)) + payload

    def encode(self, frame: Frame) -> bytes:
        if isinstance(frame, DataFrame):
            if len(frame.data) > MAX_FRAME_DATA:
                raise ValueError("data frame too large")
            return struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                               (frame.flags << 24) | len(frame.data)) + frame.data
        if isinstance(frame, SynStream):
            body = struct.pack(">IIBB", frame.stream_id & 0x7FFFFFFF, frame.associated_to & 0x7FFFFFFF,
                               (frame.priority & 7) << 5, frame.slot)
            return self._control(SYN_STREAM, frame.flags, body + self.compress_headers(frame.headers))
        if isinstance(frame, SynReply):
            body = struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + self.compress_headers(frame.headers)
            return self._control(SYN_REPLY, frame.flags, body)
        if isinstance(frame, HeadersFrame):
            body = struct.pack(">I", frame.stream_id & 0x7FFFFFFF) + self.compress_headers(frame.headers)
            return self._control(HEADERS, frame.flags, body)
        if isinstance(frame, RstStream):
            return self._control(RST_STREAM, 0, struct.pack(">II", frame.stream_id & 0x7FFFFFFF, frame.status))
        if isinstance(frame, Settings):
            body = struct.pack(">I", len(frame.entries)) + b"".join(
                struct.pack(">II", (f << 24) | (i & 0xFFFFFF), v) for f, i, v in frame.entries)
            return self._control(SETTINGS, frame.flags, body)
        if isinstance(frame, Ping):
            return self._control(PING, 0, struct.pack(">I", frame.ping_id))
        if isinstance(frame, GoAway):
            return self._control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id & 0x7FFFFFFF, frame.status))
        if isinstance(frame, WindowUpdate):
            return self._control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id & 0x7FFFFFFF,
                                                                frame.delta & 0x7FFFFFFF))
        if isinstance(frame, UnknownControl):
            return self._control(frame.frame_type, frame.flags, frame.payload)
        raise TypeError(f"not a SPDY frame: {frame!r}")

    def decode(self, head: bytes, payload: bytes) -> Frame:
        """One frame from its 8-byte header and its payload."""
        word, flags_len = struct.unpack(">II", head)
        flags, length = flags_len >> 24, flags_len & 0xFFFFFF
        if len(payload) != length:
            raise SpdyProtocolError("truncated frame")
        if not word & 0x80000000:
            return DataFrame(word & 0x7FFFFFFF, payload, flags)
        version, frame_type = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise SpdyProtocolError(f"unsupported SPDY version {version}")
        try:
            if frame_type == SYN_STREAM:
                sid, assoc, pri, slot = struct.unpack_from(">IIBB", payload)
                return SynStream(sid & 0x7FFFFFFF, self.decompress_headers(payload[10:]), flags,
                                 assoc & 0x7FFFFFFF, pri >> 5, slot)
            if frame_type == SYN_REPLY:
                (sid,) = struct.unpack_from(">I", payload)
                return SynReply(sid & 0x7FFFFFFF, self.decompress_headers(payload[4:]), flags)
            if frame_type == HEADERS:
                (sid,) = struct.unpack_from(">I", payload)
                return HeadersFrame(sid & 0x7FFFFFFF, self.decompress_headers(payload[4:]), flags)
            if frame_type == RST_STREAM:
                sid, status = struct.unpack(">II", payload)
                return RstStream(sid & 0x7FFFFFFF, status)
            if frame_type == SETTINGS:
                (count,) = struct.unpack_from(">I", payload)
                if length != 4 + 8 * count:
                    raise SpdyProtocolError("bad SETTINGS length")
                entries = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                    entries.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(entries, flags)
            if frame_type == PING:
                return Ping(struct.unpack(">I", payload)[0])
            if frame_type == GOAWAY:
                sid, status = struct.unpack(">II", payload[:8])
                return GoAway(sid & 0x7FFFFFFF, status)
            if frame_type == WINDOW_UPDATE:
                sid, delta = struct.unpack(">II", payload)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as exc:
            raise SpdyProtocolError(f"bad control frame type {frame_type}: {exc}") from exc
        return UnknownControl(frame_type, flags, payload)

    async def read_frame(self, reader: asyncio.StreamReader) -> Frame | None:
        """The next frame, or None at a clean end of the byte stream."""
        try:
            head = await reader.readexactly(8)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise SpdyProtocolError("connection closed inside a frame header") from exc
            return None
        length = struct.unpack(">I", head[4:])[0] & 0xFFFFFF
        try:
            payload = await reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError as exc:
            raise SpdyProtocolError("connection closed inside a frame") from exc
        return self.decode(head, payload)


def header(headers: Headers, name: str) -> str:
    """First value of a header, case-insensitively; '' when absent (Go's Header.Get)."""
    values = headers.get(name.lower()) or []
    return values[0] if values else ""


# -- session ----------------------------------------------------------------------------------
class ByteWriter(Protocol):
    """What a session writes to: an ``asyncio.StreamWriter`` or an adapter with its shape."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


class SpdyStream:
    """One bidirectional SPDY stream: read with ``reader``, write with ``write``/``close``."""

    def __init__(self, session: SpdySession, stream_id: int, headers: Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reply_headers: Headers = {}
        self.reader = asyncio.StreamReader(limit=2 ** 20)
        self.replied = asyncio.Event()
        self.local_closed = False
        self.remote_closed = False
        self.reset_status: int | None = None
        self.send_window = DEFAULT_WINDOW  # tracked only, see module docstring

    def get(self, name: str) -> str:
        return header(self.headers, name)

    async def write(self, data: bytes) -> None:
        if self.reset_status is not None or self.local_closed:
            raise ConnectionResetError(f"SPDY stream {self.id} is closed")
        await self.replied.wait()
        view = memoryview(data)
        for start in range(0, len(view), DATA_CHUNK):
            await self.session.send(DataFrame(self.id, bytes(view[start:start + DATA_CHUNK])))
            self.send_window -= min(DATA_CHUNK, len(view) - start)

    async def close(self) -> None:
        """Half-close: tell the peer we will send no more (an empty DATA frame with FIN)."""
        if self.local_closed or self.reset_status is not None:
            return
        self.local_closed = True
        with contextlib.suppress(ConnectionError):
            await self.session.send(DataFrame(self.id, b"", FLAG_FIN))
        self.session._maybe_forget(self)

    async def reset(self, status: int = CANCEL) -> None:
        if self.reset_status is not None:
            return
        self.reset_status = status
        self._remote_done()
        with contextlib.suppress(ConnectionError):
            await self.session.send(RstStream(self.id, status))
        self.session._forget(self)

    def _remote_done(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            self.reader.feed_eof()


#: Called for each stream the peer opens; return False to refuse it (RST_STREAM REFUSED).
StreamHandler = Callable[[SpdyStream], bool]


class SpdySession:
    """A SPDY/3.1 connection over a byte reader and writer, in the server or client role."""

    def __init__(self, reader: asyncio.StreamReader, writer: ByteWriter, *, server: bool,
                 on_stream: StreamHandler | None = None) -> None:
        self.reader = reader
        self.writer = writer
        self.server = server
        self.on_stream = on_stream
        self.framer = Framer()
        self.streams: dict[int, SpdyStream] = {}
        self.settings: dict[int, int] = {}
        self.goaway_received = False
        self.goaway_sent = False
        self.closed = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._next_stream_id = 2 if server else 1
        self._last_peer_stream = 0
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}

    async def send(self, frame: Frame) -> None:
        async with self._write_lock:
            if self.closed.is_set():
                raise ConnectionResetError("SPDY session closed")
            self.writer.write(self.framer.encode(frame))
            await self.writer.drain()

    async def run(self) -> None:
        """Read and dispatch frames until the peer goes away; then end every stream."""
        try:
            while True:
                frame = await self.framer.read_frame(self.reader)
                if frame is None:
                    break
                await self._dispatch(frame)
        except SpdyProtocolError as exc:
            if self.reader.at_eof():  # the peer went away mid-frame (killed): a normal end
                log.debug("SPDY connection cut: %s", exc)
            else:
                log.warning("SPDY protocol error: %s", exc)
                with contextlib.suppress(ConnectionError):
                    await self.send(GoAway(self._last_peer_stream, GOAWAY_PROTOCOL_ERROR))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed.set()
            for stream in list(self.streams.values()):
                stream._remote_done()
                stream.replied.set()
            for fut in self._pings.values():
                if not fut.done():
                    fut.set_exception(ConnectionResetError("SPDY session closed"))
            self.streams.clear()

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is None:
                return  # already gone: spdystream ignores these too
            if frame.data:
                stream.reader.feed_data(frame.data)
            if frame.flags & FLAG_FIN:
                stream._remote_done()
                self._maybe_forget(stream)
        elif isinstance(frame, SynStream):
            await self._accept(frame)
        elif isinstance(frame, SynReply):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.reply_headers = frame.headers
                stream.replied.set()
                if frame.flags & FLAG_FIN:
                    stream._remote_done()
        elif isinstance(frame, HeadersFrame):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                for k, v in frame.headers.items():
                    stream.headers.setdefault(k, []).extend(v)
                if frame.flags & FLAG_FIN:
                    stream._remote_done()
                    self._maybe_forget(stream)
        elif isinstance(frame, RstStream):
            stream = self.streams.pop(frame.stream_id, None)
            if stream is not None:
                stream.reset_status = frame.status
                stream._remote_done()
                stream.replied.set()
        elif isinstance(frame, Settings):
            if frame.flags & FLAG_SETTINGS_CLEAR:
                self.settings.clear()
            for _flags, sid, value in frame.entries:
                self.settings[sid] = value
        elif isinstance(frame, Ping):
            if (frame.ping_id & 1) == (self._next_ping_id & 1):
                fut = self._pings.pop(frame.ping_id, None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
            else:
                await self.send(frame)  # echo the peer's ping
        elif isinstance(frame, GoAway):
            self.goaway_received = True
        elif isinstance(frame, WindowUpdate):
            stream = self.streams.get(frame.stream_id)
            if stream is not None:
                stream.send_window += frame.delta
        # UnknownControl: ignored, as the spec asks

    async def _accept(self, frame: SynStream) -> None:
        sid = frame.stream_id
        expected_parity = 1 if self.server else 0
        if sid == 0 or sid % 2 != expected_parity or sid <= self._last_peer_stream:
            await self.send(RstStream(sid, PROTOCOL_ERROR))
            return
        self._last_peer_stream = sid
        if self.goaway_sent:
            await self.send(RstStream(sid, REFUSED_STREAM))
            return
        stream = SpdyStream(self, sid, frame.headers)
        if frame.flags & FLAG_FIN:
            stream._remote_done()
        if frame.flags & FLAG_UNIDIRECTIONAL:
            stream.local_closed = True
        self.streams[sid] = stream
        accepted = True
        if self.on_stream is not None:
            try:
                accepted = self.on_stream(stream)
            except Exception:  # a handler bug must not kill the connection
                log.exception("SPDY stream handler failed")
                accepted = False
        if not accepted:
            await stream.reset(REFUSED_STREAM)
            return
        await self.send(SynReply(sid, {}))
        stream.replied.set()

    def _maybe_forget(self, stream: SpdyStream) -> None:
        if stream.local_closed and stream.remote_closed:
            self._forget(stream)

    def _forget(self, stream: SpdyStream) -> None:
        if self.streams.get(stream.id) is stream:
            del self.streams[stream.id]

    # -- client-side and housekeeping --------------------------------------------------------
    async def open_stream(self, headers: Headers, *, fin: bool = False,
                          wait_reply: bool = True) -> SpdyStream:
        """Open a stream (SYN_STREAM) and, by default, wait for the peer's SYN_REPLY."""
        if self.goaway_received or self.closed.is_set():
            raise ConnectionResetError("SPDY session is going away")
        sid = self._next_stream_id
        self._next_stream_id += 2
        stream = SpdyStream(self, sid, headers)
        stream.local_closed = fin
        self.streams[sid] = stream
        await self.send(SynStream(sid, headers, FLAG_FIN if fin else 0))
        if wait_reply:
            await stream.replied.wait()
            if stream.reset_status is not None:
                raise ConnectionResetError(f"stream {sid} refused (status {stream.reset_status})")
        return stream

    async def ping(self, timeout: float = 10.0) -> None:
        pid = self._next_ping_id
        self._next_ping_id += 2
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[pid] = fut
        await self.send(Ping(pid))
        await asyncio.wait_for(fut, timeout)

    async def goaway(self, status: int = GOAWAY_OK) -> None:
        if self.goaway_sent or self.closed.is_set():
            return
        self.goaway_sent = True
        with contextlib.suppress(ConnectionError):
            await self.send(GoAway(self._last_peer_stream, status))

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(Exception):
            self.writer.close()
