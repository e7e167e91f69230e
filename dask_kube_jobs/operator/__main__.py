"""``python -m dask_kube_jobs.operator`` / ``dask-kube-jobs operator``: run the controller.

Scope is one namespace, several, or all (``--all-namespaces``), as for any kopf operator.
Extra kopf handlers are loaded from the ``dask_operator_plugin`` entry-point group before the
operator starts (``plugins.py``: a plugin that fails to import stops the start-up; handlers a
plugin's imports bring from elsewhere, such as upstream's whole controller, are refused).

Around kopf, the command serves Prometheus metrics (``--metrics``) and a readiness probe
(``--readiness``) from its own small HTTP server (``metrics.py``), and writes text or JSON-line
logs (``--log-format``, ``logs.py``); kopf's own ``--liveness`` endpoint is passed through.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import random
import socket
import sys
from typing import Any

from . import logs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dask-kube-jobs operator",
                                     description="Run the Dask operator (kopf controller).")
    parser.add_argument("--kubeconfig", help="kubeconfig to use (default: in-cluster or $KUBECONFIG)")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", dest="namespaces",
                       help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    parser.add_argument("--liveness", metavar="URL",
                        help="serve kopf's liveness probe, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--readiness", metavar="URL",
                        help="serve a readiness probe, e.g. http://0.0.0.0:8081/readyz: 200 once "
                             "started (informers synced), also on a standby replica")
    parser.add_argument("--metrics", metavar="URL",
                        help="serve Prometheus metrics, e.g. http://0.0.0.0:9090/metrics (may "
                             "share host and port with --readiness, not with --liveness)")
    parser.add_argument("--log-format", choices=logs.FORMATS, default="text",
                        help="text (default) or json: one JSON object per line")
    parser.add_argument("--peering", metavar="NAME",
                        help="coordinate with other replicas through this KopfPeering (HA)")
    parser.add_argument("--priority", type=int,
                        help="peering priority; the highest active replica works, the others wait "
                             "(default with --peering: a random one, so replicas never tie)")
    parser.add_argument("--peering-lifetime", type=int, metavar="SECONDS",
                        help="how long a replica's keep-alive holds; a standby takes over this "
                             "long after the leader's last one (kopf's default: 60)")
    from .limits import DEFAULT_MAX_WORKERS_PER_CLUSTER, ENV_DEFAULT_MAX_WORKERS

    parser.add_argument("--default-max-workers-per-cluster", type=int, metavar="N",
                        default=int(os.environ.get(ENV_DEFAULT_MAX_WORKERS)
                                    or DEFAULT_MAX_WORKERS_PER_CLUSTER),
                        help="workers per DaskCluster when the limits ConfigMap sets no "
                             f"maxWorkersPerCluster (default {DEFAULT_MAX_WORKERS_PER_CLUSTER}, "
                             f"or ${ENV_DEFAULT_MAX_WORKERS}; 0: no default cap)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def own_identity() -> str:
    """This replica's name among its peers: the Pod's name in a cluster (the chart sets
    POD_NAME), else user@host/pid, unique among the processes of one machine."""
    pod = os.environ.get("POD_NAME") or os.environ.get("POD_ID")
    if pod:
        return pod
    return f"{getpass.getuser()}@{socket.gethostname()}/{os.getpid()}"


async def run(args: argparse.Namespace, *, namespaces: list[str] | None, memo: Any,
              settings: Any, priority: int | None) -> None:
    import kopf

    from . import metrics

    identity = own_identity()
    status = metrics.OperatorStatus(
        client=lambda: getattr(memo.get("runtime"), "client", None), peering=args.peering,
        identity=identity, namespaces=namespaces)
    servers = await metrics.serve(status, metrics=args.metrics, readiness=args.readiness)
    try:
        await kopf.operator(
            clusterwide=namespaces is None, namespaces=namespaces or (),
            standalone=args.peering is None, peering_name=args.peering, priority=priority,
            identity=identity, liveness_endpoint=args.liveness, memo=memo, settings=settings,
            ready_flag=status.ready)  # type: ignore[arg-type]
    finally:
        for server in servers:
            await server.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .metrics import parse_endpoint

    for option, url in (("--metrics", args.metrics), ("--readiness", args.readiness),
                        ("--liveness", args.liveness)):
        if url:
            try:
                parse_endpoint(url, option)
            except ValueError as exc:
                parser.error(str(exc))
    if args.default_max_workers_per_cluster < 0:
        parser.error(f"--default-max-workers-per-cluster {args.default_max_workers_per_cluster}: "
                     "use a number of workers >= 1, or 0 for no default cap")
    if args.peering_lifetime is not None and args.peering_lifetime < 1:
        parser.error(f"--peering-lifetime {args.peering_lifetime}: use a whole number of "
                     "seconds >= 1")
    logs.configure(args.log_format, level=logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes, every few s
    if not args.verbose:
        # kopf logs every handler run at INFO, including the wake-up pokes on each watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)
    from .limits import set_default_max_workers
    from .plugins import load_plugins

    set_default_max_workers(args.default_max_workers_per_cluster)

    plugins = load_plugins()
    if plugins:
        logging.getLogger("dask_kube_jobs.operator").info(
            "loaded plugins: %s", ", ".join(p.name for p in plugins))
    namespaces = None if args.all_namespaces or not args.namespaces else list(args.namespaces)
    memo = kopf.Memo(kubeconfig=os.environ.get("KUBECONFIG"), namespaces=namespaces)
    settings = kopf.OperatorSettings()
    # Limited to listed namespaces, the operator may lack cluster-wide rights on namespaces and
    # CRDs (the chart's namespaced RBAC): kopf must not try to scan them.
    settings.scanning.disabled = namespaces is not None
    priority = args.priority
    if args.peering and priority is None:
        # kopf pauses every replica when two share the top priority; random ones never tie.
        priority = random.randint(1, 2**31 - 1)
    if args.peering_lifetime is not None:
        settings.peering.lifetime = args.peering_lifetime
    try:
        asyncio.run(run(args, namespaces=namespaces, memo=memo, settings=settings,
                        priority=priority))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
