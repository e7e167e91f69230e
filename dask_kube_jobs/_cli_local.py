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
from typing import TYPE_CHECKING

from .errors import CLIError

if TYPE_CHECKING:
    from .local.launcher import LocalControlPlane
    from .local.state import StateDir


def _default_kubeconfig() -> str:
    from .local.kubeconfig import DEFAULT_KUBECONFIG

    return str(DEFAULT_KUBECONFIG.expanduser())


def _home(path: Path | str) -> str:
    """``path`` with the home directory written ``~``, as people type it."""
    text, home = str(path), os.path.expanduser("~")
    return "~" + text[len(home):] if text == home or text.startswith(home + os.sep) else text


def _add_context(plane: LocalControlPlane, switch: bool) -> bool:
    """Add the plane's context to the kubeconfig kubectl uses; say where. True if switched."""
    from .local import kubeconfig as kc
    from .local.kubectl_context import add_context

    target = kc.kubectl_kubeconfig()
    if target.resolve() == Path(plane.kubeconfig).resolve():
        return True  # kubectl already uses the plane's own kubeconfig, which holds it
    try:
        added = add_context(plane.state, target, switch=switch)
    except (OSError, ValueError, kc.KubeconfigLocked) as exc:
        print(f"  note:       no context was added to {_home(target)}: {exc}")
        return False
    now = "current context" if added.current == added.context else \
        f"current context stays {added.current}"
    print(f"  context:    {added.context} in {_home(added.kubeconfig)} ({now})")
    return added.current == added.context


def _remove_context(state: StateDir) -> None:
    """Take out what `up` added to the user's kubeconfig, and say so."""
    from .local import kubeconfig as kc
    from .local.kubectl_context import read_record, remove_context

    record = read_record(state)
    try:
        removed = remove_context(state)
    except (OSError, ValueError, kc.KubeconfigLocked) as exc:
        raise CLIError(f"could not remove the context from {record and record['kubeconfig']}: "
                       f"{exc}", "run `dask-kube-jobs local down` again") from exc
    if removed is not None:
        print(f"Removed context {removed.context} from {_home(removed.kubeconfig)} "
              f"(current context: {removed.current or 'none'}).")
    elif record is not None:
        print(f"Left {_home(record['kubeconfig'])} as it is: its context {record['context']} "
              "is no longer this control plane's.")


def _local_up(args: argparse.Namespace) -> int:
    from .local import kubeconfig as kc
    from .local.launcher import ControlPlaneError, LocalControlPlane

    plane = LocalControlPlane(args.kubeconfig, port=args.port, operator=not args.no_operator,
                              kubelet=not args.no_kubelet)
    try:
        plane.start()
    except ControlPlaneError as exc:
        raise CLIError(str(exc), "check `dask-kube-jobs local status`") from exc
    print(f"Local control plane is up at {plane.server}")
    print(f"  kubeconfig: {plane.kubeconfig}")
    switched = _add_context(plane, switch=not args.no_switch_context)
    taken = plane.endpoint.get("previous_port_taken")
    if taken:
        print(f"  note:       port {taken}, where it served before, is taken by another program; "
              "kubeconfigs minted for that port must be minted again (`local kubeconfig`)")
    print("  try:        kubectl " + ("" if switched else f"--context {kc.CLUSTER_NAME} ")
          + "get nodes")
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
        _remove_context(plane.state)
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
    # Also after a crash: nothing may be left pointing kubectl at a server that is gone.
    _remove_context(state)
    if args.purge and state.purge():
        print(f"Removed its state (objects, signing key, CA, logs): {state.root}")
    return 0


def _local_status(args: argparse.Namespace) -> int:
    from .local.kubectl_context import read_record
    from .local.launcher import status
    from .local.state import StateDir, state_dir_for

    record = status(Path(args.kubeconfig))
    if record is None:
        state_dir = state_dir_for(Path(args.kubeconfig))
        if args.output == "json":
            print(json.dumps({"running": False, "kubeconfig": args.kubeconfig,
                              "state_dir": str(state_dir)}, indent=2))
        else:
            print(f"Not running: no local control plane for {args.kubeconfig} "
                  f"(state: {state_dir})")
        return 1
    context = read_record(StateDir(Path(record["state_dir"])))
    if args.output == "json":
        print(json.dumps({"running": True, **record, "kubectl_context": context}, indent=2))
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
        if context:
            print(f"  kubectl context: {context['context']} in {_home(context['kubeconfig'])}")
        print(f"  state: {record['state_dir']}")
    return 0


def _local_kubeconfig(args: argparse.Namespace) -> int:
    from .local.identities import write_identity_kubeconfig
    from .local.state import StateDir, state_dir_for

    state = StateDir(state_dir_for(Path(args.kubeconfig)))
    out = Path(args.output or f"./{(args.user or args.service_account).replace('/', '-')}.kubeconfig")
    try:
        path = write_identity_kubeconfig(state, state.admin_kubeconfig, out, user=args.user,
                                         groups=tuple(args.group or ()),
                                         service_account=args.service_account,
                                         namespace=args.namespace, mode=args.mode)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc), "run `dask-kube-jobs local up` first") from exc
    print(path)
    return 0


def _file_mode(text: str) -> int:
    """``--mode``: octal permission bits, as chmod takes them."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal file mode: {text!r}") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"not a file mode (0000 to 0777): {text!r}")
    return mode


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
    from .local import kubeconfig as kc

    local = sub.add_parser("local", help="run a local Kubernetes-compatible control plane")
    lsub = local.add_subparsers(dest="local_command", required=True)

    up = lsub.add_parser(
        "up", help="start the API server, controllers, kubelet and operator",
        description="Start a local control plane for --kubeconfig (its own kubeconfig, which "
                    "also names its state directory), and add the context "
                    f"{kc.CLUSTER_NAME} to the kubeconfig kubectl uses ($KUBECONFIG, else "
                    "~/.kube/config), made current unless --no-switch-context; `local down` "
                    "removes it. Objects kept from a previous `up` of the same kubeconfig are "
                    "served again, on the same port if it is free (`local down --purge` starts "
                    "afresh).")
    up.add_argument("--detach", "-d", action="store_true", help="return once it is ready")
    up.add_argument("--kubeconfig", default=_default_kubeconfig())
    up.add_argument("--port", type=int, default=0,
                    help="API server port (default: the previous one if free, else a free one)")
    up.add_argument("--no-operator", action="store_true", help="do not start the Dask operator")
    up.add_argument("--no-kubelet", action="store_true", help="do not start the process kubelet")
    up.add_argument("--no-switch-context", action="store_true",
                    help=f"add the context {kc.CLUSTER_NAME} to the kubeconfig kubectl uses "
                         "($KUBECONFIG, else ~/.kube/config) but leave the current context as "
                         "it is")
    up.set_defaults(func=_local_up)

    down = lsub.add_parser(
        "down", help="stop everything `local up` started (its objects are kept for the next `up`)",
        description="Stop the control plane and every process it started, and remove the "
                    "context `up` added to your kubeconfig (the context that was current "
                    "before is current again). Its objects "
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
    kc.add_argument("--mode", type=_file_mode, default=0o600,
                    help="its file mode, in octal (default 0600: only you can read the token); "
                         "0644 lets a container's user read it (docs/local-control-plane.md)")
    kc.set_defaults(func=_local_kubeconfig)

    kl = lsub.add_parser("kubelet", help="run the process kubelet alone against any cluster")
    kl.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or _default_kubeconfig())
    kl.add_argument("--node-name")
    kl.add_argument("--state-dir")
    kl.set_defaults(func=_local_kubelet)
