"""``dask-kube-jobs profiles``: which DaskClusterProfiles there are, and one profile's options.

What a user reads before ``run --profile NAME --option KEY=VALUE``: ``profiles`` lists them,
``profiles NAME`` shows the options with their defaults and what each accepts. ``-o json|yaml``
prints the same as data (``_cli_output.structured``), for scripts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from . import _cli_output as output
from ._cli_signals import Stopper, run_stoppable
from .jobs._client import close_clients, connect
from .jobs._profile import read_profile, read_profiles

FORMATS = ("text", "json", "yaml")


def cmd_profiles(args: argparse.Namespace) -> int:
    async def main(_stopper: Stopper) -> int:
        try:
            client = await connect(args.kubeconfig, context=getattr(args, "context", None))
            if args.name:
                profile = await read_profile(client, args.name)
                text = output.profile_text(profile) if args.output == "text" else \
                    output.structured(profile.as_dict(), args.output)
            else:
                profiles = await read_profiles(client)
                if args.output != "text":
                    text = output.structured([p.as_dict() for p in profiles], args.output)
                elif not profiles:
                    print("No DaskClusterProfiles found.", file=sys.stderr)
                    return 0
                else:
                    text = output.profiles_table(profiles)
            sys.stdout.write(text)
            return 0
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(close_clients(), 5)

    return run_stoppable(main)


def add_profile_commands(sub: argparse._SubParsersAction,  # type: ignore[type-arg]
                         context_help: str) -> None:
    """Register ``profiles`` on the top-level parser (``context_help``: --context's words,
    the job commands')."""
    p = sub.add_parser("profiles", help="list the DaskClusterProfiles, or show one's options",
                       description="Without NAME: the DaskClusterProfiles (cluster-scoped) and "
                                   "their options. With NAME: that profile's options, their "
                                   "defaults and what each accepts; pick them with "
                                   "`run --profile NAME --option KEY=VALUE`.")
    p.add_argument("name", metavar="NAME", nargs="?", help="a profile to show")
    p.add_argument("-o", "--output", choices=FORMATS, default="text",
                   help="json/yaml: the profile(s) as data")
    p.add_argument("--kubeconfig", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, "
                   "in-cluster, then the one `dask-kube-jobs local up` wrote)")
    p.add_argument("--context", default=argparse.SUPPRESS, help=context_help)
    p.set_defaults(func=cmd_profiles)
