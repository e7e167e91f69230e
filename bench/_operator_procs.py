"""The two operators as processes of their own, plus what is measured on them from outside.

Each operator runs unmodified as a child process that the benchmark starts for one workload and
stops after it, so memory and request counts never carry over from one workload to the next.
Upstream's ``dask-kubernetes`` pins its own kopf/kr8s/distributed, so it lives in a virtualenv of
its own (``bench/.venv-upstream``), created with pip on first use.

Requests are counted by a small HTTP proxy that sits between one operator and the API server:
the operator's kubeconfig points at the proxy, which forwards every request (watch streams
included) over TLS and counts it by verb and resource. The API server's own counters cannot tell
clients apart, and the kubelet and controllers talk to it at the same time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil
from aiohttp import web

from dask_kube_jobs.local import kubeconfig as kc

BENCH = Path(__file__).resolve().parent
UPSTREAM_VENV = Path(os.environ.get("DKJ_BENCH_UPSTREAM_VENV", BENCH / ".venv-upstream"))
UPSTREAM_PACKAGE = "dask-kubernetes"
UPSTREAM_MODULE = "dask_kubernetes.operator.controller"
# Ours fails a DaskJob whose scheduler Pod stays unschedulable for 600 s by default (upstream
# waits for ever). 100 jobs need ~200 Pods and the local node holds 110, so jobs queue for Pod
# slots on both operators; on a slow machine this keeps ours queueing instead of failing the last.
OURS_ENV = {"DKJ_OPERATOR_PENDING_TIMEOUT": "900"}
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
               "content-encoding", "upgrade"}


# -- upstream's virtualenv ------------------------------------------------------------------------

def upstream_version(venv: Path = UPSTREAM_VENV) -> str | None:
    """The installed dask-kubernetes version, or None if the virtualenv cannot run it."""
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m, dask_kubernetes.operator.controller; "
                            "print(m.version('dask-kubernetes'))"],
        capture_output=True, text=True, timeout=120)
    return probe.stdout.strip() if probe.returncode == 0 else None


def ensure_upstream(install: bool, venv: Path = UPSTREAM_VENV) -> tuple[str | None, str]:
    """(version, why-not): install upstream into its own virtualenv if allowed and missing."""
    version = upstream_version(venv)
    if version:
        return version, ""
    if not install:
        return None, (f"upstream not measured: no usable {UPSTREAM_PACKAGE} in {venv} and "
                      "--no-install was given (run `python bench/operator.py` once without it "
                      f"to create the virtualenv with `pip install {UPSTREAM_PACKAGE}`)")
    print(f"creating {venv} with `pip install {UPSTREAM_PACKAGE}` (first run only)...", flush=True)
    steps = [[sys.executable, "-m", "venv", str(venv)],
             [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", UPSTREAM_PACKAGE]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            return None, f"upstream not measured: `{' '.join(step)}` failed: {' / '.join(tail)}"
    version = upstream_version(venv)
    if not version:
        return None, f"upstream not measured: {UPSTREAM_MODULE} does not import from {venv}"
    return version, ""


def operator_command(which: str, kubeconfig: str) -> list[str]:
    if which == "ours":
        return [sys.executable, "-m", "dask_kube_jobs.operator", "-A", "--kubeconfig", kubeconfig]
    # Upstream's image runs its controller the same way: kopf with the controller module.
    return [str(UPSTREAM_VENV / "bin" / "kopf"), "run", "-m", UPSTREAM_MODULE, "--all-namespaces",
            "--standalone"]


# -- the counting proxy -----------------------------------------------------------------------------

@dataclass
class RequestCounter:
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, verb: str, resource: str) -> None:
        with self.lock:
            self.counts[(verb, resource)] += 1

    def snapshot(self) -> collections.Counter[tuple[str, str]]:
        with self.lock:
            return collections.Counter(self.counts)


def _classify(method: str, path: str, query: dict[str, str]) -> tuple[str, str]:
    """(verb, resource) as the API server's counters name them, e.g. ("watch", "pods")."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        parts = parts[2:]
    elif parts[:1] == ["apis"]:
        parts = parts[3:]
    else:
        return method.lower(), path
    if parts[:1] == ["namespaces"] and len(parts) >= 3:
        parts = parts[2:]
    resource = parts[0] if parts else "discovery"
    named = len(parts) >= 2
    if len(parts) >= 3:
        resource += "/" + parts[2]
    if method == "GET":
        verb = "watch" if query.get("watch") in ("true", "1") else ("get" if named else "list")
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if named else "deletecollection"}.get(method, method.lower())
    return verb, resource


class CountingProxy:
    """Plain-HTTP loopback proxy to the API server, counting each request it forwards."""

    def __init__(self, upstream: str, ca_cert: Path) -> None:
        self.upstream = upstream
        self.ca_cert = ca_cert
        self.counter = RequestCounter()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def start(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the counting proxy did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def kubeconfig(self, path: Path, token: str) -> str:
        kc.write(path, kc.build(f"http://127.0.0.1:{self.port}", token, ca_pem=None))
        return str(path)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ctx = ssl.create_default_context(cafile=str(self.ca_cert))
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=ctx),
                                        timeout=aiohttp.ClientTimeout(total=None),
                                        auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward(session))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()
        await session.close()

    def _forward(self, session: aiohttp.ClientSession):  # noqa: ANN202
        async def handle(request: web.Request) -> web.StreamResponse:
            verb, resource = _classify(request.method, request.path, dict(request.query))
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            body = await request.read()
            async with session.request(request.method, self.upstream + request.path_qs,
                                       headers=headers, data=body or None) as upstream:
                # Refusals count too (they cost the server as much), but are told apart.
                self.counter.add(verb, resource if upstream.status < 300
                                 else f"{resource} ({upstream.status})")
                out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for k, v in upstream.headers.items():
                    if k.lower() not in HOP_HEADERS:
                        out.headers[k] = v
                if upstream.headers.get("Content-Encoding"):
                    out.headers["Content-Encoding"] = upstream.headers["Content-Encoding"]
                # The operator closing a watch mid-stream (it does so on every restart) is normal.
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await out.prepare(request)
                    async for chunk in upstream.content.iter_any():
                        await out.write(chunk)
                return out
        return handle


# -- an operator process --------------------------------------------------------------------------

class OperatorProcess:
    """One operator, started in its own process group, with its peak RSS sampled while it runs."""

    def __init__(self, which: str, kubeconfig: str, log: Path) -> None:
        self.which = which
        self.kubeconfig = kubeconfig
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.peak_rss = 0
        self._sampling = False
        self._sampler: threading.Thread | None = None

    def start(self) -> OperatorProcess:
        env = dict(os.environ, KUBECONFIG=self.kubeconfig, PYTHONUNBUFFERED="1", **OURS_ENV)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(operator_command(self.which, self.kubeconfig), env=env,
                                         stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        return self

    def rss(self) -> int:
        """Resident memory of the operator and any children it forked (kopf forks none)."""
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            procs = [root, *root.children(recursive=True)]
            return sum(p.memory_info().rss for p in procs)
        except psutil.NoSuchProcess:
            return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time the operator (and any live child) has used so far."""
        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            times = [p.cpu_times() for p in (root, *root.children(recursive=True))]
            return sum(t.user + t.system for t in times)
        except psutil.NoSuchProcess:
            return 0.0

    def reset_peak(self) -> None:
        self.peak_rss = self.rss()

    def _sample(self) -> None:
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self.rss())
            time.sleep(0.1)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " / ".join(text[-lines:])

    def stop(self) -> None:
        self._sampling = False
        if self._sampler is not None:
            self._sampler.join(2)
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
