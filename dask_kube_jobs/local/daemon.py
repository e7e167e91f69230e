"""The control-plane process: API server and controllers in one event loop, other parts as children.

``dask-kube-jobs local up`` runs this module. The API server and the controllers share a
process (the controllers still talk to the server only over HTTP, as kube-controller-manager
does); the kubelet and the operator are child processes of their own, so each can be killed and
restarted on its own, as on a real cluster. Stopping this process stops its children and the
whole process tree under them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import importlib.util
import logging
import os
import signal
import ssl
import sys
import time
from pathlib import Path

from . import certs, kubeconfig
from .apiserver.auth import TokenAuthenticator, new_key
from .apiserver.bootstrap_rbac import bootstrap_objects, node_proxier_binding
from .apiserver.core import APICore
from .apiserver.proxy import install_proxies
from .apiserver.server import APIServer
from .apiserver.sqlite_backend import SQLiteBackend, StoreUnavailable
from .apiserver.store import Store
from .identities import LOCAL_NODE, write_node_kubeconfig
from .readiness import Components
from .state import StateDir
from .supervisor import Supervisor

log = logging.getLogger("dask_kube_jobs.local")


def _load_key(state: StateDir) -> bytes:
    if state.key.exists():
        return state.key.read_bytes()
    key = new_key()
    state.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(state.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key)
    return key


#: What one local worker process is reckoned to need: the default cap on workers per cluster
#: that the local control plane gives its operator is the machine's memory divided by this.
WORKER_MEMORY = 256 * 2**20


def machine_max_workers() -> int:
    """Workers per cluster this machine can hold (8 to 1000): every local Pod is a process
    here, so a cluster of a thousand workers would take the machine down, not run."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 8
    return max(8, min(1000, memory // WORKER_MEMORY))


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _written_since_start(objects: list[dict], started_rv: int) -> list[dict]:
    """The objects written since this server started: a Node kept from before a restart says
    Ready for a kubelet that has not yet come back, so it must not count."""
    return [o for o in objects if int(o["metadata"]["resourceVersion"]) > started_rv]


def _operator_crds() -> list[dict]:
    """The Dask CRDs, installed as the operator's Helm chart would install them."""
    try:
        from ..crds import load_crds
    except ImportError:
        return []
    return [copy.deepcopy(crd) for crd in load_crds()]


def _ssl_context(state: StateDir) -> ssl.SSLContext:
    ca = certs.ensure_ca(state.pki)
    pair = certs.issue_serving_cert(ca, state.pki, "apiserver")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pair.cert, pair.key)
    return ctx


async def run(args: argparse.Namespace) -> None:
    state = StateDir(Path(args.state_dir))
    state.prepare()
    key = _load_key(state)
    # Minted kubeconfigs name the server's port: serve on the last one again unless told
    # otherwise (or it has been taken meanwhile: then any free one, and the record says so).
    wanted_port = args.port or state.previous_port() or 0
    core = APICore(Store(backend=None if args.in_memory else SQLiteBackend(state.objects)))
    def uid_of(resource: str, namespace: str, name: str) -> str | None:
        obj = core.store.get(("", resource), namespace, name)
        return None if obj is None else str(obj["metadata"]["uid"])

    authn = TokenAuthenticator(key, uid_of=uid_of)
    # The CRDs come with or without the operator: one run from its image (`local up
    # --no-operator`, docs/local-control-plane.md) needs them as much as ours does.
    core.bootstrap(bootstrap_objects() + [node_proxier_binding(LOCAL_NODE)] + _operator_crds())
    server = APIServer(core, authn, bookmark_interval=args.bookmark_interval)
    client = certs.issue_client_cert(certs.ensure_ca(state.pki), state.pki,
                                     "kube-apiserver-kubelet-client", ("system:masters",))
    install_proxies(server, (client.cert, client.key))
    ssl_ctx = None if args.insecure_http else _ssl_context(state)
    runner, port = await server.start("127.0.0.1", wanted_port, ssl_ctx,
                                      or_any_port=not args.port)
    if wanted_port and port != wanted_port:
        log.warning("port %d, where this control plane served before, is taken: serving on %d; "
                    "kubeconfigs written for the old port must be written again", wanted_port, port)
    scheme = "http" if ssl_ctx is None else "https"
    url = f"{scheme}://127.0.0.1:{port}"
    ca_pem = None if ssl_ctx is None else state.ca_cert.read_bytes()
    admin = kubeconfig.build(url, authn.mint_admin(), ca_pem=ca_pem)
    kubeconfig.write(state.admin_kubeconfig, admin)
    # Merged, not overwritten: --kubeconfig may name a file with other clusters in it.
    kubeconfig.merge(Path(args.kubeconfig), admin, name=kubeconfig.CLUSTER_NAME, switch=True)
    # The kubelet runs as its Node, with the Node authorizer's rights and kube-proxy's.
    write_node_kubeconfig(state, state.admin_kubeconfig, state.node_kubeconfig, LOCAL_NODE)

    tasks: list[asyncio.Task[None]] = []
    if not args.no_controllers and importlib.util.find_spec("dask_kube_jobs.local.controllers.manager"):
        from .controllers.manager import run_controllers

        tasks.append(asyncio.create_task(run_controllers(str(state.admin_kubeconfig)), name="controllers"))
    published: dict[str, object] = {"pid": os.getpid(), "server": url, "port": port,
                                    "children": {}, "started": time.time()}
    if wanted_port and port != wanted_port:
        published["previous_port_taken"] = wanted_port

    def record(children: dict[str, int] | None = None, **fields: object) -> None:
        if children is not None:
            published["children"] = children
        published.update(fields)
        state.write_endpoint(dict(published))

    supervisor = Supervisor(state.logs, on_change=record)
    kubelet = not args.no_kubelet and supervisor.add(
        "kubelet", "dask_kube_jobs.local.kubelet",
        ["--kubeconfig", str(state.node_kubeconfig), "--node-name", LOCAL_NODE,
         "--state-dir", str(state.kubelet)])
    operator_readyz = f"http://127.0.0.1:{_free_port()}/readyz"
    operator = not args.no_operator and supervisor.add(
        "operator", "dask_kube_jobs.operator",
        ["--kubeconfig", str(state.admin_kubeconfig), "--all-namespaces",
         "--default-max-workers-per-cluster", str(machine_max_workers()),
         "--readiness", operator_readyz])
    components = Components(
        supervisor, lambda fields: record(**fields),
        nodes=(lambda: _written_since_start(core.store.list(("", "nodes")), core.store.started_rv))
        if kubelet else None,
        operator_readyz=operator_readyz if operator else None)
    record(supervisor.pids(), **components.record())
    tasks.append(asyncio.create_task(supervisor.watch(), name="supervisor"))
    tasks.append(asyncio.create_task(components.watch(), name="readiness"))
    log.info("local control plane serving at %s (kubeconfig %s)", url, args.kubeconfig)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await asyncio.to_thread(supervisor.stop)
        if not args.no_kubelet:
            # A kubelet killed before it could stop its Pods leaves their processes behind;
            # `local down` promises that nothing survives it.
            with contextlib.suppress(Exception):
                from .kubelet.resources import cleanup_node

                cleanup_node(state.kubelet)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.cleanup()
        core.store.close()
        state.clear_endpoint()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dask_kube_jobs.local.daemon")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-kubelet", action="store_true")
    parser.add_argument("--no-operator", action="store_true")
    parser.add_argument("--no-controllers", action="store_true")
    parser.add_argument("--insecure-http", action="store_true")
    parser.add_argument("--bookmark-interval", type=float, default=15.0)
    parser.add_argument("--in-memory", action="store_true",
                        help="keep objects in memory only, nothing on disk (what the store costs: "
                             "bench/apiserver.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("DKJ_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(args))
    except StoreUnavailable as exc:
        # The launcher shows the log's last line to whoever ran `local up`: make it this.
        print(f"error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
