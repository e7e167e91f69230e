"""kube.Client's request budget and deadline, against a raw HTTP server on loopback.

A scripted server rather than the local control plane: these tests need a server that is slow
on purpose (answers late, trickles a body, holds a watch open) and counts how many requests it
is serving at once.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from dask_kube_jobs import kube


class ScriptedServer:
    """HTTP/1.1 on loopback; ``behaviour(path)`` picks how each request is answered."""

    def __init__(self, answer_after: float = 0.05) -> None:
        self.answer_after = answer_after
        self.serving = 0
        self.peak = 0
        self.server: asyncio.Server | None = None
        self.closing = asyncio.Event()
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        self.closing.set()  # handlers end by themselves: a cancelled one is logged as an error
        await asyncio.gather(*self.handlers)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            while not self.closing.is_set():
                read = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
                closing = asyncio.ensure_future(self.closing.wait())
                await asyncio.wait([read, closing], return_when=asyncio.FIRST_COMPLETED)
                closing.cancel()
                if not read.done():
                    read.cancel()
                    await asyncio.gather(read, return_exceptions=True)
                    return
                head = read.result()
                request_line = head.split(b"\r\n", 1)[0].decode()
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                path = request_line.split(" ")[1]
                self.serving += 1
                self.peak = max(self.peak, self.serving)
                try:
                    await self._answer(path, writer)
                finally:
                    self.serving -= 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        if "watch=true" in path:  # a watch that stays open, sending nothing
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
            await writer.drain()
            await self.closing.wait()
            return
        if "/trickle" in path:  # a body one byte at a time: no single read ever times out
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n")
            for _ in range(1000):
                if self.closing.is_set():
                    return
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
            return
        await asyncio.sleep(self.answer_after)
        body = b'{"kind": "Pod", "metadata": {"name": "p"}}'
        if path.startswith("/version"):  # kr8s asks on connect
            body = b'{"major": "1", "minor": "31", "gitVersion": "v1.31.0"}'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


def kubeconfig_for(tmp_path: Path, url: str) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{url}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    return str(path)


async def connect(tmp_path: Path, url: str, **kwargs: int) -> kube.Client:
    client = await kube.Client.connect(kubeconfig_for(tmp_path, url))
    if kwargs:
        client = kube.Client(client.api, client.kubeconfig, **kwargs)
    return client


async def test_requests_in_flight_are_bounded_and_all_answered(tmp_path: Path) -> None:
    async with ScriptedServer(answer_after=0.3) as server:
        client = await connect(tmp_path, server.url, max_in_flight=4)
        try:
            got = await asyncio.gather(*(client.get(kube.PODS, "ns", f"p{i}") for i in range(24)))
        finally:
            await client.close()
    assert all(obj is not None and obj["metadata"]["name"] == "p" for obj in got)
    assert server.peak == 4


async def test_default_budget_matches_the_pools_kept_alive_connections(tmp_path: Path) -> None:
    async with ScriptedServer(answer_after=0.3) as server:
        client = await connect(tmp_path, server.url)
        try:
            await asyncio.gather(*(client.get(kube.PODS, "ns", f"p{i}") for i in range(100)))
        finally:
            await client.close()
    assert server.peak == kube.MAX_IN_FLIGHT


async def test_a_request_has_a_total_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube.client, "REQUEST_TIMEOUT", 1.0)  # read where the client uses it
    async with ScriptedServer() as server:
        client = await connect(tmp_path, server.url)
        try:
            start = time.monotonic()
            with pytest.raises(kube.RequestTimeout) as caught:
                await client.request("GET", "/api/v1/trickle")
            took = time.monotonic() - start
            # What callers already retry on: kr8s's timeout and the builtin one.
            assert isinstance(caught.value, TimeoutError)
            assert isinstance(caught.value, kube.TRANSIENT_ERRORS)
            assert "/api/v1/trickle" in str(caught.value)
            # The permit was given back: the next request is answered.
            assert await client.get(kube.PODS, "ns", "p") is not None
        finally:
            await client.close()
    assert 0.9 <= took < 5.0


async def test_a_watch_holds_no_permit(tmp_path: Path) -> None:
    async with ScriptedServer(answer_after=0.01) as server:
        client = await connect(tmp_path, server.url, max_in_flight=1)
        try:
            async with client.watch_stream(kube.PODS, "ns", {"watch": "true"}):
                got = await asyncio.wait_for(client.get(kube.PODS, "ns", "p"), 10)
        finally:
            await client.close()
    assert got is not None


def test_namespace_terminating_is_recognised() -> None:
    refused = kube.api_error(403, {"reason": "Forbidden", "message": 'pods "x" is forbidden: unable '
                                   "to create new content in namespace ns because it is being "
                                   "terminated"})
    by_cause = kube.api_error(403, {"reason": "Forbidden", "message": "forbidden", "details": {
        "causes": [{"reason": "NamespaceTerminating", "message": "ns"}]}})
    assert kube.namespace_terminating(refused)
    assert kube.namespace_terminating(by_cause)
    assert not kube.namespace_terminating(kube.api_error(403, {"message": "RBAC says no"}))
    assert not kube.namespace_terminating(kube.api_error(409, {"reason": "AlreadyExists",
                                                               "message": "being terminated"}))
