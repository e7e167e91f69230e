"""The job commands of ``dask-kube-jobs``: run, submit, status, list, logs, delete, gen.

Kept apart from ``cli.py`` (which owns parsing, error display and the ``local`` commands) so
each stays a readable size. Every command is a thin layer over the async job API
(``dask_kube_jobs.jobs._async``), run with ``asyncio.run``: ``run`` needs two things at once -- the
phase display on stderr and the runner's log on stdout -- and Ctrl-C must reach the code that
deletes the job, which ``asyncio.run`` gives by cancelling the main task on SIGINT.

``run`` is the README's main command::

    dask-kube-jobs run --local examples/simple-job.yaml

It exits with the runner's exit code (0 on success; the failed runner's code, or 1 when there
is none), 124 after ``--timeout``, 130 on Ctrl-C; stdout carries only the runner's log and, as
its last line, the job's result as JSON (if the runner set one).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from .errors import DaskJobFailed, DaskKubeJobsError, JobAlreadyExists, WaitTimeout
from .jobs import _async
from .jobs._client import close_clients
from .jobs._manifest import load_job_manifest, with_cluster_ref
from .jobs._status import JobStatus
from .spec import DEFAULT_IMAGE, SpecError, make_cluster_spec, make_job_spec

EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130


# -- building the manifest -----------------------------------------------------------------------
def _env(pairs: list[str] | None) -> dict[str, str] | None:
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError("--env", f"{pair!r} must look like NAME=VALUE")
        out[key] = value
    return out or None


def _auto_name(hint: str) -> str:
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "job"
    if not base[0].isalpha():
        base = f"job-{base}"
    return f"{base}-{secrets.token_hex(3)}"


def job_manifest(args: argparse.Namespace) -> dict[str, Any]:
    """The DaskJob ``run``/``submit``/``gen job`` describe: from FILE, or built from flags."""
    command = list(getattr(args, "argv", None) or []) or None
    cluster = getattr(args, "cluster", None)
    if cluster is not None and args.workers is not None:
        raise SpecError("--workers", "sizes a cluster made for the job; with --cluster the job "
                        "uses that cluster's workers")
    if args.file:
        if args.image or args.script or command:
            raise SpecError("FILE", "give a manifest FILE or --image/--script/-- command, "
                            "not both")
        manifest = load_job_manifest(Path(args.file))
        if getattr(args, "name", None):
            manifest.setdefault("metadata", {})["name"] = args.name
        if args.workers is not None:
            worker = (((manifest.get("spec") or {}).get("cluster") or {}).get("spec") or {}) \
                .get("worker")
            if not isinstance(worker, dict):
                raise SpecError("--workers", "the manifest has no spec.cluster.spec.worker")
            worker["replicas"] = args.workers
        return with_cluster_ref(manifest, cluster) if cluster is not None else manifest
    if not args.script and not command:
        raise SpecError("FILE", "give a manifest FILE, --script PATH, or --image IMAGE -- "
                        "COMMAND...")
    hint = Path(args.script).stem if args.script else Path(command[0]).name  # type: ignore[index]
    name = getattr(args, "name", None) or _auto_name(hint)
    return make_job_spec(name, image=args.image or DEFAULT_IMAGE, command=command,
                         script=args.script, n_workers=3 if args.workers is None else args.workers,
                         env=_env(args.env), backoff_limit=args.backoff_limit,
                         active_deadline_seconds=args.deadline,
                         ttl_seconds_after_finished=args.ttl, cluster_ref=cluster)


# -- progress --------------------------------------------------------------------------------------
class Progress:
    """One stderr line per phase change, with the time since submission; silent if quiet."""

    def __init__(self, quiet: bool, stream: TextIO | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last: tuple[Any, ...] = ()

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:6.1f}s] {text}", file=self.stream, flush=True)

    def update(self, st: JobStatus) -> None:
        key = (st.phase, st.attempts, st.runner_pod, st.reason)
        if key == self.last or not st.phase:
            return
        self.last = key
        if st.phase == "JobCreated" and st.reason and st.message:
            # held by the operator before it starts (e.g. a server-side limit): say why
            self.say(f"JobCreated (waiting: {st.message})")
            return
        detail = {
            "ClusterCreated": f"Dask cluster {st.cluster_name}",
            "Running": f"runner {st.runner_pod}" + (f", attempt {st.attempts}"
                                                     if st.attempts > 1 else ""),
            "Successful": "exit code 0",
            "Failed": ", ".join(str(x) for x in (st.reason, st.message) if x),
        }.get(st.phase or "", "")
        self.say(f"{st.phase}" + (f" ({detail})" if detail else ""))


# -- run -------------------------------------------------------------------------------------------
async def _stream_logs(job: _async.AsyncDaskJobHandle, out: TextIO) -> None:
    async for line in job.logs(follow=True):
        print(line, file=out, flush=True)


async def _follow(job: _async.AsyncDaskJobHandle, progress: Progress, out: TextIO,
                  timeout: float | None) -> int:
    logs = asyncio.create_task(_stream_logs(job, out), name="dask-kube-jobs-logs")
    try:
        final: JobStatus | None = None
        scope = asyncio.timeout(timeout)
        try:
            async with scope:
                async for st in job.watch():
                    progress.update(st)
                    final = st
        except TimeoutError:
            if scope.expired():
                raise WaitTimeout(job.name, job.namespace, float(timeout or 0),
                                  job.phase, final.message if final else None) from None
            raise
        # the log ends shortly after the job: let it drain, but do not hang on it
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(logs), 30)
        assert final is not None and final.done
        if final.phase == "Failed":
            exc = DaskJobFailed(final.exit_code, final.reason, final.message, final.log_tail,
                                job.name, namespace=job.namespace, status=final)
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return final.exit_code or 1
        if final.result is not None:
            print(json.dumps(final.result), file=out, flush=True)
        return 0
    finally:
        # Ctrl-C must end the command promptly: the log stream gets a few seconds to close
        # its connections, never the power to hold the exit.
        logs.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait([logs], timeout=5)


async def _submit(args: argparse.Namespace, manifest: dict[str, Any],
                  kubeconfig: str | None) -> _async.AsyncDaskJobHandle:
    try:
        return await _async.submit(manifest, namespace=args.namespace, kubeconfig=kubeconfig)
    except JobAlreadyExists:
        if not getattr(args, "replace", False):
            raise
        old = await _async.get_job(manifest["metadata"]["name"], args.namespace,
                                   kubeconfig=kubeconfig)
        await old.delete(wait=True)
        return await _async.submit(manifest, namespace=args.namespace, kubeconfig=kubeconfig)


async def _run_async(args: argparse.Namespace, manifest: dict[str, Any], kubeconfig: str | None,
                     progress: Progress) -> int:
    job: _async.AsyncDaskJobHandle | None = None
    try:
        job = await _submit(args, manifest, kubeconfig)
        progress.say(f"submitted DaskJob {job.namespace}/{job.name}")
        return await _follow(job, progress, sys.stdout, args.timeout)
    except (asyncio.CancelledError, WaitTimeout) as exc:
        if job is not None and not args.keep:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(job.delete(wait=False), 10)
            progress.say(f"deleted DaskJob {job.namespace}/{job.name}"
                         + (" (interrupted)" if isinstance(exc, asyncio.CancelledError) else ""))
        if isinstance(exc, WaitTimeout):
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_TIMEOUT
        raise
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(close_clients(), 5)


def cmd_run(args: argparse.Namespace) -> int:
    manifest = job_manifest(args)
    progress = Progress(args.quiet)
    plane = None
    kubeconfig = args.kubeconfig
    try:
        if args.local:
            if kubeconfig:
                raise SpecError("--local", "starts its own control plane; drop --kubeconfig")
            try:
                from .local.launcher import ControlPlaneError, LocalControlPlane
            except ImportError as exc:
                error = DaskKubeJobsError(f"--local needs the local control plane, which is not "
                                          f"installed ({exc.name} is missing)")
                error.hint = "pip install 'dask-kube-jobs[local,operator]'"
                raise error from exc

            progress.say("starting a local control plane (API server, kubelet, operator)")
            plane = LocalControlPlane()
            try:
                plane.start()
            except ControlPlaneError as exc:
                error = DaskKubeJobsError(f"the local control plane did not start: {exc}")
                error.hint = "run with --debug, or try `dask-kube-jobs local up` to see why"
                raise error from exc
            kubeconfig = plane.kubeconfig
            progress.say(f"local control plane ready at {plane.server}")
        try:
            return asyncio.run(_run_async(args, manifest, kubeconfig, progress))
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
    finally:
        if plane is not None:
            progress.say("stopping the local control plane")
            plane.stop()


# -- the other job commands ------------------------------------------------------------------------
def _call(coro_fn: Callable[[], Awaitable[int]]) -> int:
    async def main() -> int:
        try:
            return await coro_fn()
        finally:
            await close_clients()

    return asyncio.run(main())


def cmd_submit(args: argparse.Namespace) -> int:
    manifest = job_manifest(args)

    async def go() -> int:
        job = await _submit(args, manifest, args.kubeconfig)
        print(job.name)
        print(f"follow it with: dask-kube-jobs logs -f {job.name} -n {job.namespace}",
              file=sys.stderr)
        return 0

    return _call(go)


def _age(stamp: str | None) -> str:
    from .contract.times import now, parse_time

    t = parse_time(stamp)
    if t is None:
        return "-"
    s = int((now() - t).total_seconds())
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def cmd_status(args: argparse.Namespace) -> int:
    async def go() -> int:
        job = await _async.get_job(args.name, args.namespace, kubeconfig=args.kubeconfig)
        st = await job.status()
        if args.output == "json":
            print(json.dumps(st.raw, indent=2, sort_keys=True))
            return 0
        link = await job.dashboard_link() if not st.done else None
        rows = [("Name", f"{job.namespace}/{job.name}"), ("Phase", st.phase or "Pending"),
                ("Cluster", st.cluster_name), ("Runner", st.runner_pod),
                ("Attempts", st.attempts or None), ("Exit code", st.exit_code),
                ("Reason", st.reason), ("Message", st.message), ("Started", st.start_time),
                ("Finished", st.end_time), ("Dashboard", link),
                ("Result", None if st.result is None else json.dumps(st.result))]
        for key, value in rows:
            if value is not None:
                print(f"{key + ':':11} {value}")
        if st.phase == "Failed" and st.log_tail:
            print("Log tail:")
            for line in st.log_tail.rstrip("\n").splitlines():
                print(f"  {line}")
        return 0

    return _call(go)


def cmd_list(args: argparse.Namespace) -> int:
    async def go() -> int:
        jobs = await _async.list_jobs(args.namespace, args.selector,
                                      all_namespaces=args.all_namespaces,
                                      kubeconfig=args.kubeconfig)
        if not jobs:
            print("No DaskJobs found.", file=sys.stderr)
            return 0
        rows = [(["NAMESPACE"] if args.all_namespaces else []) +
                ["NAME", "PHASE", "ATTEMPTS", "EXIT", "AGE"]]
        for job in jobs:
            st = job.last_status
            rows.append(([job.namespace] if args.all_namespaces else []) +
                        [job.name, st.phase or "Pending", str(st.attempts),
                         "-" if st.exit_code is None else str(st.exit_code),
                         _age(job.raw["metadata"].get("creationTimestamp"))])
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return 0

    return _call(go)


def cmd_logs(args: argparse.Namespace) -> int:
    async def go() -> int:
        job = await _async.get_job(args.name, args.namespace, kubeconfig=args.kubeconfig)
        if args.follow:
            await _stream_logs(job, sys.stdout)
        else:
            sys.stdout.write(await job.logs(container=args.container))
        return 0

    try:
        return _call(go)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def cmd_delete(args: argparse.Namespace) -> int:
    async def go() -> int:
        job = await _async.get_job(args.name, args.namespace, kubeconfig=args.kubeconfig)
        await job.delete(wait=not args.no_wait, timeout=args.timeout)
        print(f"deleted DaskJob {job.namespace}/{job.name}")
        return 0

    return _call(go)


def cmd_gen(args: argparse.Namespace) -> int:
    if args.kind == "cluster":
        if getattr(args, "argv", None):
            raise SpecError("--", "a cluster takes no command")
        manifest = make_cluster_spec(args.name or "dask", image=args.image or DEFAULT_IMAGE,
                                     n_workers=args.workers, env=_env(args.env))
    else:
        manifest = job_manifest(args)
    if args.output == "json":
        print(json.dumps(manifest, indent=2))
    else:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
    return 0


# -- parsers ---------------------------------------------------------------------------------------
def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster, then "
                        "the one `dask-kube-jobs local up` wrote)")


def _job_source(p: argparse.ArgumentParser, *, with_file: bool = True) -> None:
    if with_file:
        p.add_argument("file", nargs="?", metavar="FILE", help="a DaskJob manifest (YAML/JSON)")
    p.add_argument("--image", help=f"the image of the runner and the cluster ({DEFAULT_IMAGE})")
    p.add_argument("--script", metavar="PATH", help="a Python script for the runner to run")
    p.add_argument("--name", help="the job's name (default: from the manifest, or generated)")
    p.add_argument("--workers", type=int, metavar="N", help="number of Dask workers")
    p.add_argument("--cluster", metavar="NAME",
                   help="run on this existing DaskCluster (spec.clusterRef) instead of a cluster "
                        "made for the job; it keeps running when the job ends")
    p.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="an environment variable for all Pods (repeatable)")
    p.add_argument("--backoff-limit", type=int, metavar="N", help="retries of a failed runner")
    p.add_argument("--deadline", type=int, metavar="S", help="activeDeadlineSeconds")
    p.add_argument("--ttl", type=int, metavar="S", help="ttlSecondsAfterFinished")


def add_job_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register run, submit, status, list, logs, delete and gen on the top-level parser."""
    run = sub.add_parser(
        "run", help="submit a DaskJob, stream its log, exit with the runner's exit code",
        description="Submit a DaskJob and follow it to the end: phase changes on stderr, the "
                    "runner's log on stdout, then the result (JSON) if the runner set one. "
                    "Exit code: the runner's (0 on success; 1 if a failed job has none), 124 on "
                    "--timeout, 130 on Ctrl-C. Ctrl-C and --timeout delete the job unless "
                    "--keep. Command after `--`: dask-kube-jobs run --image IMG -- python x.py")
    _job_source(run)
    _target(run)
    run.add_argument("--local", action="store_true",
                     help="start a throw-away local control plane for this run")
    run.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")
    run.add_argument("--keep", action="store_true", help="do not delete the job on Ctrl-C/timeout")
    run.add_argument("--replace", action="store_true",
                     help="delete an existing job of the same name first")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    run.set_defaults(func=cmd_run, takes_argv=True)

    submit = sub.add_parser("submit", help="create a DaskJob and return (prints its name)")
    _job_source(submit)
    _target(submit)
    submit.add_argument("--replace", action="store_true",
                        help="delete an existing job of the same name first")
    submit.set_defaults(func=cmd_submit, takes_argv=True)

    status = sub.add_parser("status", help="show a DaskJob's status")
    status.add_argument("name", metavar="NAME")
    status.add_argument("-o", "--output", choices=["text", "json"], default="text")
    _target(status)
    status.set_defaults(func=cmd_status)

    ls = sub.add_parser("list", help="list DaskJobs")
    ls.add_argument("-l", "--selector", help="label selector, e.g. team=data")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    _target(ls)
    ls.set_defaults(func=cmd_list)

    logs = sub.add_parser("logs", help="print (or -f follow) the runner's log")
    logs.add_argument("name", metavar="NAME")
    logs.add_argument("-f", "--follow", action="store_true",
                      help="follow until the job ends, across retries")
    logs.add_argument("-c", "--container", help="the runner container (default: the first)")
    _target(logs)
    logs.set_defaults(func=cmd_logs)

    delete = sub.add_parser("delete", help="delete a DaskJob and everything it owns")
    delete.add_argument("name", metavar="NAME")
    delete.add_argument("--no-wait", action="store_true", help="return without waiting")
    delete.add_argument("--timeout", type=float, default=120.0)
    _target(delete)
    delete.set_defaults(func=cmd_delete)

    gen = sub.add_parser("gen", help="print a DaskCluster or DaskJob manifest built from flags")
    gen.add_argument("kind", choices=["cluster", "job"])
    _job_source(gen, with_file=False)
    gen.add_argument("-o", "--output", choices=["yaml", "json"], default="yaml")
    gen.set_defaults(func=cmd_gen, takes_argv=True, file=None)
