"""Benchmark of the local API server, side by side with a bare HTTP+JSON floor.

    python bench/apiserver.py [--objects 10000] [--watchers 50] [--events 1000]

There is no kube-apiserver on these machines to compare with, so the peer is the floor any
Python API server pays: a minimal aiohttp app that stores posted JSON in a dict and lists it
back, with no validation, defaulting, versioning, RBAC or watch machinery. The ratio says what
the Kubernetes semantics cost on top of HTTP and JSON. The local API server is measured twice,
as it runs (every write committed to its SQLite file before the answer) and with
``--in-memory`` (no file), so the second ratio says what persistence costs. All three servers
run in their own process, are driven by the same client code, and are measured in the same run.

Figures: creates per second (ConfigMaps, 20 concurrent clients), latency of a full list at N
objects (for these two, the two local servers run at once and take turns, five rounds each,
median round), watch fan-out (events delivered per second to W watchers), and resident memory per
1,000 Pods (median of three rounds of 1,000, measured first on each server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dask_kube_jobs.local.launcher import LocalControlPlane  # noqa: E402

CONCURRENCY = 20
ROUNDS = 5
MEMORY_ROUNDS = 3
MEMORY = "MiB per 1,000 Pods"


# -- the floor: HTTP + JSON and nothing else ------------------------------------------------------

def _floor_server(port: int) -> None:
    from aiohttp import web

    store: dict[str, dict] = {}
    queues: list[asyncio.Queue[bytes]] = []

    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        store[body["metadata"]["name"]] = body
        line = json.dumps({"type": "ADDED", "object": body}).encode() + b"\n"
        for q in queues:
            q.put_nowait(line)
        return web.json_response(body, status=201)

    async def list_or_watch(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") == "true":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            q: asyncio.Queue[bytes] = asyncio.Queue()
            queues.append(q)
            try:
                while True:
                    await resp.write(await q.get())
            except (ConnectionError, aiohttp.ClientConnectionResetError):
                return resp
            finally:
                queues.remove(q)
        return web.json_response({"items": list(store.values())})

    app = web.Application()
    app.router.add_post("/api/v1/namespaces/{ns}/{plural}", create)
    app.router.add_get("/api/v1/namespaces/{ns}/{plural}", list_or_watch)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Target:
    def __init__(self, name: str, base: str, headers: dict[str, str], ssl_ctx: ssl.SSLContext | None,
                 pid: int) -> None:
        self.name, self.base, self.headers, self.ssl, self.pid = name, base, headers, ssl_ctx, pid


# -- measurements -------------------------------------------------------------------------------

def _cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"bench": "yes"}}, "data": {"k": "v" * 64}}


def _pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "ghcr.io/dask/dask:latest",
                                     "args": ["dask", "worker"], "env": [{"name": "A", "value": "1"}]}]}}


async def _create_many(session: aiohttp.ClientSession, t: Target, ns: str, plural: str,
                       bodies: list[dict]) -> float:
    queue = list(bodies)
    url = f"{t.base}/api/v1/namespaces/{ns}/{plural}"

    async def worker() -> None:
        while queue:
            body = queue.pop()
            async with session.post(url, json=body, headers=t.headers, ssl=t.ssl) as r:
                if r.status != 201:
                    raise RuntimeError(f"{t.name}: create answered {r.status}: {await r.text()}")
                await r.read()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return time.perf_counter() - start


async def _list_latency(session: aiohttp.ClientSession, t: Target, ns: str, plural: str,
                        repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        async with session.get(f"{t.base}/api/v1/namespaces/{ns}/{plural}", headers=t.headers,
                               ssl=t.ssl) as r:
            body = await r.read()
        samples.append(time.perf_counter() - start)
        assert json.loads(body)["items"]
    return statistics.median(samples)


async def _fanout(session: aiohttp.ClientSession, t: Target, ns: str, watchers: int,
                  events: int) -> float:
    """Events per second delivered to all watchers together."""
    url = f"{t.base}/api/v1/namespaces/{ns}/configmaps?watch=true&resourceVersion=&timeoutSeconds=120"
    ready = 0
    done = asyncio.Event()
    received = [0] * watchers

    async def watch(i: int) -> None:
        nonlocal ready
        async with session.get(url, headers=t.headers, ssl=t.ssl, timeout=aiohttp.ClientTimeout(total=None)) as r:
            ready += 1
            async for _ in r.content:
                received[i] += 1
                if received[i] >= events:
                    return

    tasks = [asyncio.create_task(watch(i)) for i in range(watchers)]
    while ready < watchers:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    await _create_many(session, t, ns, "configmaps", [_cm(f"fan-{i}") for i in range(events)])
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=300)
    elapsed = time.perf_counter() - start
    done.set()
    return watchers * events / elapsed


def _rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


async def pod_memory(t: Target) -> float:
    """MiB of resident memory per 1,000 Pods: the median growth over three rounds of 1,000,
    measured first, while the server has freed next to nothing.

    Measured after the other figures, it read the allocator instead: the memory that the big
    lists and the fan-out had freed took the Pods in without the process growing (the floor
    read 0.5 MiB, when 1,000 posted Pods take it 2.5 MiB measured first)."""
    rounds = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await _ensure_ns(session, t, "bench-pods")
        for r in range(MEMORY_ROUNDS):
            before = _rss(t.pid)
            await _create_many(session, t, "bench-pods", "pods",
                               [_pod(f"p-{r}-{i}") for i in range(1000)])
            rounds.append((_rss(t.pid) - before) / 2**20)
    return statistics.median(rounds)


async def _ensure_ns(session: aiohttp.ClientSession, t: Target, ns: str) -> None:
    if t.name == "floor":
        return
    async with session.post(f"{t.base}/api/v1/namespaces", headers=t.headers, ssl=t.ssl,
                            json={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}) as r:
        await r.read()
    # No controllers run here, so nobody makes the namespace's default ServiceAccount, without
    # which ServiceAccount admission refuses every Pod.
    async with session.post(f"{t.base}/api/v1/namespaces/{ns}/serviceaccounts", headers=t.headers,
                            ssl=t.ssl, json={"apiVersion": "v1", "kind": "ServiceAccount",
                                             "metadata": {"name": "default"}}) as r:
        await r.read()


async def interleaved(targets: list[Target], n: int) -> dict[str, dict[str, float]]:
    """Creates per second (``n`` ConfigMaps each) and the latency of listing them, for targets
    that run at once, taking turns round by round: load that drifts during the run (a shared
    VM) then weighs on every target alike. The median round is the figure."""
    rates: dict[str, list[float]] = {t.name: [] for t in targets}
    lists: dict[str, list[float]] = {t.name: [] for t in targets}
    bounds = [n * r // ROUNDS for r in range(ROUNDS + 1)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        for t in targets:
            await _ensure_ns(session, t, "bench-create")
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            for t in targets:
                elapsed = await _create_many(session, t, "bench-create", "configmaps",
                                             [_cm(f"cm-{i}") for i in range(lo, hi)])
                rates[t.name].append((hi - lo) / elapsed)
        for _ in range(ROUNDS):
            for t in targets:
                lists[t.name].append(await _list_latency(session, t, "bench-create", "configmaps",
                                                         repeat=1))
    return {t.name: {"creates/s": statistics.median(rates[t.name]),
                     f"list {n} (ms)": statistics.median(lists[t.name]) * 1000} for t in targets}


async def measure(t: Target, args: argparse.Namespace,
                  known: dict[str, float] | None = None) -> dict[str, float]:
    """Every figure of one target; ``known``: the figures ``interleaved`` already measured
    (which also filled its ``bench-create``)."""
    out: dict[str, float] = dict(known or {})
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        for ns in ("bench-create", "bench-fanout"):
            await _ensure_ns(session, t, ns)
        n = args.objects
        if not known:
            elapsed = await _create_many(session, t, "bench-create", "configmaps",
                                         [_cm(f"cm-{i}") for i in range(n)])
            out["creates/s"] = n / elapsed
            out[f"list {n} (ms)"] = await _list_latency(session, t, "bench-create",
                                                        "configmaps") * 1000
        out[f"fan-out events/s ({args.watchers} watchers)"] = await _fanout(
            session, t, "bench-fanout", args.watchers, args.events)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        ours: list[Target] = []
        for label, extra in (("ours", []), ("in memory", ["--in-memory"])):
            root = Path(tmp) / label.replace(" ", "-")
            plane = stack.enter_context(LocalControlPlane(
                root / "kc.yaml", state_dir=root / "state", kubelet=False, operator=False,
                controllers=False, extra_args=extra))
            config = yaml.safe_load(Path(plane.kubeconfig).read_text())
            token = config["users"][0]["user"]["token"]
            ctx = ssl.create_default_context(cafile=str(plane.state.ca_cert))
            assert plane.process is not None
            ours.append(Target(label, plane.server, {"Authorization": f"Bearer {token}"}, ctx,
                               plane.process.pid))
        memory = {t.name: asyncio.run(pod_memory(t)) for t in ours}
        figures = asyncio.run(interleaved(ours, args.objects))
        for t in ours:
            results[t.name] = asyncio.run(measure(t, args, figures[t.name]))
            results[t.name][MEMORY] = memory[t.name]

    port = _free_port()
    proc = multiprocessing.get_context("spawn").Process(target=_floor_server, args=(port,), daemon=True)
    proc.start()
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        assert proc.pid is not None
        floor = Target("floor", f"http://127.0.0.1:{port}", {}, None, proc.pid)
        floor_memory = asyncio.run(pod_memory(floor))
        results["floor"] = asyncio.run(measure(floor, args))
        results["floor"][MEMORY] = floor_memory
    finally:
        proc.terminate()
        proc.join(5)

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nLocal API server vs a bare aiohttp+JSON floor (same client, same run, "
          f"cores={os.cpu_count()}, load average {load})\n")
    print(f"{'figure':<40}{'ours':>12}{'in memory':>12}{'floor':>12}{'ours/floor':>12}"
          f"{'ours/in mem':>12}")
    for key in results["ours"]:
        a, m, b = results["ours"][key], results["in memory"][key], results["floor"][key]
        ratio = a / b if b else float("nan")
        cost = a / m if m else float("nan")
        print(f"{key:<40}{a:>12.1f}{m:>12.1f}{b:>12.1f}{ratio:>12.2f}{cost:>12.2f}")
    print("\nHigher is better for the per-second figures; lower for latency and memory.")
    print("ours: every write committed to SQLite (WAL, synchronous=NORMAL) before the answer;")
    print("in memory: the same server with --in-memory. The floor does no TLS, auth, validation,")
    print("defaulting, versioning, selectors or persistence.")


if __name__ == "__main__":
    main()
