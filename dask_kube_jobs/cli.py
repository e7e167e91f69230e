# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this line)
"""The ``dask-kube-jobs`` command.

Errors are one line plus a hint, without a traceback unless ``--debug`` is given: the people who
type these commands want to know what to do next, not where in our code it went wrong. Every
:class:`~dask_kube_jobs.errors.DaskKubeJobsError` carries its own hint.

Commands: ``run`` / ``submit`` / ``status`` / ``list`` / ``logs`` / ``delete`` / ``gen`` (in
``_cli_jobs.py``), ``local up|down|status|kubeconfig|kubelet``, and ``operator`` (the kopf
controller, with its own arguments). A runner command goes after ``--``::

    dask-kube-jobs run --local examples/simple-job.yaml
    dask-kube-jobs run --image ghcr.io/dask/dask:latest --workers 2 -- python -c "print(1)"

Shell completion comes from argcomplete: ``eval "$(register-python-argcomplete dask-kube-jobs)"``
in bash or zsh (``register-python-argcomplete --shell fish dask-kube-jobs | source`` in fish).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import DaskKubeJobsError


class CLIError(Exception):
    """A failure to report as one line, with a hint on what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


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


def _add_local(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dask-kube-jobs",
                                     description="Run Dask batch work on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    from ._cli_jobs import CONTEXT_HELP, add_job_commands

    parser.add_argument("--context", help=CONTEXT_HELP)
    sub = parser.add_subparsers(dest="command", required=True)

    add_job_commands(sub)
    _add_local(sub)
    sub.add_parser("operator", add_help=False,
                   help="run the Dask operator (kopf controller); see `operator --help`")
    return parser


def _operator(argv: list[str]) -> int:
    try:
        from .operator.__main__ import main as operator_main
    except ImportError as exc:
        raise CLIError(f"the operator is not installed ({exc.name} is missing)",
                       "install dask-kube-jobs[operator]") from exc
    operator_main(argv)
    return 0


def _split(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Our arguments, and the runner command after the first ``--`` (None without one)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = False
    while argv and argv[0] == "--debug":
        debug = True
        argv.pop(0)
    parser = build_parser()
    if "_ARGCOMPLETE" in os.environ:  # the shell asks for completions: answer, then exit
        import argcomplete

        argcomplete.autocomplete(parser)
    if argv and argv[0] == "operator":
        # everything after `operator` is the operator's own command line (its --help too)
        args = argparse.Namespace(debug=debug, func=lambda _: _operator(argv[1:]))
    else:
        ours, command = _split(argv)
        args = parser.parse_args(ours)
        args.debug = args.debug or debug
        if command is not None:
            if not getattr(args, "takes_argv", False):
                parser.error(f"`{args.command}` takes no command after `--`")
            if not command:
                parser.error("nothing after `--`: give the runner's command")
            args.argv = command
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (CLIError, DaskKubeJobsError) as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # SIGTERM and SIGHUP too, as _cli_signals.Interrupted
        return 128 + getattr(exc, "signum", 2)
    except Exception as exc:  # a bug or an unmapped failure: still one line, unless --debug
        if args.debug:
            raise
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: run again with --debug for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
