"""Taking over an aiohttp connection after a ``101 Switching Protocols`` (SPDY upgrades).

aiohttp only hands over the socket itself for WebSocket upgrades; for ``Upgrade: SPDY/3.1`` it
treats the request as plain HTTP. :func:`take_over` therefore installs a raw byte feeder as the
connection's payload parser *before* sending the 101 (the same hook ``WebSocketResponse`` uses),
so every byte after the request goes to us, and writes through the prepared 101 response, which
aiohttp sends unframed because a 101 has no body.

It lives here, beside neither of its users, because two components that must not import each
other need it: the kubelet's ``/portForward`` endpoint and the API server's upgrade-aware proxy
in front of it.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class _Feeder:
    """Payload-parser stand-in: every byte the client sends after the request, into a reader."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class ResponseWriter:
    """StreamWriter-shaped writes through a prepared 101 response (flow control included)."""

    def __init__(self, response: web.StreamResponse, request: web.BaseRequest) -> None:
        self._response = response
        self._request = request
        self._buf = bytearray()

    def write(self, data: bytes) -> None:
        self._buf += data

    async def drain(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            await self._response.write(data)

    def close(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()


async def take_over(request: web.BaseRequest,
                    response: web.StreamResponse) -> tuple[asyncio.StreamReader, ResponseWriter]:
    """Send ``response`` (a 101) and own the raw connection: returns (reader, writer)."""
    reader = asyncio.StreamReader(limit=2 ** 20)
    request.protocol.set_parser(_Feeder(reader))  # type: ignore[arg-type]
    request.protocol.keep_alive(False)
    response.force_close()
    await response.prepare(request)
    return reader, ResponseWriter(response, request)
