"""The job commands of ``dask-kube-jobs``: run, submit, status, list, logs, delete, gen.

Kept apart from ``cli.py`` (which owns parsing, error display and the ``local`` commands) so
each stays a readable size. Every command is a thin layer over the async job API
(``dask_kube_jobs.jobs._async``), run in an event loop: ``run`` needs several things at once --
the progress on stderr, the runner's log on stdout, the Pods' Warning Events -- and a stop
signal must reach the code that deletes the job, which cancelling the main task gives.

``run`` is the README's main command::

    dask-kube-jobs run --local examples/simple-job.yaml

It exits with the runner's exit code (0 on success; the failed runner's code, or 1 when there
is none), 124 after ``--timeout``, 128 + the signal's number on SIGINT (Ctrl-C), SIGTERM or
SIGHUP (``_cli_signals.py``); stdout carries only the runner's log and, as its last line, the
job's result as JSON (if the runner set one). The file ``run`` reads may carry the ConfigMaps
and Secrets its Pods mount (``_cli_apply.py``); the progress on stderr is ``_cli_progress.py``'s,
``status``' and ``list``'s formats ``_cli_output.py``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import _cli_output as output
from . import kube
from ._cli_apply import RunFile, apply, check_namespaces, read_run_file
from ._cli_progress import Progress, is_tty
from ._cli_signals import Interrupted, Stopper, exit_code, run_stoppable, signals_raise
from .contract import names
from .errors import DaskJobFailed, DaskKubeJobsError, JobAlreadyExists, WaitTimeout
from .jobs import _async
from .jobs._client import NETWORK_ERRORS, close_clients, connect, translate
from .jobs._manifest import check_job_manifest, load_job_manifest, with_cluster_ref
from .jobs._status import JobStatus
from .profile_spec import parse_option_pairs, with_profile
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


def job_manifest(args: argparse.Namespace,
                 loaded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The DaskJob ``run``/``submit``/``gen job`` describe: from FILE (or the DaskJob ``loaded``
    from it), or built from flags."""
    command = list(getattr(args, "argv", None) or []) or None
    cluster = getattr(args, "cluster", None)
    if cluster is not None and args.workers is not None:
        raise SpecError("--workers", "sizes a cluster made for the job; with --cluster the job "
                        "uses that cluster's workers")
    if args.file:
        if args.image or args.script or command:
            raise SpecError("FILE", "give a manifest FILE or --image/--script/-- command, "
                            "not both")
        manifest = loaded if loaded is not None else load_job_manifest(Path(args.file))
        if getattr(args, "name", None):
            manifest.setdefault("metadata", {})["name"] = args.name
        manifest = _with_profile_flags(args, manifest)
        if args.workers is not None:
            spec = manifest.get("spec") or {}
            worker = ((spec.get("cluster") or {}).get("spec") or {}).get("worker")
            if worker is None and isinstance(spec.get("profile"), dict):  # it fills the rest
                worker = spec.setdefault("cluster", {}).setdefault("spec", {}) \
                    .setdefault("worker", {})
            if not isinstance(worker, dict):
                raise SpecError("--workers", "the manifest has no spec.cluster.spec.worker")
            worker["replicas"] = args.workers
        return with_cluster_ref(manifest, cluster) if cluster is not None else manifest
    if not args.script and not command:
        raise SpecError("FILE", "give a manifest FILE, --script PATH, or --image IMAGE -- "
                        "COMMAND...")
    hint = Path(args.script).stem if args.script else Path(command[0]).name  # type: ignore[index]
    name = getattr(args, "name", None) or _auto_name(hint)
    return make_job_spec(name, image=args.image or None, command=command,
                         script=args.script, n_workers=args.workers,
                         env=_env(args.env), backoff_limit=args.backoff_limit,
                         active_deadline_seconds=args.deadline,
                         ttl_seconds_after_finished=args.ttl, cluster_ref=cluster,
                         **_profile_kwargs(args))


def _profile_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``profile``/``profile_options`` for the spec builders, from --profile and --option."""
    options = parse_option_pairs(getattr(args, "option", None))
    profile = getattr(args, "profile", None)
    if options and profile is None:
        raise SpecError("--option", "sets an option of a profile; name it with --profile NAME")
    return {"profile": profile, "profile_options": options or None}


def _with_profile_flags(args: argparse.Namespace, manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest read from FILE, with --profile (setting or replacing its ``spec.profile``)
    and --option (its options, over those the file gives for the same profile)."""
    options = parse_option_pairs(getattr(args, "option", None))
    profile = getattr(args, "profile", None)
    if profile is None and options:
        named = (manifest.get("spec") or {}).get("profile")
        if not isinstance(named, dict) or not isinstance(named.get("name"), str):
            raise SpecError("--option", "sets an option of a profile, and the manifest names "
                            "none: add --profile NAME")
        profile = named["name"]
    return manifest if profile is None else with_profile(manifest, profile, options)


# -- run -------------------------------------------------------------------------------------------
async def _stream_logs(job: _async.AsyncDaskJobHandle, out: TextIO,
                       progress: Progress | None = None) -> None:
    async for line in job.logs(follow=True):
        if progress is not None and is_tty(out):
            progress.clear_live()
        print(line, file=out, flush=True)


def _belongs_to(pod: dict[str, Any], job: str, cluster: str) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get(names.LABEL_JOB) == job or labels.get(names.LABEL_CLUSTER) == cluster


async def _pod_warnings(client: kube.Client, job: _async.AsyncDaskJobHandle,
                        progress: Progress) -> None:
    """Show the Warning Events of the job's Pods (FailedMount, FailedScheduling, BackOff...) as
    they come: whatever keeps a Pod from running says so there first, long before the job
    fails. A Pod is the job's by its labels (the runner's job name, the cluster's name), and an
    Event is about that Pod only if their uids agree (a scheduler Pod of an earlier job of the
    same name had the same name)."""
    ns = job.namespace
    selector = "involvedObject.kind=Pod,type=Warning"
    cluster = names.job_cluster_name(job.name)
    known: dict[tuple[str, str], bool] = {}

    async def list_() -> tuple[list[dict[str, Any]], str]:
        return await client.list(kube.EVENTS, ns, field_selector=selector)

    def watch(rv: str) -> Any:
        return client.watch_lines(kube.EVENTS, ns, rv, timeout_seconds=300,
                                  field_selector=selector)

    async def show(event: dict[str, Any]) -> None:
        target = event.get("involvedObject") or {}
        key = (str(target.get("name") or ""), str(target.get("uid") or ""))
        if key not in known:
            found = await client.get(kube.PODS, ns, key[0])
            known[key] = found is not None and _belongs_to(found, job.name, cluster) and \
                key[1] in ("", found["metadata"].get("uid"))
        if known[key]:
            progress.warning(event)

    async for change in kube.ListThenWatch(list_, watch):
        if isinstance(change, kube.Relisted):
            for item in change.items:
                await show(item)
        elif change.type in ("ADDED", "MODIFIED"):
            await show(change.object)


async def _watch_warnings(client: kube.Client, job: _async.AsyncDaskJobHandle,
                          progress: Progress) -> None:
    # Events are a help, not the job: a refused or broken event watch stays silent
    with contextlib.suppress(kube.APIError, *NETWORK_ERRORS):
        await _pod_warnings(client, job, progress)


async def _follow(job: _async.AsyncDaskJobHandle, progress: Progress, out: TextIO,
                  timeout: float | None, client: kube.Client) -> int:
    logs = asyncio.create_task(_stream_logs(job, out, progress), name="dask-kube-jobs-logs")
    warnings = asyncio.create_task(_watch_warnings(client, job, progress),
                                   name="dask-kube-jobs-events")
    try:
        final: JobStatus | None = None
        scope = asyncio.timeout(timeout)
        try:
            with progress.live_line():
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
            if progress.quiet:  # else the last progress line already said it
                print(f"error: {exc}", file=sys.stderr, flush=True)
            elif exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr, flush=True)
            return final.exit_code or 1
        if final.result is not None:
            print(json.dumps(final.result), file=out, flush=True)
        return 0
    finally:
        # Ctrl-C must end the command promptly: the log stream gets a few seconds to close
        # its connections, never the power to hold the exit.
        for task in (logs, warnings):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait([logs, warnings], timeout=5)


async def _client(args: argparse.Namespace, kubeconfig: str | None = None) -> kube.Client:
    """The client for --kubeconfig (or ``kubeconfig``) and --context."""
    return await connect(kubeconfig or args.kubeconfig, context=getattr(args, "context", None))


async def _submit(args: argparse.Namespace, manifest: dict[str, Any],
                  client: kube.Client) -> _async.AsyncDaskJobHandle:
    try:
        return await _async.submit(manifest, namespace=args.namespace, client=client)
    except JobAlreadyExists:
        if not getattr(args, "replace", False):
            raise
        old = await _async.get_job(manifest["metadata"]["name"], args.namespace, client=client)
        await old.delete(wait=True)
        return await _async.submit(manifest, namespace=args.namespace, client=client)


async def _create_all(args: argparse.Namespace, run_file: RunFile, client: kube.Client,
                      say: Callable[[str], None]) -> _async.AsyncDaskJobHandle:
    """Apply the file's documents in order, the DaskJob among them; its handle."""
    manifest = run_file.job
    namespace = args.namespace or (manifest.get("metadata") or {}).get("namespace") or \
        kube.default_namespace(client)

    async def apply_all(docs: list[dict[str, Any]]) -> None:
        for doc in docs:
            with translate(None, namespace):
                say(await apply(client, doc, namespace))

    await apply_all(run_file.before)
    job = await _submit(args, manifest, client)
    say(f"submitted DaskJob {job.namespace}/{job.name}")
    await apply_all(run_file.after)
    return job


async def _run_async(args: argparse.Namespace, run_file: RunFile, kubeconfig: str | None,
                     progress: Progress, stopper: Stopper) -> int:
    job: _async.AsyncDaskJobHandle | None = None
    try:
        client = await _client(args, kubeconfig)
        job = await _create_all(args, run_file, client, progress.say)
        return await _follow(job, progress, sys.stdout, args.timeout, client)
    except (asyncio.CancelledError, WaitTimeout) as exc:
        if job is not None and not args.keep:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(job.delete(wait=False), 10)
            why = ""
            if isinstance(exc, asyncio.CancelledError):
                why = f" (interrupted by {signal.Signals(stopper.signum).name})" \
                    if stopper.signum is not None else " (interrupted)"
            progress.say(f"deleted DaskJob {job.namespace}/{job.name}{why}")
        if isinstance(exc, WaitTimeout):
            print(f"error: {exc}", file=sys.stderr, flush=True)
            return EXIT_TIMEOUT
        raise
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(close_clients(), 5)


def _run_file(args: argparse.Namespace) -> RunFile:
    """The documents ``run`` and ``submit`` apply: the file's (checked before anything is
    sent), or the DaskJob the flags build."""
    if not args.file or args.image or args.script or getattr(args, "argv", None):
        manifest = job_manifest(args)
        check_job_manifest(manifest)
        return RunFile([manifest], 0)
    run_file = read_run_file(args.file)
    check_job_manifest(run_file.job)  # the file's own mistakes before --name/--workers' ones
    run_file.documents[run_file.job_index] = job_manifest(args, run_file.job)
    check_namespaces(run_file.documents, args.namespace)
    return run_file


def cmd_run(args: argparse.Namespace) -> int:
    run_file = _run_file(args)
    progress = Progress(args.quiet)
    plane = None
    kubeconfig = args.kubeconfig
    with signals_raise():
        try:
            if args.local:
                plane, kubeconfig = _start_local(args, progress)
            return run_stoppable(lambda stopper: _run_async(args, run_file, kubeconfig,
                                                            progress, stopper))
        except Interrupted as exc:  # while the local control plane started or stopped
            return exit_code(exc.signum)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        finally:
            if plane is not None:
                progress.say("stopping the local control plane")
                plane.stop()


def _start_local(args: argparse.Namespace, progress: Progress) -> tuple[Any, str]:
    if args.kubeconfig or getattr(args, "context", None):
        raise SpecError("--local", "starts its own control plane; drop --kubeconfig/--context")
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
    progress.say(f"local control plane ready at {plane.server}")
    return plane, plane.kubeconfig


# -- the other job commands ------------------------------------------------------------------------
def _call(args: argparse.Namespace,
          coro_fn: Callable[[kube.Client], Awaitable[int]]) -> int:
    """Run a command with its client; a stop signal ends it with 128 + the signal's number."""
    async def main(_stopper: Stopper) -> int:
        try:
            return await coro_fn(await _client(args))
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(close_clients(), 5)

    return run_stoppable(main)


def cmd_submit(args: argparse.Namespace) -> int:
    run_file = _run_file(args)  # checked before connecting: a mistake needs no cluster

    async def go(client: kube.Client) -> int:
        job = await _create_all(args, run_file, client, _applied)
        print(job.name)
        print(f"follow it with: dask-kube-jobs logs -f {job.name} -n {job.namespace}",
              file=sys.stderr)
        return 0

    return _call(args, go)


def _applied(what: str) -> None:
    if not what.startswith("submitted "):  # submit prints the job's name on stdout instead
        print(what, file=sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    async def go(client: kube.Client) -> int:
        job = await _async.get_job(args.name, args.namespace, client=client)
        st = await job.status()
        if args.output in ("json", "yaml"):
            sys.stdout.write(output.structured(st.raw, args.output))
            return 0
        link = await job.dashboard_link() if not st.done else None
        sys.stdout.write(output.status_text(job.raw, st, wide=args.output == "wide",
                                            dashboard=link))
        return 0

    return _call(args, go)


def cmd_list(args: argparse.Namespace) -> int:
    async def go(client: kube.Client) -> int:
        jobs = await _async.list_jobs(args.namespace, args.selector,
                                      all_namespaces=args.all_namespaces, client=client)
        raws = [job.raw for job in jobs]
        if args.output in ("json", "yaml"):
            sys.stdout.write(output.structured(output.jobs_list(raws), args.output))
        elif not jobs:
            print("No DaskJobs found.", file=sys.stderr)
        else:
            sys.stdout.write(output.jobs_table(raws, all_namespaces=args.all_namespaces,
                                               wide=args.output == "wide"))
        return 0

    return _call(args, go)


def cmd_logs(args: argparse.Namespace) -> int:
    async def go(client: kube.Client) -> int:
        job = await _async.get_job(args.name, args.namespace, client=client)
        if args.follow:
            await _stream_logs(job, sys.stdout)
        else:
            sys.stdout.write(await job.logs(container=args.container))
        return 0

    return _call(args, go)


def cmd_delete(args: argparse.Namespace) -> int:
    async def go(client: kube.Client) -> int:
        job = await _async.get_job(args.name, args.namespace, client=client)
        await job.delete(wait=not args.no_wait, timeout=args.timeout)
        print(f"deleted DaskJob {job.namespace}/{job.name}")
        return 0

    return _call(args, go)


def cmd_gen(args: argparse.Namespace) -> int:
    if args.kind == "cluster":
        if getattr(args, "argv", None):
            raise SpecError("--", "a cluster takes no command")
        manifest = make_cluster_spec(args.name or "dask", image=args.image or None,
                                     n_workers=args.workers, env=_env(args.env),
                                     **_profile_kwargs(args))
    else:
        manifest = job_manifest(args)
    if args.output == "json":
        print(json.dumps(manifest, indent=2))
    else:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
    return 0


# -- parsers ---------------------------------------------------------------------------------------
CONTEXT_HELP = "the kubeconfig context to use (default: its current-context)"


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("-n", "--namespace", help="namespace (default: the kubeconfig context's)")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster, then "
                        "the one `dask-kube-jobs local up` wrote)")
    # also accepted before the command (the top-level parser's --context); SUPPRESS keeps a
    # value given there when none is given here
    p.add_argument("--context", default=argparse.SUPPRESS, help=CONTEXT_HELP)


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
    p.add_argument("--profile", metavar="NAME",
                   help="the DaskClusterProfile that fills the job's cluster (spec.profile; "
                        "see `dask-kube-jobs profiles`)")
    p.add_argument("--option", action="append", metavar="KEY=VALUE",
                   help="an option of the profile, e.g. worker_memory=8Gi (repeatable)")


def add_job_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register run, submit, status, list, logs, delete and gen on the top-level parser."""
    run = sub.add_parser(
        "run", help="submit a DaskJob, stream its log, exit with the runner's exit code",
        description="Submit a DaskJob and follow it to the end: its changes (and its Pods' "
                    "Warning Events) on stderr, the runner's log on stdout, then the result "
                    "(JSON) if the runner set one. FILE may also hold ConfigMaps and Secrets "
                    "for the job's Pods: they are applied first, in the file's order. "
                    "Exit code: the runner's (0 on success; 1 if a failed job has none), 124 on "
                    "--timeout, 130 on Ctrl-C, 143 on SIGTERM, 129 on SIGHUP (128 + the "
                    "signal's number). Ctrl-C, SIGTERM, SIGHUP and --timeout delete the job "
                    "unless --keep. Command after `--`: "
                    "dask-kube-jobs run --image IMG -- python x.py")
    _job_source(run)
    _target(run)
    run.add_argument("--local", action="store_true",
                     help="start a throw-away local control plane for this run")
    run.add_argument("--timeout", type=float, metavar="S", help="give up after S seconds")
    run.add_argument("--keep", action="store_true",
                     help="do not delete the job on Ctrl-C, SIGTERM, SIGHUP or --timeout")
    run.add_argument("--replace", action="store_true",
                     help="delete an existing job of the same name first")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    run.set_defaults(func=cmd_run, takes_argv=True)

    submit = sub.add_parser("submit", help="create a DaskJob and return (prints its name)",
                            description="Create the DaskJob (and, from FILE, the ConfigMaps and "
                                        "Secrets beside it, as `run` does) and print its name.")
    _job_source(submit)
    _target(submit)
    submit.add_argument("--replace", action="store_true",
                        help="delete an existing job of the same name first")
    submit.set_defaults(func=cmd_submit, takes_argv=True)

    status = sub.add_parser("status", help="show a DaskJob's status")
    status.add_argument("name", metavar="NAME")
    status.add_argument("-o", "--output", choices=output.FORMATS, default="text",
                        help="wide: more rows; json/yaml: the job's .status")
    _target(status)
    status.set_defaults(func=cmd_status)

    ls = sub.add_parser("list", help="list DaskJobs")
    ls.add_argument("-l", "--selector", help="label selector, e.g. team=data")
    ls.add_argument("-A", "--all-namespaces", action="store_true")
    ls.add_argument("-o", "--output", choices=output.FORMATS, default="text",
                    help="wide: more columns; json/yaml: the DaskJobs as a List")
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
