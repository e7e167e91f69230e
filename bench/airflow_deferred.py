"""Benchmark: N deferred DaskJob tasks waiting at once in one triggerer, watching vs polling.

    python bench/airflow_deferred.py [--jobs 50] [--seconds 120] [--poll-interval 10] [--quick]

What waits: N DaskJobs with ``spec.suspend: true`` on a local control plane started without
the operator, the kubelet or the controllers. Nothing acts on them, so every trigger simply
waits, as the trigger of a deferred task waits for a long job, without costing N Dask clusters
of processes. After the measurement window the benchmark patches each job's status to
``Successful`` and times how long its trigger takes to fire.

Who waits: a harness process that runs all N triggers in one asyncio event loop, each as
``async for event in trigger.run()`` after a ``serialize()`` round trip, the way Airflow's
triggerer runs the triggers it picked up. It is not a real ``airflow triggerer`` process (that
needs a scheduler, a metadata database and N deferred task instances): the trigger code and the
event loop are the real ones; the triggerer's database bookkeeping, the same for both sides, is
left out.

Ours: ``DaskJobTrigger`` as the operator defers to it (``follow_logs=True``): a list-then-watch
of its one job plus the runner-log follower, which here waits for a runner Pod that never
comes (a follower that polled the job meanwhile shows up in this column). "ours, watch only"
is the same trigger with ``follow_logs=False``: the watch alone, which is also what a running
job's wait costs apart from its one log stream.

The polling peer: the waiting pattern of the cncf.kubernetes provider's deferrable
``KubernetesJobOperator``, whose ``KubernetesJobTrigger`` waits in
``AsyncKubernetesHook.wait_until_job_complete``: every ``poll_interval`` seconds (10 by default)
it builds a new API client from the connection (re-reading the kubeconfig), reads the job's
``/status``, closes the client and logs two lines. ``PollingDaskJobTrigger`` below does exactly
that against the DaskJob with this project's client, so only the waiting pattern differs. The
provider's ``KubernetesPodTrigger`` polls its Pod every 2 s by default: ``--poll-interval 2``.

Figures, over a steady window that starts once every trigger is waiting: API requests per
waiting job per minute, from the API server's own ``apiserver_request_total`` counters (nothing
else talks to that server meanwhile); the harness process's CPU seconds per minute (psutil, user
plus system); its TCP connections and resident memory; the requests each trigger needed to
start waiting; and the reaction latency from the status PATCH to the trigger's event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dask_kube_jobs import kube  # noqa: E402
from dask_kube_jobs.contract.api_resources import DASKJOBS  # noqa: E402
from dask_kube_jobs.crds import load_crd  # noqa: E402
from dask_kube_jobs.local.launcher import LocalControlPlane  # noqa: E402
from dask_kube_jobs.spec import make_job_spec  # noqa: E402

EVENT_PREFIX = "@@bench "  # harness stdout lines carrying an event; anything else is log
VARIANTS = ("ours", "ours-watch-only", "peer")
HARNESS = ("a harness process running the triggers in one asyncio loop as the triggerer does "
           "(`async for event in trigger.run()`), not a real `airflow triggerer`")
_COUNTER = re.compile(r'^apiserver_request_total\{verb="([^"]*)"[^}]*\}\s+(\d+)', re.M)


# -- the harness: runs in its own process, one event loop, N triggers ---------------------------

def _peer_trigger_class() -> type:
    """``PollingDaskJobTrigger``, defined only where Airflow is imported (the harness)."""
    import kr8s.asyncio
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    from dask_kube_jobs.airflow_provider._jobwait import is_terminal, outcome
    from dask_kube_jobs.airflow_provider.hooks.daskjob import DaskKubeJobsHook, _api_kwargs

    class PollingDaskJobTrigger(BaseTrigger):
        """The cncf.kubernetes job-trigger wait, pointed at a DaskJob (see the module doc)."""

        def __init__(self, *, name: str, namespace: str, conn_id: str, poll_interval: float):
            super().__init__()
            self.name, self.namespace = name, namespace
            self.conn_id, self.poll_interval = conn_id, poll_interval

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return (f"{type(self).__module__}.{type(self).__qualname__}",
                    {"name": self.name, "namespace": self.namespace, "conn_id": self.conn_id,
                     "poll_interval": self.poll_interval})

        async def _read_status(self, target: Any) -> dict[str, Any]:
            # A new client per poll, as the provider's `async with self.get_conn()` does: the
            # kubeconfig is loaded again and a new connection (TCP + TLS) opened, then closed.
            kwargs = await asyncio.to_thread(_api_kwargs, target)
            api = kr8s.asyncio.Api(bypass_factory=True, **kwargs)
            await api.auth  # loads the kubeconfig; no /version call, like load_kube_config
            client = kube.Client(api, kwargs.get("kubeconfig") or "")
            try:
                return await client.request(
                    "GET", DASKJOBS.path(self.namespace, self.name, "status"))
            finally:
                await client.close()

        async def run(self) -> AsyncIterator[Any]:
            target = await DaskKubeJobsHook(self.conn_id).aget_target()  # extras, read once
            while True:
                self.log.info("Requesting status for the job '%s' ", self.name)
                job = await self._read_status(target)
                if is_terminal(job):
                    break
                self.log.info("The job '%s' is incomplete. Sleeping for %i sec.", self.name,
                              self.poll_interval)
                await asyncio.sleep(self.poll_interval)
            yield TriggerEvent(outcome(job))

    return PollingDaskJobTrigger


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(EVENT_PREFIX + json.dumps(record) + "\n")
    sys.stdout.flush()


async def _run_triggers(triggers: list[Any]) -> None:
    async def one(trigger: Any) -> None:
        async for event in trigger.run():
            payload = event.payload
            _emit({"name": trigger.name, "status": payload.get("status"), "t": time.time()})

    _emit({"started": len(triggers)})
    await asyncio.gather(*(one(t) for t in triggers))


def harness_main(variant: str, namespace: str, names: list[str], poll_interval: float) -> None:
    """Entry point of the harness process (``--harness``): build, round-trip, run."""
    import logging

    from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger

    # Trigger logs go to stderr (a file the parent keeps); per-request client logs would be a
    # cost of this harness, not of either waiting pattern.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if variant.startswith("ours"):
        built = [DaskJobTrigger(name=n, namespace=namespace,
                                follow_logs=variant == "ours") for n in names]
    else:
        peer = _peer_trigger_class()
        built = [peer(name=n, namespace=namespace, conn_id="dask_kube_jobs_default",
                      poll_interval=poll_interval) for n in names]
    triggers = []
    for trigger in built:  # rebuilt from what the trigger table would hold
        _, kwargs = trigger.serialize()
        triggers.append(type(trigger)(**json.loads(json.dumps(kwargs))))
    asyncio.run(_run_triggers(triggers))


# -- the driver ---------------------------------------------------------------------------------

class Metrics:
    """Reads the local API server's request counters over HTTPS with the admin token."""

    def __init__(self, plane: LocalControlPlane) -> None:
        config = yaml.safe_load(Path(plane.kubeconfig).read_text())
        token = config["users"][0]["user"]["token"]
        self.url = plane.server + "/metrics"
        self.http = httpx.AsyncClient(verify=ssl.create_default_context(
                                          cafile=str(plane.state.ca_cert)),
                                      headers={"Authorization": f"Bearer {token}"})

    async def read(self) -> tuple[int, int]:
        """(requests served so far, of which watch requests). Watch *requests*, not the
        server's open-watcher gauge: a watch whose client went away is only noticed at its
        next write, so the gauge lags behind a harness that exited."""
        response = await self.http.get(self.url)
        response.raise_for_status()
        counts = [(verb, int(n)) for verb, n in _COUNTER.findall(response.text)]
        return sum(n for _, n in counts), sum(n for verb, n in counts if verb == "watch")

    async def close(self) -> None:
        await self.http.aclose()


async def _prepare(client: kube.Client) -> None:
    """The DaskJob CRD only: without the operator the control plane installs none."""
    with contextlib.suppress(kube.APIError):
        await client.create(kube.CRDS, None, load_crd("DaskJob"))
    for _ in range(200):
        try:
            await client.list(DASKJOBS, "default")
            return
        except kube.APIError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the DaskJob CRD was not served within 20 s")


async def _create_jobs(client: kube.Client, namespace: str, n: int) -> list[str]:
    await client.create(kube.NAMESPACES, None, {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": namespace}})
    names = [f"wait-{i:04d}" for i in range(n)]
    sem = asyncio.Semaphore(8)

    async def create(name: str) -> None:
        async with sem:
            await client.create(DASKJOBS, namespace, make_job_spec(
                name, script="print('never runs')", n_workers=1, suspend=True))

    await asyncio.gather(*(create(name) for name in names))
    return names


async def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.25)


async def run_variant(plane: LocalControlPlane, client: kube.Client, metrics: Metrics,
                      variant: str, *, jobs: int, seconds: float, poll_interval: float,
                      workdir: Path) -> dict[str, float]:
    """Start N waits of one kind, measure a steady window, then finish the jobs and time it."""
    namespace = f"bench-{variant}"
    names = await _create_jobs(client, namespace, jobs)
    env = {**os.environ, "AIRFLOW_HOME": str(workdir / f"airflow-{variant}"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir}/airflow-{variant}.db",
           "AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT": json.dumps({
               "conn_type": "dask_kube_jobs",
               "extra": {"kube_config_path": plane.kubeconfig, "namespace": namespace}})}
    Path(env["AIRFLOW_HOME"]).mkdir(exist_ok=True)
    requests_before, watches_before = await metrics.read()
    log = open(workdir / f"harness-{variant}.log", "wb")  # noqa: SIM115 - closed below
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).resolve()), "--harness", variant,
        "--namespace", namespace, "--names", ",".join(names),
        "--poll-interval", str(poll_interval),
        stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, env=env)
    events: dict[str, tuple[str, float]] = {}
    started = asyncio.Event()

    async def read_events() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if not line.startswith(EVENT_PREFIX):
                log.write(raw)
                continue
            record = json.loads(line[len(EVENT_PREFIX):])
            if "started" in record:
                started.set()
            else:
                events[record["name"]] = (record["status"], record["t"])

    reader = asyncio.create_task(read_events())
    try:
        await asyncio.wait_for(started.wait(), 180)
        if variant.startswith("ours"):  # every trigger has listed and opened its watch
            async def waiting() -> bool:
                return (await metrics.read())[1] >= watches_before + jobs
        else:  # every trigger has polled once
            async def waiting() -> bool:
                return (await metrics.read())[0] - requests_before >= jobs
        await _wait_until(waiting, 120, f"{jobs} {variant} triggers to be waiting")
        await asyncio.sleep(1.0)
        if events:
            raise RuntimeError(f"{variant}: triggers fired before any job finished: {events}")
        harness = psutil.Process(proc.pid)
        requests_start, _ = await metrics.read()
        cpu_start, wall_start = sum(harness.cpu_times()[:2]), time.monotonic()
        await asyncio.sleep(seconds / 2)
        connections = sum(1 for c in harness.net_connections(kind="tcp")
                          if c.status == psutil.CONN_ESTABLISHED)
        await asyncio.sleep(seconds / 2)
        requests_end, _ = await metrics.read()
        cpu_end, wall_end = sum(harness.cpu_times()[:2]), time.monotonic()
        rss = harness.memory_info().rss

        # Finish the jobs spread evenly over one poll interval: the peer's polls are in step
        # (its triggers started together), so finishing all at once would measure one phase.
        sent: dict[str, float] = {}
        finish_start = time.monotonic()
        for i, name in enumerate(names):
            await asyncio.sleep(max(0.0, finish_start + i * poll_interval / jobs
                                    - time.monotonic()))
            sent[name] = time.time()
            await client.patch(DASKJOBS, namespace, name,
                               {"status": {"jobStatus": "Successful", "result": {"job": name}}},
                               sub="status")

        async def all_fired() -> bool:
            return len(events) >= jobs
        await _wait_until(all_fired, 3 * poll_interval + 60, f"all {variant} triggers to fire")
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        log.close()
    if {status for status, _ in events.values()} != {"success"}:
        raise RuntimeError(f"{variant}: unexpected events {events}")
    latencies = sorted(events[name][1] - sent[name] for name in names)
    minutes = (wall_end - wall_start) / 60
    return {
        "API requests / waiting job / minute": (requests_end - requests_start) / jobs / minutes,
        "triggerer CPU s / minute": (cpu_end - cpu_start) / minutes,
        "triggerer CPU ms / job / minute": (cpu_end - cpu_start) * 1000 / jobs / minutes,
        "API requests / job to start waiting": (requests_start - requests_before) / jobs,
        "TCP connections open (mid-window)": float(connections),
        "triggerer RSS (MiB)": rss / 2**20,
        "reaction latency median (s)": statistics.median(latencies),
        "reaction latency max (s)": latencies[-1],
        "events": float(len(events)),
    }


async def run_benchmark(*, jobs: int, seconds: float, poll_interval: float) -> dict[str, Any]:
    """Both variants against one fresh control plane, one after the other."""
    with tempfile.TemporaryDirectory(prefix="dkj-bench-deferred-") as tmp:
        workdir = Path(tmp)
        plane = LocalControlPlane(workdir / "kubeconfig.yaml", state_dir=workdir / "state",
                                  kubelet=False, operator=False, controllers=False)
        async with plane:
            client = await kube.Client.connect(plane.kubeconfig)
            metrics = Metrics(plane)
            try:
                await _prepare(client)
                results = {variant: await run_variant(
                    plane, client, metrics, variant, jobs=jobs, seconds=seconds,
                    poll_interval=poll_interval, workdir=workdir) for variant in VARIANTS}
            finally:
                await metrics.close()
                await client.close()
    return {"jobs": jobs, "seconds": seconds, "poll_interval": poll_interval,
            "load_average": os.getloadavg(), **results}


def format_table(results: dict[str, Any]) -> str:
    ours, watch, peer = results["ours"], results["ours-watch-only"], results["peer"]
    lines = [
        f"\n{results['jobs']} deferred DaskJob waits in one triggerer event loop, "
        f"{results['seconds']:.0f} s steady window; polling peer every "
        f"{results['poll_interval']:g} s",
        f"Triggers run by {HARNESS}.",
        "Load average at the end (1, 5, 15 min): "
        + ", ".join(f"{x:.2f}" for x in results["load_average"]) + f" on {os.cpu_count()} cores\n",
        f"{'figure':<38}{'ours':>10}{'ours, watch only':>18}{'polling peer':>14}"
        f"{'ours/peer':>11}{'watch/peer':>12}",
    ]

    def ratio(a: float, b: float, width: int) -> str:
        return f"{a / b:>{width}.3f}" if b else f"{'-':>{width}}"

    for key in ours:
        if key == "events":
            continue
        a, w, b = ours[key], watch[key], peer[key]
        lines.append(f"{key:<38}{a:>10.3f}{w:>18.3f}{b:>14.3f}{ratio(a, b, 11)}"
                     f"{ratio(w, b, 12)}")
    lines.append(
        "\nLower is better everywhere. Ours: DaskJobTrigger as the operator defers it (watch +"
        " runner-log follower, no runner yet). Watch only: follow_logs=False. Peer: the"
        " cncf.kubernetes KubernetesJobTrigger wait (new client + GET /status per poll).")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=50, help="waiting jobs (default 50)")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="length of the steady measurement window (default 120)")
    parser.add_argument("--poll-interval", type=float, default=10.0,
                        help="the peer's poll interval (default 10, the provider's job default)")
    parser.add_argument("--quick", action="store_true", help="10 jobs, a 20 s window")
    parser.add_argument("--harness", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--namespace", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.harness:
        harness_main(args.harness, args.namespace, args.names.split(","), args.poll_interval)
        return
    if args.jobs < 1 or args.seconds <= 0 or args.poll_interval <= 0:
        parser.error("--jobs, --seconds and --poll-interval must be positive")
    if args.quick:
        args.jobs, args.seconds = 10, 20.0
    results = asyncio.run(run_benchmark(jobs=args.jobs, seconds=args.seconds,
                                        poll_interval=args.poll_interval))
    print(format_table(results))


if __name__ == "__main__":
    main()
