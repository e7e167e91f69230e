"""The kubelet's HTTPS log endpoint over fabricated CRI log files (no kubelet core needed)."""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest

from dask_kube_jobs.local import certs
from dask_kube_jobs.local.kubelet import server as logserver
from dask_kube_jobs.local.kubelet.server import start_kubelet_server


def ts(seconds: float, nanos: int = 0) -> str:
    base = datetime.fromtimestamp(int(seconds), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def entry(t: str, text: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"{t} {stream} {tag} {text}\n"


def container_dir(root: Path, ns: str = "ns", pod: str = "p", uid: str = "u1", c: str = "c") -> Path:
    d = root / "pods" / f"{ns}_{pod}_{uid}" / c
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture
async def kubelet(tmp_path: Path):
    pki = tmp_path / "pki"
    ca = certs.ensure_ca(pki)
    pair = certs.issue_serving_cert(ca, pki, "kubelet")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(pair.cert, pair.key)
    state = tmp_path / "state"
    runner, port = await start_kubelet_server(state, ssl_context=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(ca.cert))
    async with aiohttp.ClientSession(f"https://127.0.0.1:{port}",
                                     connector=aiohttp.TCPConnector(ssl=client_ctx)) as session:
        yield state, session
    await runner.cleanup()


async def get(session: aiohttp.ClientSession, path: str, **params: str) -> tuple[int, str]:
    async with session.get(path, params=params) as resp:
        return resp.status, await resp.text()


async def test_healthz_and_loopback_only(kubelet, tmp_path):
    _, session = kubelet
    assert await get(session, "/healthz") == (200, "ok")
    with pytest.raises(ValueError, match="loopback"):
        await start_kubelet_server(tmp_path, host="0.0.0.0")


async def test_current_log_and_partial_lines(kubelet):
    state, session = kubelet
    d = container_dir(state)
    now = time.time()
    (d / "0.log").write_text(entry(ts(now), "first") + entry(ts(now), "hel", tag="P")
                             + entry(ts(now), "oops", stream="stderr") + entry(ts(now), "lo"))
    status, text = await get(session, "/containerLogs/ns/p/c")
    assert status == 200
    assert text == "first\noops\nhello\n"


async def test_tail_lines(kubelet):
    state, session = kubelet
    d = container_dir(state)
    now = time.time()
    (d / "0.log").write_text("".join(entry(ts(now), f"line {i}") for i in range(2000))
                             + entry(ts(now), "split ", tag="P") + entry(ts(now), "end"))
    status, text = await get(session, "/containerLogs/ns/p/c", tailLines="3")
    assert status == 200 and text == "line 1998\nline 1999\nsplit end\n"
    assert (await get(session, "/containerLogs/ns/p/c", tailLines="0"))[1] == ""
    assert len((await get(session, "/containerLogs/ns/p/c", tailLines="5000"))[1].splitlines()) == 2001
    # many blocks back
    for n in (1, 64, 1999):
        _, text = await get(session, "/containerLogs/ns/p/c", tailLines=str(n))
        assert len(text.splitlines()) == n and text.endswith("split end\n")


async def test_since_and_timestamps(kubelet):
    state, session = kubelet
    d = container_dir(state)
    now = time.time()
    (d / "0.log").write_text(entry(ts(now - 3600, 5), "old") + entry(ts(now - 1, 120), "new"))
    _, text = await get(session, "/containerLogs/ns/p/c", sinceSeconds="60")
    assert text == "new\n"
    _, text = await get(session, "/containerLogs/ns/p/c", sinceTime=ts(now - 1800).replace(".000000000", ""))
    assert text == "new\n"
    _, text = await get(session, "/containerLogs/ns/p/c", timestamps="true")
    assert text == f"{ts(now - 3600, 5)} old\n{ts(now - 1, 120)} new\n"
    status, text = await get(session, "/containerLogs/ns/p/c", sinceSeconds="5", sinceTime=ts(now))
    assert status == 400
    assert (await get(session, "/containerLogs/ns/p/c", tailLines="x"))[0] == 400


async def test_limit_bytes(kubelet):
    state, session = kubelet
    (container_dir(state) / "0.log").write_text(entry(ts(time.time()), "abcdefgh"))
    assert (await get(session, "/containerLogs/ns/p/c", limitBytes="4"))[1] == "abcd"


async def test_previous_and_errors(kubelet):
    state, session = kubelet
    d = container_dir(state)
    now = time.time()
    (d / "0.log").write_text(entry(ts(now), "run 0"))
    (d / "0.log.done").touch()
    status, text = await get(session, "/containerLogs/ns/p/c", previous="true")
    assert (status, text) == (400, 'previous terminated container "c" in pod "p" not found')
    (d / "1.log").write_text(entry(ts(now), "run 1"))
    assert (await get(session, "/containerLogs/ns/p/c"))[1] == "run 1\n"
    assert (await get(session, "/containerLogs/ns/p/c", previous="true"))[1] == "run 0\n"
    status, text = await get(session, "/containerLogs/ns/missing/c")
    assert status == 404 and 'pods "missing" not found' in text
    status, text = await get(session, "/containerLogs/ns/p/other")
    assert status == 400 and "not valid for pod p" in text
    assert (await get(session, "/containerLogs/ns/p/Bad_Name"))[0] == 400
    container_dir(state, pod="q", c="c")
    status, text = await get(session, "/containerLogs/ns/q/c")
    assert status == 400 and "waiting to start" in text


async def test_recreated_pod_serves_newest(kubelet):
    state, session = kubelet
    old = container_dir(state, uid="old")
    (old / "0.log").write_text(entry(ts(time.time()), "old pod"))
    await asyncio.sleep(0.05)
    new = container_dir(state, uid="new")
    (new / "0.log").write_text(entry(ts(time.time()), "new pod"))
    assert (await get(session, "/containerLogs/ns/p/c"))[1] == "new pod\n"


async def test_follow_until_done(kubelet, monkeypatch):
    monkeypatch.setattr(logserver, "POLL_INTERVAL", 0.02)
    state, session = kubelet
    d = container_dir(state)
    log = d / "0.log"
    log.write_text(entry(ts(time.time()), "one"))
    received: list[str] = []

    async def follow() -> None:
        async with session.get("/containerLogs/ns/p/c", params={"follow": "true"}) as resp:
            assert resp.status == 200
            async for line in resp.content:
                received.append(line.decode())

    async def until(expected: list[str]) -> None:
        """Wait (on a loaded machine a fixed sleep is too short) until ``expected`` arrived."""
        for _ in range(250):
            if received == expected or task.done():
                break
            await asyncio.sleep(0.02)
        assert received == expected and not task.done()

    task = asyncio.create_task(follow())
    await until(["one\n"])
    with log.open("a") as fh:  # a line written in two steps is delivered whole
        fh.write(entry(ts(time.time()), "two")[:10])
        fh.flush()
        await asyncio.sleep(0.1)
        fh.write(entry(ts(time.time()), "two")[10:])
    await until(["one\n", "two\n"])
    with log.open("a") as fh:
        fh.write(entry(ts(time.time()), "three"))
    (d / "0.log.done").touch()
    await asyncio.wait_for(task, 5)
    assert received == ["one\n", "two\n", "three\n"]


async def test_follow_client_goes_away(kubelet, monkeypatch):
    monkeypatch.setattr(logserver, "POLL_INTERVAL", 0.02)
    state, session = kubelet
    (container_dir(state) / "0.log").write_text(entry(ts(time.time()), "x"))
    resp = await session.get("/containerLogs/ns/p/c", params={"follow": "true"})
    assert await resp.content.readline() == b"x\n"
    resp.close()
    await asyncio.sleep(0.2)  # the server notices and stops polling (no error, no leak)
    assert await get(session, "/healthz") == (200, "ok")


async def test_port_forward_is_mounted(tmp_path):
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=f"pf {request.match_info['namespace']}/{request.match_info['pod']}")

    runner, port = await start_kubelet_server(tmp_path, port_forward_handler=handler)
    try:
        async with (aiohttp.ClientSession() as session,
                    session.post(f"http://127.0.0.1:{port}/portForward/ns/p") as resp):
            assert await resp.text() == "pf ns/p"
    finally:
        await runner.cleanup()


def test_timestamps_parse_exactly():
    assert logserver.parse_timestamp("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert logserver.parse_timestamp("1970-01-01T01:00:00+01:00") == 0
    assert logserver.format_timestamp("1970-01-01T00:00:01.000001Z") == "1970-01-01T00:00:01.000001000Z"
