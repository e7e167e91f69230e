"""SPDY/3.1 framing: byte-exact round trips, header compression, and a session end to end."""

from __future__ import annotations

import asyncio
import zlib

import pytest

from dask_kube_jobs.local.kubelet import spdy

#: What kubectl 1.32 (moby/spdystream) sent after the 101 for one forwarded connection:
#: SYN_STREAM 1 (streamType=error), FIN on 1, SYN_STREAM 3 (streamType=data), "ping\n" on 3,
#: FIN on 3. Captured on loopback; it pins our zlib dictionary and parser to the Go peer's.
KUBECTL_BYTES = bytes.fromhex(
    "80030001000000400000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9a0808614cb"
    "45a024cc6a68616969c9c0c0c0590489c74c50fa663400000000ffff00000001010000008003000100000018"
    "00000003000000000000c2aa1b54102512a119000000ffff000000030000000570696e670a0000000301000000"
)


def test_dictionary_is_the_spdy3_constant() -> None:
    assert len(spdy.DICTIONARY) == 1423
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b"charset=iso-8859-1,utf-,*,enq=0.")
    # the dictionary id in every SPDY/3 header block's zlib header
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2


def _roundtrip(frame: spdy.Frame, tx: spdy.Framer, rx: spdy.Framer) -> spdy.Frame:
    raw = tx.encode(frame)
    return rx.decode(raw[:8], raw[8:])


@pytest.mark.parametrize("frame", [
    spdy.DataFrame(5, b"hello", spdy.FLAG_FIN),
    spdy.DataFrame(7, b""),
    spdy.SynStream(1, {"streamtype": ["error"], "port": ["8786"], "requestid": ["0"]}),
    spdy.SynStream(3, {"a": ["1", "2"]}, spdy.FLAG_FIN | spdy.FLAG_UNIDIRECTIONAL, 1, 7, 3),
    spdy.SynReply(1, {}),
    spdy.SynReply(3, {"x-thing": ["v"]}, spdy.FLAG_FIN),
    spdy.HeadersFrame(3, {"more": ["yes"]}),
    spdy.RstStream(9, spdy.CANCEL),
    spdy.Settings([(0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (1, 4, 100)], spdy.FLAG_SETTINGS_CLEAR),
    spdy.Ping(7),
    spdy.GoAway(11, spdy.GOAWAY_PROTOCOL_ERROR),
    spdy.WindowUpdate(3, 65536),
    spdy.UnknownControl(10, 0, b"\x01\x02"),
])
def test_frame_roundtrip(frame: spdy.Frame) -> None:
    assert _roundtrip(frame, spdy.Framer(), spdy.Framer()) == frame


def test_control_frame_layout() -> None:
    raw = spdy.Framer().encode(spdy.Ping(0x01020304))
    assert raw == bytes.fromhex("80030006 00000004 01020304".replace(" ", ""))
    raw = spdy.Framer().encode(spdy.DataFrame(3, b"ab", spdy.FLAG_FIN))
    assert raw == bytes.fromhex("00000003 01000002 6162".replace(" ", ""))
    raw = spdy.Framer().encode(spdy.WindowUpdate(1, 10))
    assert raw == bytes.fromhex("80030009 00000008 00000001 0000000a".replace(" ", ""))


def test_header_compression_shares_one_context_per_direction() -> None:
    tx, rx = spdy.Framer(), spdy.Framer()
    headers = {"streamtype": ["data"], "port": ["8786"], "requestid": ["42"]}
    first = tx.encode(spdy.SynStream(1, headers))
    second = tx.encode(spdy.SynStream(3, headers))
    assert len(second) < len(first)  # the second block refers back into the first
    assert rx.decode(first[:8], first[8:]).headers == headers  # type: ignore[union-attr]
    assert rx.decode(second[:8], second[8:]).headers == headers  # type: ignore[union-attr]
    # a fresh decompressor cannot read the second block alone
    with pytest.raises(spdy.SpdyProtocolError):
        spdy.Framer().decode(second[:8], second[8:])


def test_header_names_are_lowercased_and_values_nul_joined() -> None:
    tx = spdy.Framer()
    raw = tx.encode(spdy.SynReply(1, {"StreamType": ["a", "b"]}))
    block = zlib.decompressobj(zdict=spdy.DICTIONARY).decompress(raw[12:])
    assert block == b"\x00\x00\x00\x01" + b"\x00\x00\x00\x0astreamtype" + b"\x00\x00\x00\x03a\x00b"


async def test_decodes_what_kubectl_sends() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(KUBECTL_BYTES)
    reader.feed_eof()
    framer = spdy.Framer()
    frames = []
    while (frame := await framer.read_frame(reader)) is not None:
        frames.append(frame)
    syn_error, fin_error, syn_data, data, fin_data = frames
    assert isinstance(syn_error, spdy.SynStream) and syn_error.stream_id == 1
    assert spdy.header(syn_error.headers, "streamType") == "error"
    assert spdy.header(syn_error.headers, "Port") == "18999"
    assert isinstance(syn_data, spdy.SynStream) and syn_data.stream_id == 3
    assert spdy.header(syn_data.headers, "streamtype") == "data"
    assert spdy.header(syn_data.headers, "requestID") == spdy.header(syn_error.headers, "requestID")
    assert fin_error == spdy.DataFrame(1, b"", spdy.FLAG_FIN)
    assert data == spdy.DataFrame(3, b"ping\n")
    assert fin_data == spdy.DataFrame(3, b"", spdy.FLAG_FIN)


async def test_truncated_frame_is_a_protocol_error() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(spdy.Framer().encode(spdy.DataFrame(1, b"abcdef"))[:-2])
    reader.feed_eof()
    with pytest.raises(spdy.SpdyProtocolError):
        await spdy.Framer().read_frame(reader)


async def _session_pair() -> tuple[spdy.SpdySession, spdy.SpdySession, list[spdy.SpdyStream], asyncio.Server]:
    accepted: list[spdy.SpdyStream] = []
    ready: asyncio.Future[spdy.SpdySession] = asyncio.get_running_loop().create_future()

    def on_stream(stream: spdy.SpdyStream) -> bool:
        accepted.append(stream)
        return stream.get("port") != "0"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = spdy.SpdySession(reader, writer, server=True, on_stream=on_stream)
        ready.set_result(session)
        await session.run()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = spdy.SpdySession(reader, writer, server=False)
    return client, await asyncio.wait_for(ready, 5), accepted, server


async def test_session_streams_ping_reset_and_goaway() -> None:
    client, srv, accepted, server = await _session_pair()
    client_task = asyncio.create_task(client.run())
    try:
        stream = await asyncio.wait_for(client.open_stream({"port": ["80"], "streamtype": ["data"]}), 5)
        assert accepted[0].get("streamType") == "data"
        await stream.write(b"x" * 100_000)  # several DATA frames
        await stream.close()
        got = await asyncio.wait_for(accepted[0].reader.read(), 5)
        assert got == b"x" * 100_000
        await accepted[0].write(b"back")
        await accepted[0].close()
        assert await asyncio.wait_for(stream.reader.read(), 5) == b"back"

        await asyncio.wait_for(client.ping(), 5)   # client pings, server echoes
        await asyncio.wait_for(srv.ping(), 5)      # and the other way round

        with pytest.raises(ConnectionResetError):  # refused by the handler: RST_STREAM
            await asyncio.wait_for(client.open_stream({"port": ["0"]}), 5)

        s2 = await client.open_stream({"port": ["81"]})
        await s2.reset()
        await asyncio.sleep(0.05)
        assert accepted[-1].reset_status == spdy.CANCEL
        assert accepted[-1].reader.at_eof()

        await srv.goaway()
        await asyncio.sleep(0.05)
        assert client.goaway_received
        with pytest.raises(ConnectionResetError):
            await client.open_stream({"port": ["82"]})
    finally:
        client.close()
        await asyncio.wait_for(client_task, 5)
        server.close()
        await server.wait_closed()
