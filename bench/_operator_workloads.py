"""The workloads, each run against one freshly started operator in a fresh namespace.

A workload observes the cluster through informers (one list, then a watch), never by polling,
so timings resolve to the watch event and the benchmark's own traffic stays a handful of
requests. Every figure is a wall-clock duration measured from the moment the benchmark sent the
request that starts it, or a peak resident set size sampled every 100 ms.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import kr8s
from _operator_manifests import TRIVIAL_RUNNER, daskcluster, daskjob
from _operator_procs import CountingProxy, OperatorProcess

from dask_kube_jobs.contract import names
from dask_kube_jobs.contract.api_resources import DASKCLUSTERS, DASKJOBS, DASKWORKERGROUPS
from dask_kube_jobs.contract.pods import pod_ready
from dask_kube_jobs.kube import (
    NAMESPACES,
    PODS,
    SERVICES,
    APIError,
    Client,
    Conflict,
    Informer,
    Resource,
)
from dask_kube_jobs.local.launcher import LocalControlPlane

Obj = dict[str, Any]
MiB = 2**20


# What an API server too busy to answer within the client's timeout raises.
TRANSIENT = (kr8s.APITimeoutError, httpx.HTTPError)


class WorkloadFailed(Exception):
    """The operator did not get the workload done; the message says what was seen."""


@dataclass
class Env:
    plane: LocalControlPlane
    client: Client
    proxy: CountingProxy | None
    operator_kubeconfig: str
    logs: Path
    token: str
    sizes: dict[str, int]
    timeout: float
    notes: list[str] = field(default_factory=list)
    details: dict[str, dict[str, int]] = field(default_factory=dict)


# -- observing --------------------------------------------------------------------------------------

class Watched:
    """An informer over one resource in one namespace, with a way to wait for a condition."""

    def __init__(self, client: Client, res: Resource, namespace: str, selector: str | None = None):
        self.informer = Informer(client, res, namespace=namespace, label_selector=selector)
        self.changed = asyncio.Event()
        self.informer.on_change(lambda *_: self.changed.set())
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watched:
        self.task = asyncio.create_task(self.informer.run())
        await asyncio.wait_for(self.informer.synced.wait(), 60)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def items(self) -> list[Obj]:
        return self.informer.items()

    async def until(self, what: str, predicate: Callable[[list[Obj]], bool], deadline: float,
                    op: OperatorProcess | None = None) -> float:
        """Wait for ``predicate(items)``; the monotonic time it first held. With ``op``, an
        operator that exits meanwhile ends the wait."""
        while True:
            self.changed.clear()
            if predicate(self.items()):
                return time.monotonic()
            if op is not None and not op.alive():
                raise WorkloadFailed(f"operator exited ({op.proc.returncode if op.proc else '?'}) "
                                     f"while waiting for {what}: {op.log_tail()}")
            left = deadline - time.monotonic()
            if left <= 0:
                log = f"; operator log: {op.log_tail(3)}" if op is not None else ""
                raise WorkloadFailed(f"timed out waiting for {what}{log}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))


def _status(obj: Obj, key: str) -> Any:
    return (obj.get("status") or {}).get(key)


def _component(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get("dask.org/component", "")


def _live(pods: list[Obj], component: str) -> list[Obj]:
    return [p for p in pods if _component(p) == component
            and not p["metadata"].get("deletionTimestamp")]


def api_counters(env: Env) -> collections.Counter[tuple[str, str]]:
    """The API server's own request counters (all clients), by verb and resource."""
    ctx = ssl.create_default_context(cafile=str(env.plane.state.ca_cert))
    req = urllib.request.Request(f"{env.plane.server}/metrics",
                                 headers={"Authorization": f"Bearer {env.token}"})
    with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
        text = resp.read().decode()
    out: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels, _, value = line.partition("} ")
            fields = dict(kv.split("=", 1) for kv in labels.split("{", 1)[1].split(","))
            out[(fields["verb"].strip('"'), fields["resource"].strip('"'))] += int(float(value))
    return out


async def describe_pods(env: Env, ns: str, limit: int = 4) -> str:
    """What the Pods of ``ns`` are doing, for a failure message: phase and container state."""
    try:
        pods, _ = await env.client.list(PODS, ns)
    except TRANSIENT as exc:
        return f"Pods: not listed ({type(exc).__name__})"
    out = []
    for pod in pods[:limit]:
        states = []
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            for kind, detail in (cs.get("state") or {}).items():
                bits = [kind, str(detail.get("reason") or ""), str(detail.get("exitCode", ""))]
                states.append(" ".join(b for b in bits if b))
        out.append(f"{pod['metadata']['name']}: {_status(pod, 'phase')} ({'; '.join(states)})")
    more = f" (+{len(pods) - limit} more)" if len(pods) > limit else ""
    return f"Pods: {', '.join(out) or 'none'}{more}"


async def create(env: Env, res: Resource, ns: str | None, body: Obj, attempts: int = 5) -> None:
    """Create, retrying a timed-out request; 409 after a retry means the first one landed."""
    for attempt in range(attempts):
        try:
            await env.client.create(res, ns, body)
            return
        except Conflict:
            if attempt:
                return
            raise
        except TRANSIENT:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1.0)


# -- namespaces and operator sessions ---------------------------------------------------------------

async def new_namespace(env: Env, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    await create(env, NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                         "metadata": {"name": name}})
    return name


async def drop_namespace(env: Env, ns: str, wait: float) -> None:
    """Delete ``ns`` and wait (bounded) until no Pod is left in it, so no process lingers.

    An overloaded API server (dozens of Dask processes starting on 2 cores) answers late, so
    timeouts here are retried until ``wait`` runs out, and then only noted.
    """
    deadline = time.monotonic() + wait
    deleted = False
    while time.monotonic() < deadline:
        try:
            if not deleted:
                with contextlib.suppress(APIError):
                    await env.client.delete(NAMESPACES, None, ns)
                deleted = True
            pods, _ = await env.client.list(PODS, ns)
            if not pods:
                return
        except TRANSIENT:
            pass
        await asyncio.sleep(0.5)
    env.notes.append(f"namespace {ns}: Pods still present {wait:.0f}s after its deletion")


@contextlib.asynccontextmanager
async def operator_session(env: Env, which: str, label: str) -> AsyncIterator[OperatorProcess]:
    """Start the operator, prove it reconciles (a throw-away DaskCluster), then hand it over."""
    op = OperatorProcess(which, env.operator_kubeconfig, env.logs / f"{which}-{label}.log").start()
    try:
        probe_ns = await new_namespace(env, f"probe-{which}")
        await create(env, DASKCLUSTERS, probe_ns, daskcluster("probe", workers=0, pending=True))
        async with Watched(env.client, PODS, probe_ns) as pods:
            await pods.until("the operator's first scheduler Pod",
                             lambda items: bool(_live(items, "scheduler")),
                             time.monotonic() + max(env.timeout, 120), op)
        await drop_namespace(env, probe_ns, 60)
        await asyncio.sleep(1.0)  # let the deletion's own events pass before anything is counted
        yield op
    finally:
        await asyncio.to_thread(op.stop)


# -- the workloads ------------------------------------------------------------------------------------

async def job_to_running(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """One DaskJob (real scheduler, no workers, a runner that sleeps): create → jobStatus Running."""
    body = daskjob("to-running", "import time; time.sleep(300)", workers=0)
    runners = f"dask.org/component={names.COMPONENT_RUNNER}"
    async with Watched(env.client, DASKJOBS, ns) as jobs, \
            Watched(env.client, PODS, ns, runners) as pods:
        start = time.monotonic()
        await create(env, DASKJOBS, ns, body)
        at = await jobs.until("jobStatus Running",
                              lambda items: any(_status(j, "jobStatus") in ("Running", "Successful")
                                                for j in items),
                              start + env.timeout, op)
        # The runner's process started: the phase both operators' "Running" stands for (ours
        # writes it when it creates the runner Pod, upstream when the Pod runs).
        pod_at = await pods.until("runner Pod Running",
                                  lambda items: any((p.get("status") or {}).get("phase") == "Running"
                                                    for p in items),
                                  start + env.timeout, op)
    return {"job: create → runner Running (s)": at - start,
            "job: create → runner Pod Running (s)": pod_at - start}


async def trivial_job(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """A trivial DaskJob (real scheduler + 1 worker, runner computes 1+2): create → torn down."""
    body = daskjob("trivial", TRIVIAL_RUNNER, workers=1)
    async with Watched(env.client, DASKJOBS, ns) as jobs, \
            Watched(env.client, DASKCLUSTERS, ns) as clusters, \
            Watched(env.client, PODS, ns) as pods:
        start = time.monotonic()
        await create(env, DASKJOBS, ns, body)
        ok = await jobs.until("jobStatus Successful",
                              lambda items: any(_status(j, "jobStatus") == "Successful"
                                                for j in items), start + env.timeout, op)
        failed = [j for j in jobs.items() if _status(j, "jobStatus") == "Failed"]
        if failed:
            raise WorkloadFailed(f"the trivial job failed: {_status(failed[0], 'message')}")
        await clusters.until("the job's DaskCluster deleted", lambda items: not items,
                             start + env.timeout, op)
        done = await pods.until("scheduler and worker Pods gone",
                                lambda items: not _live(items, "scheduler") and
                                not _live(items, "worker") and
                                not [p for p in items if _component(p) in ("scheduler", "worker")],
                                start + env.timeout, op)
    return {"trivial job: create → Successful (s)": ok - start,
            "trivial job: create → teardown done (s)": max(done, ok) - start}


async def many_jobs(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """N DaskJobs at once (stand-in scheduler, no workers, runner `pass`): makespan and requests."""
    n = env.sizes["jobs"]
    bodies = [daskjob(f"job-{i}", "pass", workers=0, scheduler="stand-in") for i in range(n)]
    async with Watched(env.client, DASKJOBS, ns) as jobs, \
            Watched(env.client, DASKCLUSTERS, ns) as clusters, \
            Watched(env.client, PODS, ns) as pods:
        ours_before = env.proxy.counter.snapshot() if env.proxy else collections.Counter()
        all_before = api_counters(env)
        start = time.monotonic()
        await asyncio.gather(*(create(env, DASKJOBS, ns, b) for b in bodies))

        def all_done(items: list[Obj]) -> bool:
            phases = [_status(j, "jobStatus") for j in items]
            if "Failed" in phases:
                raise WorkloadFailed(f"{phases.count('Failed')} of {n} jobs Failed")
            return phases.count("Successful") == n

        try:
            finished = await jobs.until(f"{n} jobs Successful", all_done, start + env.timeout * 3,
                                        op)
        except WorkloadFailed as exc:
            raise WorkloadFailed(f"{exc} ({_jobs_vs_runners(jobs.items(), pods.items())})") from exc
        await clusters.until(f"{n} DaskClusters deleted", lambda items: not items,
                             start + env.timeout * 3, op)
        torn = await pods.until("every scheduler Pod gone",
                                lambda items: not [p for p in items if _component(p) == "scheduler"],
                                start + env.timeout * 3, op)
        all_requests = sum((api_counters(env) - all_before).values())
        out = {f"{n} jobs: makespan, all Successful (s)": finished - start,
               f"{n} jobs: all torn down (s)": torn - start}
        if env.proxy:
            by_kind = env.proxy.counter.snapshot() - ours_before
            env.details[f"{op.which}: operator requests during the {n} jobs"] = {
                f"{verb} {res}": count for (verb, res), count in by_kind.most_common()}
            out[f"{n} jobs: operator API requests per job"] = sum(by_kind.values()) / n
        out[f"{n} jobs: all API requests per job (/metrics)"] = all_requests / n
    return out


# Seconds after the last job settles that still count towards its cost (status writes, Events and
# upstream's runner Pods trail the phase), and the window of the steady cost that follows.
SETTLE_TAIL = 5.0
#: The steady window starts once the operator has sent no request for this long (its trailing
#: status writes and Events are done), or after QUIET_AT_MOST seconds, whichever comes first.
QUIET_FOR = 5.0
QUIET_AT_MOST = 60.0


async def _quiet(env: Env) -> float:
    """Wait until the operator's proxy has counted no request for QUIET_FOR seconds; the
    seconds waited."""
    start = time.monotonic()
    if env.proxy is None:
        return 0.0
    last, since = sum(env.proxy.counter.snapshot().values()), time.monotonic()
    while time.monotonic() - start < QUIET_AT_MOST:
        await asyncio.sleep(0.5)
        now_count = sum(env.proxy.counter.snapshot().values())
        if now_count != last:
            last, since = now_count, time.monotonic()
        elif time.monotonic() - since >= QUIET_FOR:
            break
    return time.monotonic() - start
STEADY_WINDOW = 30.0


async def jobs_in_flight(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """N DaskJobs at once whose Pods all stay Pending: operator CPU per job, to settled and after.

    The local node holds 110 Pods and N=200 jobs need 400, so no Pod runs (schedulerName nothing
    serves): the figure is the operators' orchestration of jobs waiting for their clusters, the
    same for both. A job has settled once its scheduler Pod, Service, DaskWorkerGroup and runner
    Pod exist and its status says so (what each keeps while the scheduler is not up: upstream's
    ClusterCreated, ours Running, written with the runner Pod).
    """
    n = env.sizes["inflight"]
    bodies = [daskjob(f"f-{i}", "import time; time.sleep(3600)", workers=0,
                      scheduler="stand-in", pending=True) for i in range(n)]
    async with Watched(env.client, DASKJOBS, ns) as jobs, Watched(env.client, PODS, ns) as pods, \
            Watched(env.client, SERVICES, ns) as services, \
            Watched(env.client, DASKWORKERGROUPS, ns) as groups:
        ours_before = env.proxy.counter.snapshot() if env.proxy else collections.Counter()
        cpu_before = op.cpu_seconds()
        start = time.monotonic()
        await asyncio.gather(*(create(env, DASKJOBS, ns, b) for b in bodies))

        def settled(items: list[Obj]) -> bool:
            phases = [_status(j, "jobStatus") for j in items]
            if "Failed" in phases:
                raise WorkloadFailed(f"{phases.count('Failed')} of {n} jobs Failed")
            return sum(p in ("ClusterCreated", "Running") for p in phases) == n

        await jobs.until(f"{n} jobs ClusterCreated or Running", settled, start + env.timeout * 3, op)
        await pods.until(f"{n} scheduler Pods", lambda items: len(_live(items, "scheduler")) >= n,
                         start + env.timeout * 3, op)
        await pods.until(f"{n} runner Pods", lambda items: len(_live(items, "job-runner")) >= n,
                         start + env.timeout * 3, op)
        await services.until(f"{n} Services", lambda items: len(items) >= n,
                             start + env.timeout * 3, op)
        await groups.until(f"{n} DaskWorkerGroups", lambda items: len(items) >= n,
                           start + env.timeout * 3, op)
        at = time.monotonic()
        await asyncio.sleep(SETTLE_TAIL)
        cpu_settled = op.cpu_seconds()
        settled_counts = env.proxy.counter.snapshot() if env.proxy else collections.Counter()
        quiet_after = await _quiet(env)
        cpu_quiet = op.cpu_seconds()
        quiet_counts = env.proxy.counter.snapshot() if env.proxy else collections.Counter()
        await asyncio.sleep(STEADY_WINDOW)
        cpu_steady = op.cpu_seconds() - cpu_quiet
    out = {f"{n} jobs in flight: all settled (s)": at - start,
           f"{n} jobs in flight: settled to quiet (s)": quiet_after,
           f"{n} jobs in flight: operator CPU s per job, to settled": (cpu_settled - cpu_before) / n,
           f"{n} jobs in flight: operator CPU ms per job per minute, settled":
               cpu_steady / n / STEADY_WINDOW * 60 * 1000}
    if env.proxy:
        requests = settled_counts - ours_before
        env.details[f"{op.which}: operator requests until {n} jobs in flight settled"] = {
            f"{verb} {res}": count for (verb, res), count in requests.most_common()}
        steady = env.proxy.counter.snapshot() - quiet_counts
        env.details[f"{op.which}: operator requests in the {STEADY_WINDOW:.0f} s after"] = {
            f"{verb} {res}": count for (verb, res), count in steady.most_common()}
        out[f"{n} jobs in flight: operator API requests per job"] = sum(requests.values()) / n
    return out


def _jobs_vs_runners(jobs: list[Obj], pods: list[Obj]) -> str:
    """How many jobs are in which phase, and how many unfinished ones have a finished runner."""
    phases = collections.Counter(_status(j, "jobStatus") or "none" for j in jobs)
    done_runners = {p["metadata"]["labels"].get("dask.org/cluster-name") for p in pods
                    if _component(p) == "job-runner" and _status(p, "phase") == "Succeeded"}
    stale = [j["metadata"]["name"] for j in jobs if _status(j, "jobStatus") == "Running"
             and j["metadata"]["name"] in done_runners]
    return (f"jobs by status: {dict(phases)}; {len(stale)} Running jobs whose runner Pod has "
            f"Succeeded{': ' + ', '.join(sorted(stale)[:5]) if stale else ''}")


async def _scheduler_workers(address: str) -> int:
    from distributed.core import rpc

    async with rpc(address, timeout=5) as comm:
        identity = await comm.identity()
    return len(identity.get("workers") or {})


async def scale_up(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """A DaskCluster with 0 workers, then its default worker group patched to W replicas."""
    w = env.sizes["workers"]
    async with Watched(env.client, PODS, ns) as pods:
        await create(env, DASKCLUSTERS, ns, daskcluster("scale", workers=0))
        await pods.until("a ready scheduler Pod",
                         lambda items: any(pod_ready(p) for p in _live(items, "scheduler")),
                         time.monotonic() + env.timeout, op)
        scheduler = _live(pods.items(), "scheduler")[0]
        address = f"tcp://{scheduler['status']['podIP']}:8786"
        await _scheduler_workers(address)  # reachable before the clock starts
        ours_before = env.proxy.counter.snapshot() if env.proxy else collections.Counter()
        all_before = api_counters(env)
        start = time.monotonic()
        await env.client.patch(DASKWORKERGROUPS, ns, "scale-default",
                               {"spec": {"worker": {"replicas": w}}})
        exist = await pods.until(f"{w} worker Pods", lambda items: len(_live(items, "worker")) >= w,
                                 start + env.timeout * 2, op)
        deadline = start + env.timeout * 3
        connected = 0
        while connected < w:
            if time.monotonic() > deadline:
                raise WorkloadFailed(f"only {connected} of {w} workers connected to the scheduler")
            await asyncio.sleep(0.25)
            with contextlib.suppress(OSError, asyncio.TimeoutError):  # a scheduler busy starting
                connected = await _scheduler_workers(address)
        joined = time.monotonic()
    # What each worker costs the API server: upstream writes a Deployment per worker, and the
    # Deployment and ReplicaSet controllers write theirs; ours writes the Pod.
    everyone = api_counters(env) - all_before
    out = {f"scale 0→{w}: {w} worker Pods exist (s)": exist - start,
           f"scale 0→{w}: {w} workers connected (s)": joined - start,
           f"scale 0→{w}: all API requests per worker (/metrics)": sum(everyone.values()) / w}
    env.details[f"{op.which}: all requests during scale 0→{w} (/metrics)"] = {
        f"{verb} {res}": count for (verb, res), count in everyone.most_common()}
    if env.proxy:
        by_kind = env.proxy.counter.snapshot() - ours_before
        env.details[f"{op.which}: operator requests during scale 0→{w}"] = {
            f"{verb} {res}": count for (verb, res), count in by_kind.most_common()}
        out[f"scale 0→{w}: operator API requests per worker"] = sum(by_kind.values()) / w
    return out


async def many_clusters(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """C DaskClusters (1 worker each, Pods left Pending): time to all Pods and peak RSS."""
    c = env.sizes["clusters"]
    idle = op.rss()
    op.reset_peak()
    async with Watched(env.client, PODS, ns) as pods:
        start = time.monotonic()
        queue = [daskcluster(f"c-{i}", workers=1, pending=True) for i in range(c)]

        async def creator() -> None:
            while queue:
                await create(env, DASKCLUSTERS, ns, queue.pop())

        await asyncio.gather(*(creator() for _ in range(20)))
        out = {"operator idle RSS (MiB)": idle / MiB}
        try:
            done = await pods.until(f"{c} scheduler and {c} worker Pods",
                                    lambda items: len(_live(items, "scheduler")) >= c and
                                    len(_live(items, "worker")) >= c,
                                    start + env.timeout * 4, op)
            out[f"{c} DaskClusters: all Pods created (s)"] = done - start
        except WorkloadFailed as exc:
            if not op.alive():
                raise
            # Memory under this load is still worth reporting; how far it got is noted.
            env.notes.append(f"{op.which} / clusters: only {len(_live(pods.items(), 'scheduler'))} "
                             f"scheduler and {len(_live(pods.items(), 'worker'))} worker Pods of "
                             f"{c} each after {time.monotonic() - start:.0f} s ({str(exc)[:240]})")
        await asyncio.sleep(5)  # steady state: resyncs and timers run on every cluster
    out[f"{c} DaskClusters: peak operator RSS (MiB)"] = op.peak_rss / MiB
    return out


async def unrelated_pods(env: Env, op: OperatorProcess, ns: str) -> dict[str, float]:
    """P Pending Pods without Dask labels already exist (created once, before both operators):
    peak RSS from the operator's start through its initial sync and a settling period."""
    p = env.sizes["pods"]
    await asyncio.sleep(10)
    return {f"{p} unrelated Pods: peak operator RSS (MiB)": op.peak_rss / MiB}


WORKLOADS = {
    "to-running": job_to_running,
    "trivial": trivial_job,
    "jobs": many_jobs,
    "cpu": jobs_in_flight,
    "scale": scale_up,
    "clusters": many_clusters,
    "pods": unrelated_pods,
}
