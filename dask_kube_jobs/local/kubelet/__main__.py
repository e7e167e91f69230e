"""``python -m dask_kube_jobs.local.kubelet --kubeconfig PATH [--node-name N] [--state-dir D]
[--client-ca-file CA]``.

Runs the process kubelet against whatever control plane the kubeconfig names, until SIGTERM or
SIGINT; then it stops every Pod's process tree (grace periods capped, so that a supervisor's
own stop timeout is met) and exits. Pods stay in the API: a kubelet started again takes them
over, as after a node reboot.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from pathlib import Path

from ...kube import APIError
from .agent import Kubelet


def _default_state_dir(node: str) -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "dask-kube-jobs" / f"kubelet-{node}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m dask_kube_jobs.local.kubelet",
                                     description="Run Pods bound to this node as local processes.")
    parser.add_argument("--kubeconfig", required=True, help="kubeconfig of the control plane")
    parser.add_argument("--node-name", default=os.environ.get("DKJ_NODE_NAME", "dkj-local-node"))
    parser.add_argument("--state-dir", default=None,
                        help="where Pod files, logs and certificates live")
    parser.add_argument("--client-ca-file", default=None,
                        help="CA of the client certificates the kubelet's endpoints accept "
                             "(default: the kubeconfig's cluster CA)")
    parser.add_argument("--shutdown-grace", type=float, default=5.0,
                        help="longest grace period given to Pods when the kubelet stops")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


async def _run(args: argparse.Namespace) -> None:
    state_dir = Path(args.state_dir) if args.state_dir else _default_state_dir(args.node_name)
    client_ca = Path(args.client_ca_file).read_bytes() if args.client_ca_file else None
    kubelet = Kubelet(args.kubeconfig, state_dir=state_dir, node_name=args.node_name,
                      client_ca=client_ca)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await kubelet.start()
    except (RuntimeError, APIError) as exc:
        # Said once, plainly (which request, which right), rather than as a traceback.
        logging.getLogger("dask_kube_jobs.local.kubelet").error("kubelet cannot start: %s", exc)
        await kubelet.stop(grace_cap=args.shutdown_grace)
        raise SystemExit(1) from None
    logging.getLogger("dask_kube_jobs.local.kubelet").info(
        "kubelet %s running (state %s, kubelet port %d)", args.node_name, state_dir,
        kubelet.server_port)
    try:
        await stop.wait()
    finally:
        await kubelet.stop(grace_cap=args.shutdown_grace)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.INFO if args.verbose else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.INFO)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
