"""Prometheus metrics of the operator, and the HTTP endpoint that serves them with readiness.

The counters and histograms are fed from two places only, ``handlers._loop`` (every reconcile
pass) and ``Runtime`` (wake-ups and status writes), so the reconcilers stay free of metrics code.
Gauges of what the operator manages are not kept up to date incrementally: a collector reads
them from the Runtime at scrape time, so they cannot drift from what the process really holds.

The metrics live in prometheus_client's default registry, next to its process, platform and GC
collectors, so a plugin's own metrics (registered the ordinary way) are served with ours.

Readiness is served by the same small aiohttp server (aiohttp comes with kopf): ready means
kopf's startup handlers have run, i.e. the Runtime is connected and its Pod informers have
synced. A standby replica (peering, not the leader) is ready too: it is healthy and would take
over at once; the response body and the ``dask_operator_leader`` gauge tell the two apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..contract.times import parse_time
from ..kube import Client, Resource

log = logging.getLogger("dask_kube_jobs.operator.metrics")

TERMINAL_JOB_PHASES = ("Successful", "Failed")

# No ``*_created`` series next to each counter and histogram: they double the series count and
# Prometheus does not need them (rate() handles a process restart by itself).
disable_created_metrics()

RECONCILES = Counter(
    "dask_operator_reconciles", "Reconcile passes, by kind and result (ok or error).",
    ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "dask_operator_reconcile_duration_seconds", "Time one reconcile pass took, by kind.",
    ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ERRORS = Counter(
    "dask_operator_reconcile_errors",
    "Reconcile passes that raised, by kind and exception type (retried with back-off).",
    ["kind", "type"])
QUEUE_LATENCY = Histogram(
    "dask_operator_queue_latency_seconds",
    "Time from a wake-up (a watch event on the object or one of its Pods) to the start of the "
    "reconcile pass it causes, by kind.",
    ["kind"], buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOB_OUTCOMES = Counter(
    "dask_operator_job_outcomes",
    "DaskJobs this process moved to a terminal phase, by phase and status reason.",
    ["phase", "reason"])
JOB_SECONDS = Histogram(
    "dask_operator_job_duration_seconds",
    "DaskJob run time, status.startTime (or creation) to status.endTime, by terminal phase.",
    ["phase"], buckets=(5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400))
LEADER = Gauge(
    "dask_operator_leader",
    "1 while this replica is the one that works (standalone, or the peering leader), else 0.")


# -- feeding the metrics ---------------------------------------------------------------------
@contextlib.contextmanager
def reconcile_pass(kind: str) -> Iterator[None]:
    """Count and time one reconcile pass; an exception is counted and passed on.

    A pass interrupted by cancellation (the object deleted, the operator stopping or pausing)
    is neither counted nor timed: it did not finish, and it did not fail."""
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:
        RECONCILES.labels(kind, "error").inc()
        ERRORS.labels(kind, type(exc).__name__).inc()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - start)


def observe_wakeup(kind: str, triggered_at: float) -> None:
    QUEUE_LATENCY.labels(kind).observe(max(0.0, time.monotonic() - triggered_at))


def observe_job_status_write(before: Mapping[str, Any], written: Mapping[str, Any],
                             after: Mapping[str, Any] | None) -> None:
    """Count a job's outcome when a status write moves it from non-terminal to terminal.

    ``before`` is the job as the pass read it, ``written`` the status fields sent, ``after``
    the server's answer. Only the write that sets the terminal phase counts, so later writes in
    the same pass do not, and neither does a restarted or newly elected operator: it reads the
    job as terminal already and never writes the transition again."""
    new = written.get("jobStatus")
    if after is None or new not in TERMINAL_JOB_PHASES:
        return
    if (before.get("status") or {}).get("jobStatus") in TERMINAL_JOB_PHASES:
        return
    status = after.get("status") or {}
    JOB_OUTCOMES.labels(new, status.get("reason") or "Unknown").inc()
    start = parse_time(status.get("startTime")) or \
        parse_time((after.get("metadata") or {}).get("creationTimestamp"))
    end = parse_time(status.get("endTime"))
    if start is not None and end is not None:
        JOB_SECONDS.labels(new).observe(max(0.0, (end - start).total_seconds()))


# -- gauges read at scrape time --------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """What one operator process manages right now (see ``Runtime.snapshot``)."""

    objects: Mapping[str, int]  # kind -> objects whose daemon runs in this process
    jobs: Mapping[str, int]  # DaskJob phase -> count, among those objects
    pods: Mapping[tuple[str, str], int]  # (component, phase) -> Pods in the informer cache


class StateCollector(Collector):
    """Turns the Runtime's snapshot into gauges when Prometheus scrapes."""

    KINDS = ("DaskCluster", "DaskWorkerGroup", "DaskJob", "DaskAutoscaler")

    def __init__(self) -> None:
        self.source: Callable[[], Snapshot] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        snap = self.source() if self.source is not None else Snapshot({}, {}, {})
        objects = GaugeMetricFamily(
            "dask_operator_managed_objects",
            "Custom objects this process reconciles (kopf daemons running), by kind.",
            labels=["kind"])
        for kind in self.KINDS:
            objects.add_metric([kind], snap.objects.get(kind, 0))
        yield objects
        jobs = GaugeMetricFamily(
            "dask_operator_jobs", "DaskJobs this process reconciles, by status.jobStatus "
            "(New before the first status write).", labels=["phase"])
        for phase, count in sorted(snap.jobs.items()):
            jobs.add_metric([phase], count)
        yield jobs
        pods = GaugeMetricFamily(
            "dask_operator_pods", "Pods carrying the dask.org/component label in the watched "
            "namespaces (informer cache), by component and phase.", labels=["component", "phase"])
        for (component, phase), count in sorted(snap.pods.items()):
            pods.add_metric([component, phase], count)
        yield pods


STATE = StateCollector()
REGISTRY.register(STATE)


# -- leadership ------------------------------------------------------------------------------
KOPF_PEERINGS = Resource("kopf.dev", "v1", "kopfpeerings", "KopfPeering", True)
CLUSTER_KOPF_PEERINGS = Resource("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering",
                                 False)


def _alive(info: Mapping[str, Any], now: datetime.datetime) -> bool:
    seen = parse_time(info.get("lastseen"))
    if seen is None:
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.timezone.utc)
    return seen + datetime.timedelta(seconds=int(info.get("lifetime", 60))) > now


def leads(peers: Mapping[str, Any], identity: str, *, now: datetime.datetime | None = None) -> bool:
    """Whether ``identity`` works by kopf's rule, given a peering object's ``status``: it is
    alive there and no other live peer has an equal or higher priority."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    me = peers.get(identity)
    if not isinstance(me, Mapping) or not _alive(me, now):
        return False
    mine = int(me.get("priority", 0))
    return not any(isinstance(info, Mapping) and other != identity and _alive(info, now)
                   and int(info.get("priority", 0)) >= mine
                   for other, info in peers.items())


@dataclass
class OperatorStatus:
    """What the probe endpoint needs to know about the running operator."""

    ready: asyncio.Event = field(default_factory=asyncio.Event)  # kopf raises it after startup
    client: Callable[[], Client | None] = lambda: None
    peering: str | None = None  # the KopfPeering name; None: standalone
    identity: str = ""
    namespaces: list[str] | None = None  # None: cluster-wide peering

    async def role(self) -> str:
        """``standalone``, ``active``, ``standby``, or ``unknown`` (peering unreadable)."""
        if self.peering is None:
            return "standalone"
        client = self.client()
        if client is None:
            return "unknown"
        try:
            for ns in self.namespaces or [None]:  # type: ignore[list-item]
                res = KOPF_PEERINGS if ns else CLUSTER_KOPF_PEERINGS
                obj = await client.get(res, ns, self.peering)
                if obj is None or not leads(obj.get("status") or {}, self.identity):
                    return "standby"
        except Exception as exc:  # a probe must answer even when the API does not
            log.debug("cannot read peering %s: %s", self.peering, exc)
            return "unknown"
        return "active"


# -- the HTTP endpoint -----------------------------------------------------------------------
def parse_endpoint(url: str, option: str) -> tuple[str, int, str]:
    """``http://HOST:PORT/PATH`` -> (host, port, path), with a clear error for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"{option} {url!r}: expected http://HOST:PORT/PATH, e.g. "
                         f"http://0.0.0.0:9090/metrics")
    return parts.hostname, parts.port, parts.path or "/"


async def serve(status: OperatorStatus, *, metrics: str | None,
                readiness: str | None) -> list[web.AppRunner]:
    """Start one server per distinct host:port among the URLs; the caller cleans them up."""
    routes: dict[tuple[str, int], list[web.RouteDef]] = {}
    options: dict[tuple[str, int], list[str]] = {}

    async def metrics_view(_: web.Request) -> web.Response:
        role = await status.role()
        LEADER.set(1 if role in ("standalone", "active") else 0)
        body = generate_latest(REGISTRY)  # in the loop: the collector reads the Runtime's dicts
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def readiness_view(_: web.Request) -> web.Response:
        if not status.ready.is_set():
            return web.json_response({"ready": False, "reason": "starting"}, status=503)
        return web.json_response({"ready": True, "role": await status.role()})

    for url, option, view in ((metrics, "--metrics", metrics_view),
                              (readiness, "--readiness", readiness_view)):
        if url:
            host, port, path = parse_endpoint(url, option)
            routes.setdefault((host, port), []).append(web.get(path, view))
            options.setdefault((host, port), []).append(option)
    runners = []
    try:
        for (host, port), defs in routes.items():
            app = web.Application()
            app.add_routes(defs)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            try:
                await web.TCPSite(runner, host, port).start()
            except OSError as exc:
                raise SystemExit(f"dask-kube-jobs operator: {' and '.join(options[host, port])} "
                                 f"cannot listen on {host}:{port}: {exc.strerror or exc}. Choose "
                                 "another port (the --liveness port is kopf's own).") from exc
    except BaseException:
        for runner in runners:
            await runner.cleanup()
        raise
    return runners
