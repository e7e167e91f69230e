"""The ``dask-kube-jobs local`` commands: start, stop and inspect a local control plane.

``up`` / ``down`` / ``status`` / ``kubeconfig`` drive the control plane of
:mod:`dask_kube_jobs.local` for one kubeconfig (its state directory is named after it), and
``kubelet`` runs the process kubelet alone against any cluster. The job commands live in
``_cli_jobs.py``; ``cli.py`` parses the command line and reports errors.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .errors import CLIError


def _default_kubeconfig() -> str:
    from .local.kubeconfig import DEFAULT_KUBECONFIG

    return str(DEFAULT_KUBECONFIG.expanduser())


# -- local ------------------------------------------------------------------------------------

def _local_up(args: argparse.Namespace) -> int:
    from .local.launcher import ControlPlaneError, LocalControlPlane

    plane = LocalControlPlane(args.kubeconfig, port=args.port, operator=not args.no_operator,
                              kubelet=not args.no_kubelet)
    try:
        plane.start()
    except ControlPlaneError as exc:
        raise CLIError(str(exc), "check `dask-kube-jobs local status`") from exc
    print(f"Local control plane is up at {plane.server}")
    print(f"  kubeconfig: {plane.kubeconfig}")
    taken = plane.endpoint.get("previous_port_taken")
    if taken:
        print(f"  note:       port {taken}, where it served before, is taken by another program; "
              "kubeconfigs minted for that port must be minted again (`local kubeconfig`)")
    print(f"  try:        kubectl --kubeconfig {plane.kubeconfig} get nodes")
    if args.detach:
        print("  stop it:    dask-kube-jobs local down" +
              ("" if args.kubeconfig == _default_kubeconfig() else f" --kubeconfig {args.kubeconfig}"))
        plane.process = None  # leave it running; `local down` finds it through its state dir
        return 0
    print("Press Ctrl-C to stop.")
    try:
        assert plane.process is not None
        plane.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        plane.stop()
    return 0


def _local_down(args: argparse.Namespace) -> int:
    from .local.launcher import stop_process_group
    from .local.state import StateDir, state_dir_for

    state = StateDir(state_dir_for(Path(args.kubeconfig)))
    record = state.read_endpoint()
    if not record:
        print(f"No local control plane runs for {args.kubeconfig}.")
    else:
        stop_process_group(int(record["pid"]), timeout=args.timeout)
        state.clear_endpoint()
        print(f"Stopped the local control plane (pid {record['pid']}).")
    if args.purge and state.purge():
        print(f"Removed its state (objects, signing key, CA, logs): {state.root}")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from .local.launcher import status

    record = status(Path(args.kubeconfig))
    if record is None:
        print(f"No local control plane runs for {args.kubeconfig}.")
        return 1
    if args.output == "json":
        print(json.dumps(record, indent=2))
    else:
        print(f"Running: {record['server']} (pid {record['pid']}, ready={record['ready']})")
        children = record.get("children") or {}
        for name, st in (record.get("components") or {}).items():
            pid = f", pid {children[name]}" if name in children else ""
            where = f", log {record['state_dir']}/logs/{name}.log" if name in children else ""
            print(f"  {name}: {st}{pid}{where}")
        failed = record.get("failed")
        if failed:
            from .local.readiness import describe_failure

            print(describe_failure(failed))
        print(f"  state: {record['state_dir']}")
    return 0


def _local_kubeconfig(args: argparse.Namespace) -> int:
    from .local.identities import write_identity_kubeconfig
    from .local.state import StateDir, state_dir_for

    state = StateDir(state_dir_for(Path(args.kubeconfig)))
    out = Path(args.output or f"./{(args.user or args.service_account).replace('/', '-')}.kubeconfig")
    try:
        path = write_identity_kubeconfig(state, Path(args.kubeconfig), out, user=args.user,
                                         groups=tuple(args.group or ()),
                                         service_account=args.service_account,
                                         namespace=args.namespace)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc), "run `dask-kube-jobs local up` first") from exc
    print(path)
    return 0


def _local_kubelet(args: argparse.Namespace) -> int:
    try:
        from .local.kubelet.__main__ import main as kubelet_main
    except ImportError as exc:
        raise CLIError("the process kubelet is not available in this installation",
                       "install dask-kube-jobs[local]") from exc
    argv = ["--kubeconfig", args.kubeconfig]
    if args.node_name:
        argv += ["--node-name", args.node_name]
    if args.state_dir:
        argv += ["--state-dir", args.state_dir]
    kubelet_main(argv)
    return 0


def add_local_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    local = sub.add_parser("local", help="run a local Kubernetes-compatible control plane")
    lsub = local.add_subparsers(dest="local_command", required=True)

    up = lsub.add_parser(
        "up", help="start the API server, controllers, kubelet and operator",
        description="Start a local control plane for --kubeconfig. Objects kept from a previous "
                    "`up` of the same kubeconfig are served again, on the same port if it is "
                    "free (`local down --purge` starts afresh).")
    up.add_argument("--detach", "-d", action="store_true", help="return once it is ready")
    up.add_argument("--kubeconfig", default=_default_kubeconfig())
    up.add_argument("--port", type=int, default=0,
                    help="API server port (default: the previous one if free, else a free one)")
    up.add_argument("--no-operator", action="store_true", help="do not start the Dask operator")
    up.add_argument("--no-kubelet", action="store_true", help="do not start the process kubelet")
    up.set_defaults(func=_local_up)

    down = lsub.add_parser(
        "down", help="stop everything `local up` started (its objects are kept for the next `up`)",
        description="Stop the control plane and every process it started. Its objects "
                    "(namespaces, jobs and their results, RBAC), signing key, CA and port are "
                    "kept in its state directory, so the next `local up` carries on where this "
                    "one stopped and minted kubeconfigs keep working; --purge wipes them.")
    down.add_argument("--kubeconfig", default=_default_kubeconfig())
    down.add_argument("--timeout", type=float, default=30.0)
    down.add_argument("--purge", action="store_true",
                      help="also delete the state directory: every object, the signing key and "
                           "the CA (kubeconfigs minted before stop working)")
    down.set_defaults(func=_local_down)

    st = lsub.add_parser("status", help="is a local control plane running?")
    st.add_argument("--kubeconfig", default=_default_kubeconfig())
    st.add_argument("-o", "--output", choices=["text", "json"], default="text")
    st.set_defaults(func=_local_status)

    kc = lsub.add_parser("kubeconfig", help="write a kubeconfig for another identity")
    kc.add_argument("--kubeconfig", default=_default_kubeconfig(),
                    help="the admin kubeconfig `local up` wrote")
    who = kc.add_mutually_exclusive_group(required=True)
    who.add_argument("--user")
    who.add_argument("--service-account", metavar="NAMESPACE/NAME")
    kc.add_argument("--group", action="append", help="a group of the user (repeatable)")
    kc.add_argument("--namespace", default="default", help="the context's default namespace")
    kc.add_argument("-o", "--output", help="where to write it (default ./<user>.kubeconfig)")
    kc.set_defaults(func=_local_kubeconfig)

    kl = lsub.add_parser("kubelet", help="run the process kubelet alone against any cluster")
    kl.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or _default_kubeconfig())
    kl.add_argument("--node-name")
    kl.add_argument("--state-dir")
    kl.set_defaults(func=_local_kubelet)
