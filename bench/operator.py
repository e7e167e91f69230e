"""Benchmark of this project's Dask operator against upstream's (dask-kubernetes), side by side.

    python bench/operator.py [--quick] [--only ours|upstream] [--jobs 100] [--workers 50]
                             [--clusters 500] [--pods 5000] [--inflight 200] [--workloads a,b]
                             [--json FILE]

One local control plane (API server, controllers and process kubelet, no operator of its own)
serves both operators, which run one at a time as child processes, unmodified: ours as
``python -m dask_kube_jobs.operator -A``, upstream's as ``kopf run -m
dask_kubernetes.operator.controller --all-namespaces`` from its own virtualenv
(``bench/.venv-upstream``, created with pip on first run). Each workload gets a fresh operator
process and a fresh namespace, and both get the same manifests (our CRDs, which share upstream's
group, version and kinds; the report lists how the schemas differ).

Figures: DaskJob create -> jobStatus Running; create -> teardown done for a trivial job, beside
a floor (the same Pods created by a plain script, no operator: ``_operator_floor.py``); N
concurrent DaskJobs (makespan; API requests per job, counted by a proxy in front of the operator
and, for all clients, by the API server's /metrics); operator CPU seconds per job with N DaskJobs
in flight; a worker group scaled 0 -> W (until W Pods exist and until W workers are connected to
the scheduler); peak operator RSS at C DaskClusters and with P unrelated Pods present. Where an
operator cannot run a workload the report says why.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _operator_crds import compare, upstream_crds  # noqa: E402
from _operator_floor import FLOORS  # noqa: E402
from _operator_manifests import NO_SCHEDULER, unrelated_pod  # noqa: E402
from _operator_procs import UPSTREAM_VENV, CountingProxy, ensure_upstream  # noqa: E402
from _operator_workloads import (  # noqa: E402
    DASKJOBS,
    PODS,
    TRANSIENT,
    WORKLOADS,
    Env,
    WorkloadFailed,
    create,
    describe_pods,
    drop_namespace,
    new_namespace,
    operator_session,
)

from dask_kube_jobs.crds import load_crds  # noqa: E402
from dask_kube_jobs.kube import CRDS, APIError, Client  # noqa: E402
from dask_kube_jobs.local.launcher import LocalControlPlane  # noqa: E402

FULL = {"jobs": 100, "workers": 50, "clusters": 500, "pods": 5000, "inflight": 200}
QUICK = {"jobs": 3, "workers": 2, "clusters": 5, "pods": 50, "inflight": 5}
WHAT_RAN = {
    "to-running": "1 DaskJob: real `dask scheduler`, 0 workers, runner `time.sleep(300)`; "
                  "clock stops at status.jobStatus=Running, and at the runner Pod's phase Running",
    "trivial": "1 DaskJob: real `dask scheduler` + 1 `dask worker`, runner submits sum([1,2]); "
               "teardown done = Successful, DaskCluster deleted, no scheduler/worker Pod left. "
               "floor: no operator, the same scheduler Pod + Service + worker Pod + runner Pod at "
               "once (scheduler address injected), Successful "
               "= runner Succeeded, then all deleted; teardown done = scheduler and worker Pods "
               "gone",
    "jobs": "{jobs} DaskJobs created at once: stand-in scheduler (a Python process listening on "
            "8786/8787, so readiness passes at once), 0 workers, runner `pass`; requests counted "
            "from the first create until every scheduler Pod is gone",
    "scale": "1 DaskCluster (real scheduler, 0 workers), then DaskWorkerGroup <c>-default patched "
             "to {workers} replicas of `dask worker --nthreads 1`; connected = scheduler identity",
    "cpu": "{inflight} DaskJobs created at once, every Pod Pending (schedulerName "
           f"{NO_SCHEDULER}; the node holds 110 Pods): operator CPU (user+sys) from the first "
           "create until every job has its scheduler Pod, Service, DaskWorkerGroup and runner Pod "
           "(status ClusterCreated or Running), +5 s; then, once the operator has sent no "
           "request for 5 s, its CPU over the next 30 s",
    "clusters": "{clusters} DaskClusters (1 worker each), every Pod Pending (schedulerName "
                f"{NO_SCHEDULER}: no process); peak RSS from the first create to 5 s after the "
                "last Pod exists",
    "pods": "{pods} Pending Pods without Dask labels created before the operator starts; peak "
            "RSS from its start through its first reconcile + 10 s",
}


def _loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _install_crds(client: Client, crds: list[dict[str, Any]]) -> None:
    """Create or replace the four CRDs, as `helm upgrade` of each operator's chart would."""
    for crd in crds:
        name = crd["metadata"]["name"]
        current = await client.get(CRDS, None, name)
        if current is None:
            await client.create(CRDS, None, crd)
        else:
            body = {**crd, "metadata": {**crd["metadata"],
                                        "resourceVersion": current["metadata"]["resourceVersion"]}}
            await client.replace(CRDS, None, name, body)
    deadline = time.monotonic() + 60
    while True:
        try:
            await client.list(DASKJOBS, "default")
            return
        except APIError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def _create_unrelated(env: Env, n: int) -> str:
    ns = await new_namespace(env, "unrelated")
    queue = [unrelated_pod(f"app-{i}") for i in range(n)]

    async def creator() -> None:
        while queue:
            await create(env, PODS, ns, queue.pop())

    await asyncio.gather(*(creator() for _ in range(20)))
    return ns


async def run_all(plane: LocalControlPlane, operators: list[str], workloads: list[str],
                  sizes: dict[str, int], timeout: float, logs: Path,
                  crds: dict[str, list[dict[str, Any]]], count: bool) -> dict[str, Any]:
    token = yaml.safe_load(Path(plane.kubeconfig).read_text())["users"][0]["user"]["token"]
    client = await Client.connect(plane.kubeconfig)
    proxy = CountingProxy(plane.server, plane.state.ca_cert).start() if count else None
    env = Env(plane, client, proxy,
              proxy.kubeconfig(logs / "operator-kubeconfig.yaml", token) if proxy else plane.kubeconfig,
              logs, token, sizes, timeout)
    results: dict[str, dict[str, float]] = {op: {} for op in [*operators, "floor"]}
    errors: dict[str, dict[str, str]] = {op: {} for op in [*operators, "floor"]}
    durations: dict[str, dict[str, float]] = {op: {} for op in [*operators, "floor"]}
    installed = ""
    try:
        for workload in workloads:
            shared_ns = await _create_unrelated(env, sizes["pods"]) if workload == "pods" else None
            for which in operators:
                started = time.monotonic()
                print(f"[{dt.datetime.now():%H:%M:%S}] {which}: {workload} (load {_loadavg()})",
                      flush=True)
                try:
                    if installed != which:
                        await _install_crds(client, crds[which])
                        installed = which
                    async with operator_session(env, which, workload) as op:
                        ns = await new_namespace(env, workload)
                        try:
                            got = await asyncio.wait_for(WORKLOADS[workload](env, op, ns),
                                                         timeout * 6)
                            results[which].update(got)
                        except WorkloadFailed as exc:
                            raise WorkloadFailed(f"{exc}; {await describe_pods(env, ns)}") from exc
                        finally:
                            await drop_namespace(env, ns, 120)
                except (TimeoutError, WorkloadFailed, APIError, OSError, *TRANSIENT) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                    errors[which][workload] = reason
                    print(f"    {which}: {workload} FAILED: {reason}", flush=True)
                durations[which][workload] = time.monotonic() - started
            if workload in FLOORS:  # after the operators: no operator runs, and the cache is warm
                started = time.monotonic()
                print(f"[{dt.datetime.now():%H:%M:%S}] floor: {workload} (load {_loadavg()})",
                      flush=True)
                ns = await new_namespace(env, f"{workload}-floor")
                try:
                    results["floor"].update(await asyncio.wait_for(FLOORS[workload](env, ns),
                                                                   timeout * 6))
                except (TimeoutError, WorkloadFailed, APIError, OSError, *TRANSIENT) as exc:
                    errors["floor"][workload] = f"{type(exc).__name__}: {exc}"
                    print(f"    floor: {workload} FAILED: {errors['floor'][workload]}", flush=True)
                finally:
                    await drop_namespace(env, ns, 120)
                durations["floor"][workload] = time.monotonic() - started
            if shared_ns:
                await drop_namespace(env, shared_ns, 180)
    finally:
        if proxy:
            proxy.stop()
        await client.close()
    return {"results": results, "errors": errors, "seconds": durations, "notes": env.notes,
            "details": env.details}


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "—"


def report(run: dict[str, Any], operators: list[str], workloads: list[str], sizes: dict[str, int],
           header: list[str]) -> str:
    res, errs = run["results"], run["errors"]
    figures: list[str] = []
    for op in operators:
        figures += [f for f in res[op] if f not in figures]
    floor = res.get("floor") or {}
    lines = [*header, ""]
    lines.append(f"{'figure':<62}{'ours':>10}{'upstream':>10}{'ours/upstream':>15}"
                 + (f"{'floor':>10}{'ours/floor':>12}" if floor else ""))
    for f in figures:
        a, b, c = res.get("ours", {}).get(f), res.get("upstream", {}).get(f), floor.get(f)
        line = f"{f:<62}{_fmt(a):>10}{_fmt(b):>10}{_ratio(a, b):>15}"
        lines.append(line + (f"{_fmt(c):>10}{_ratio(a, c):>12}" if floor else ""))
    lines += ["", "Lower is better for every figure (seconds, requests, MiB, CPU)."]
    failures = [(op, w, why) for op in [*operators, "floor"] for w, why in errs.get(op, {}).items()]
    if failures:
        lines += ["", "Not measured:"]
        lines += [f"  {op} / {w}: {why}" for op, w, why in failures]
    for title, counts in run.get("details", {}).items():
        top = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8])
        lines += ["", f"{title} (top 8 of {sum(counts.values())}): {top}"]
    if run.get("notes"):
        lines += ["", "Notes:", *(f"  {n}" for n in run["notes"])]
    lines += ["", "What ran:"]
    lines += [f"  {w}: {WHAT_RAN[w].format(**sizes)}" for w in workloads]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"tiny sizes {QUICK} (smoke test)")
    parser.add_argument("--only", choices=("ours", "upstream"), help="measure one operator only")
    for key in FULL:
        parser.add_argument(f"--{key}", type=int, help=f"size (default {FULL[key]}, quick {QUICK[key]})")
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--timeout", type=float, help="base wait per step in seconds (default 120, quick 60)")
    parser.add_argument("--no-install", action="store_true",
                        help="never create upstream's virtualenv; report it missing instead")
    parser.add_argument("--crds", choices=("own", "ours"), default="own",
                        help="own: each operator with its chart's CRDs (default); ours: both on ours")
    parser.add_argument("--no-proxy", action="store_true",
                        help="operators talk to the API server directly (no per-operator request "
                             "count; only /metrics)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"--workloads: unknown {unknown}; choose from {','.join(WORKLOADS)}")
    timeout = args.timeout or (60.0 if args.quick else 120.0)

    began, load_before = time.monotonic(), _loadavg()
    operators = [args.only] if args.only else ["ours", "upstream"]
    header = [f"Dask operator benchmark, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, "
              f"{os.cpu_count()} cores, sizes {sizes}"]
    crds = {"ours": load_crds(), "upstream": load_crds()}
    if "upstream" in operators:
        version, why = ensure_upstream(install=not args.no_install)
        if version:
            header.append(f"upstream: dask-kubernetes {version} (kopf controller, {UPSTREAM_VENV})")
            header += [f"  CRDs: {line}" for line in compare(UPSTREAM_VENV)]
            if args.crds == "own":
                header.append("  Each operator runs with its own chart's CRDs (installed before "
                              "its turn); --crds ours runs upstream on ours.")
                crds["upstream"] = upstream_crds(UPSTREAM_VENV)
            else:
                header.append("  Both operators run against our CRDs (--crds ours).")
        else:
            operators.remove("upstream")
            header.append(why)
    header.append("API requests: 'operator' = every request the operator sent (a counting proxy "
                  "sits in front of it); '/metrics' = the API server's counters over the same "
                  "window, all clients (operator, kubelet, controllers, the benchmark's creates "
                  "and watches).")

    with tempfile.TemporaryDirectory(prefix="dkj-bench-op-") as tmp:
        plane = LocalControlPlane(Path(tmp) / "kubeconfig.yaml", state_dir=Path(tmp) / "state",
                                  operator=False)
        logs = Path(tmp) / "logs"
        logs.mkdir()
        try:
            with plane:
                run = asyncio.run(run_all(plane, operators, workloads, sizes, timeout, logs, crds,
                                         not args.no_proxy))
        finally:
            if os.environ.get("DKJ_BENCH_KEEP_LOGS"):  # operator and control-plane logs
                keep = Path(os.environ["DKJ_BENCH_KEEP_LOGS"])
                shutil.copytree(logs, keep, dirs_exist_ok=True)
                shutil.copytree(Path(tmp) / "state" / "logs", keep / "control-plane",
                                dirs_exist_ok=True)
    header.append(f"load average before {load_before}, after {_loadavg()}; wall time "
                  f"{time.monotonic() - began:.0f} s")
    shown = ["ours", "upstream"]
    for op in [*shown, "floor"]:
        run["results"].setdefault(op, {})
        run["errors"].setdefault(op, {})
    print("\n" + report(run, shown, workloads, sizes, header))
    if args.json:
        Path(args.json).write_text(json.dumps({"sizes": sizes, "header": header, **run}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
