"""``python -m dask_kube_jobs.operator`` / ``dask-kube-jobs operator``: run the controller.

Scope is one namespace, several, or all (``--all-namespaces``), as for any kopf operator.
Extra kopf handlers are loaded from the ``dask_operator_plugin`` entry-point group before the
operator starts; a plugin that fails to import stops the start-up with its error, because an
operator silently running without a policy its administrator installed is worse than none.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import sys
from importlib.metadata import entry_points


def load_plugins() -> list[str]:
    loaded = []
    for ep in entry_points(group="dask_operator_plugin"):
        try:
            ep.load()
        except Exception as exc:
            raise SystemExit(f"dask-kube-jobs operator: plugin {ep.name!r} ({ep.value}) failed "
                             f"to load: {exc!r}. Fix or uninstall it.") from exc
        loaded.append(ep.name)
    return loaded


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
    parser.add_argument("--peering", metavar="NAME",
                        help="coordinate with other replicas through this KopfPeering (HA)")
    parser.add_argument("--priority", type=int,
                        help="peering priority; the highest active replica works, the others wait "
                             "(default with --peering: a random one, so replicas never tie)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # liveness probes, every few s
    if not args.verbose:
        # kopf logs every handler run at INFO, including the wake-up pokes on each watch event.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    import kopf

    from . import handlers  # noqa: F401  (registers the handlers)

    plugins = load_plugins()
    if plugins:
        logging.getLogger("dask_kube_jobs.operator").info("loaded plugins: %s", ", ".join(plugins))
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
    try:
        asyncio.run(kopf.operator(
            clusterwide=namespaces is None, namespaces=namespaces or (),
            standalone=args.peering is None, peering_name=args.peering, priority=priority,
            liveness_endpoint=args.liveness, memo=memo, settings=settings,
        ))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
