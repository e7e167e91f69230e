# PYTHON_ARGCOMPLETE_OK  (argcomplete's global completion looks for this line)
"""The ``dask-kube-jobs`` command.

Errors are one line plus a hint, without a traceback unless ``--debug`` is given: the people who
type these commands want to know what to do next, not where in our code it went wrong. Every
:class:`~dask_kube_jobs.errors.DaskKubeJobsError` carries its own hint.

Commands: ``run`` / ``submit`` / ``status`` / ``list`` / ``logs`` / ``delete`` / ``gen`` (in
``_cli_jobs.py``), ``profiles`` (in ``_cli_profiles.py``), ``local
up|down|status|kubeconfig|kubelet`` (in ``_cli_local.py``), and
``operator`` (the kopf controller, with its own arguments). A runner command goes after ``--``::

    dask-kube-jobs run --local examples/simple-job.yaml
    dask-kube-jobs run --image ghcr.io/dask/dask:latest --workers 2 -- python -c "print(1)"

Shell completion comes from argcomplete: ``eval "$(register-python-argcomplete dask-kube-jobs)"``
in bash or zsh (``register-python-argcomplete --shell fish dask-kube-jobs | source`` in fish).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import CLIError, DaskKubeJobsError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dask-kube-jobs",
                                     description="Run Dask batch work on Kubernetes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    from ._cli_jobs import CONTEXT_HELP, add_job_commands

    parser.add_argument("--context", help=CONTEXT_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    from ._cli_local import add_local_commands
    from ._cli_profiles import add_profile_commands

    add_job_commands(sub)
    add_profile_commands(sub, CONTEXT_HELP)
    add_local_commands(sub)
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
    except DaskKubeJobsError as exc:
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
