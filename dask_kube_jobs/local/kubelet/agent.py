"""The kubelet: a Node, its Lease, and one supervising task per Pod bound to it.

It speaks only the Kubernetes API (through kr8s), like a real kubelet, so it could join any
conformant control plane: it registers its Node, renews a Lease in ``kube-node-lease`` and the
Node's heartbeat every 10 seconds, lists and watches the Pods with
``fieldSelector=spec.nodeName=<node>``, reports them only through ``pods/status`` (merge
patches), and ends a graceful deletion with ``DELETE gracePeriodSeconds=0`` guarded by a uid
precondition once every process of the Pod is gone. Per-Pod logic is
:class:`~dask_kube_jobs.local.kubelet.pod.PodWorker`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kr8s
import kr8s.asyncio
import yaml

from ...contract.times import fmt_time
from ...kube import APIError, Conflict, ListThenWatch, NotFound, Relisted, api_error
from .. import certs
from . import resources
from .pod import PodWorker
from .podexec import ExecContext, ExecRequestError, exec_handler
from .resources import CgroupManager, cgroup_scope, kill_leftovers
from .sandbox import can_switch_user
from .volumes import detect_mode

log = logging.getLogger("dask_kube_jobs.local.kubelet")

LEASE_SECONDS = 40
HEARTBEAT = 10.0


def _micro_time() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


class Kubelet:
    """A node agent for one Node name; ``await start()``, ``await run()``, ``await stop()``."""

    def __init__(self, kubeconfig: str, *, state_dir: Path, node_name: str = "dkj-local-node",
                 network: Any = None, server_start: Any = None,
                 client_ca: bytes | None = None) -> None:
        self.kubeconfig = kubeconfig
        #: the CA of the certificates callers of the kubelet's endpoints must present
        #: (default: the cluster's, from the kubeconfig)
        self.client_ca = client_ca
        self.state_dir = Path(state_dir)
        self.node_name = node_name
        self.network = network
        self._server_start = server_start
        self.api: Any = None
        self.mount_mode = "symlink"
        #: whether containers run as their own users (``sandbox``): a root kubelet only
        self.switch_user = False
        self.cgroups = CgroupManager(cgroup_scope(node_name, self.state_dir))
        self.workers: dict[str, Any] = {}
        self.server_port = 0
        self.host_ip = "127.0.0.1"
        self.allocatable: dict[str, str] = {}
        self._server_runner: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._events: dict[tuple[str, ...], tuple[str, int]] = {}
        self._event_queue: asyncio.Queue[tuple[dict[str, Any], str, str, str, str | None]] = \
            asyncio.Queue()
        self.node_uid = ""
        self.api_server = ""
        self.ca_pem: bytes | None = None
        self._transitions: dict[str, tuple[str, str]] = {}
        #: (Pod uid, account, expiration, audience) -> (token, monotonic time to renew it)
        self._tokens: dict[tuple[str, str, int, str], tuple[str, float]] = {}

    # -- API helpers --------------------------------------------------------------------------
    async def request(self, method: str, path: str, *, body: Any = None,
                      params: dict[str, Any] | None = None, content_type: str | None = None,
                      missing_ok: bool = False) -> Any:
        """One API call; ``path`` like ``/api/v1/...``. Returns the JSON body, or None on a
        404 when ``missing_ok``."""
        base, version, url = _split(path)
        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["content"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": content_type or "application/json"}
        try:
            async with self.api.call_api(method, base=base, version=version, url=url,
                                         **kwargs) as resp:
                return resp.json() if resp.content else None
        except kr8s.ServerError as exc:
            if exc.response is None:
                raise
            error = api_error(exc.response.status_code, _status(exc.response),
                              exc.response.text[:200])
            if missing_ok and isinstance(error, NotFound):
                return None
            raise error from exc

    async def fetch(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return await self.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}",  # type: ignore[no-any-return]
                                  missing_ok=True)

    async def services(self, namespace: str) -> list[dict[str, Any]]:
        out = await self.request("GET", f"/api/v1/namespaces/{namespace}/services")
        return list((out or {}).get("items") or [])

    async def token(self, pod: dict[str, Any], expiration: int = 3607, audience: str = "") -> str:
        """A token of the Pod's ServiceAccount bound to the Pod: the one requested before
        while it is younger than 80 % of its life (as the kubelet's token manager keeps
        them), else a new one (``expiration`` 3607 s: Kubernetes' default for projected
        tokens)."""
        meta = pod["metadata"]
        sa = (pod.get("spec") or {}).get("serviceAccountName") or "default"
        key = (meta["uid"], sa, expiration, audience)
        cached = self._tokens.get(key)
        if cached is not None and time.monotonic() < cached[1]:
            return cached[0]
        token = await self._request_token(meta, sa, expiration, audience)
        self._tokens = {k: v for k, v in self._tokens.items() if time.monotonic() < v[1]}
        self._tokens[key] = (token, time.monotonic() + 0.8 * expiration)
        return token

    async def _request_token(self, meta: dict[str, Any], sa: str, expiration: int,
                             audience: str) -> str:
        spec: dict[str, Any] = {"expirationSeconds": expiration,
                                "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                   "name": meta["name"], "uid": meta["uid"]}}
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        out = await self.request("POST", f"/api/v1/namespaces/{meta['namespace']}/"
                                 f"serviceaccounts/{sa}/token", body=body)
        return str(out["status"]["token"])

    async def patch_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        m = pod["metadata"]
        await self.request("PATCH", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}/status",
                           body={"metadata": {"uid": m["uid"]}, "status": status},
                           content_type="application/merge-patch+json")

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        m = pod["metadata"]
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                "preconditions": {"uid": m["uid"]}}
        with contextlib.suppress(APIError):
            await self.request("DELETE", f"/api/v1/namespaces/{m['namespace']}/pods/{m['name']}",
                               body=body, missing_ok=True)

    def event(self, pod: dict[str, Any], type_: str, reason: str, message: str,
              field_path: str | None = None) -> None:
        """Queue a core/v1 Event about ``pod`` (repeats bump ``count``, as the recorder does)."""
        self._event_queue.put_nowait((pod, type_, reason, message, field_path))

    async def _send_events(self) -> None:
        while True:
            pod, type_, reason, message, field_path = await self._event_queue.get()
            try:
                await self._send_event(pod, type_, reason, message, field_path)
            except Exception as exc:  # noqa: BLE001 - events are best effort, as in Kubernetes
                log.debug("event %s not recorded: %s", reason, exc)

    async def _send_event(self, pod: dict[str, Any], type_: str, reason: str, message: str,
                          field_path: str | None) -> None:
        m = pod["metadata"]
        ns = m["namespace"]
        key = (m["uid"], field_path or "", reason, message)
        stamp = fmt_time()
        if key in self._events:
            name, count = self._events[key]
            self._events[key] = (name, count + 1)
            done = await self.request(
                "PATCH", f"/api/v1/namespaces/{ns}/events/{name}",
                body={"count": count + 1, "lastTimestamp": stamp},
                content_type="application/merge-patch+json", missing_ok=True)
            if done is not None:
                return
        name = f"{m['name']}.{uuid.uuid4().hex[:16]}"
        involved: dict[str, Any] = {"kind": "Pod", "namespace": ns, "name": m["name"],
                                    "uid": m["uid"], "apiVersion": "v1",
                                    "resourceVersion": m.get("resourceVersion", "")}
        if field_path:
            involved["fieldPath"] = field_path
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved, "reason": reason, "message": message, "type": type_,
                "source": {"component": "kubelet", "host": self.node_name},
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                "eventTime": None, "reportingComponent": "kubelet",
                "reportingInstance": self.node_name}
        self._events[key] = (name, 1)
        if len(self._events) > 5000:
            self._events.clear()
        await self.request("POST", f"/api/v1/namespaces/{ns}/events", body=body)

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "pods").mkdir(exist_ok=True)
        # Containers whose monitor still runs are adopted by their Pod's worker; only what
        # no monitor watches any more goes.
        killed = await asyncio.to_thread(kill_leftovers, self.state_dir, self.cgroups,
                                         keep_monitored=True)
        if killed:
            log.warning("killed %d processes left by a previous kubelet", killed)
        self.mount_mode = await asyncio.to_thread(detect_mode)
        self.switch_user = self.mount_mode == "namespace" and can_switch_user()
        # Pods' files, the serving key and the PVCs are the kubelet's alone; a container
        # sees only its own Pod's part (``sandbox``).
        self.state_dir.chmod(0o700)
        log.info("mount mode %s, memory cgroups %s, containers run as %s", self.mount_mode,
                 "on" if self.cgroups.enabled else "off (RSS watchdog)",
                 "their own users" if self.switch_user else "the kubelet's user")
        self.api = await kr8s.asyncio.api(kubeconfig=self.kubeconfig)
        self._read_kubeconfig()
        self.allocatable = resources.node_capacity(self.state_dir)
        await self._start_server()
        if self.network is None:
            from .network import PodNetwork

            self.network = PodNetwork(self.state_dir)
        await self.network.start(self.api)
        await self._register_node()
        self._tasks = [asyncio.create_task(self._send_events(), name="events"),
                       asyncio.create_task(self._heartbeat(), name="heartbeat"),
                       asyncio.create_task(self._watch_pods(), name="pods")]

    def _read_kubeconfig(self) -> None:
        config = yaml.safe_load(Path(self.kubeconfig).read_text()) or {}
        current = config.get("current-context")
        ctx = next((c["context"] for c in config.get("contexts", []) if c["name"] == current), {})
        cluster = next((c["cluster"] for c in config.get("clusters", [])
                        if c["name"] == ctx.get("cluster")), config["clusters"][0]["cluster"])
        self.api_server = cluster["server"]
        if cluster.get("certificate-authority-data"):
            self.ca_pem = base64.b64decode(cluster["certificate-authority-data"])
        elif cluster.get("certificate-authority"):
            self.ca_pem = Path(cluster["certificate-authority"]).read_bytes()

    async def _start_server(self) -> None:
        starter = self._server_start
        if starter is None:
            from .server import start_kubelet_server as starter
        pki = self.state_dir / "pki"
        ca = certs.ensure_ca(pki)
        pair = certs.issue_serving_cert(ca, pki, "kubelet", dns=("localhost", self.node_name))
        # No system CAs: callers must hold a certificate of this cluster's CA (the API
        # server's kubelet-client one), as with a real kubelet's --client-ca-file.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair.cert, pair.key)
        kwargs: dict[str, Any] = {}
        client_ca = self.client_ca or self.ca_pem
        if "client_auth" in inspect.signature(starter).parameters:
            kwargs["client_auth"] = True
            if client_ca:
                ctx.load_verify_locations(cadata=client_ca.decode())
                ctx.verify_mode = ssl.CERT_OPTIONAL  # /healthz answers anyone; the rest: 401
            else:
                log.warning("no cluster CA to verify callers with: the kubelet's endpoints "
                            "answer only /healthz")
        if "port_forward_handler" in inspect.signature(starter).parameters:
            from .portforward import handle_port_forward

            async def handler(request: Any) -> Any:
                return await handle_port_forward(request, self.pod_ip_of)

            kwargs["port_forward_handler"] = handler
        if "exec_handler" in inspect.signature(starter).parameters:
            kwargs["exec_handler"] = exec_handler(self.exec_context)
        result = starter(self.state_dir, host="127.0.0.1", port=0, ssl_context=ctx, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        self._server_runner, self.server_port = result

    async def pod_ip_of(self, namespace: str, name: str) -> str | None:
        for worker in self.workers.values():
            meta = worker.pod["metadata"]
            if meta["namespace"] == namespace and meta["name"] == name and worker.pod_ip:
                return str(worker.pod_ip)
        return None

    async def exec_context(self, namespace: str, name: str, container: str) -> ExecContext:
        """The running container ``kubectl exec`` means, or the kubelet's refusal in its words."""
        for worker in self.workers.values():
            meta = worker.pod["metadata"]
            if meta["namespace"] != namespace or meta["name"] != name:
                continue
            for c in worker.containers:
                if c.name == container and c.proc is not None and c.proc.running:
                    return c.proc
            raise ExecRequestError(500, f'container not found ("{container}")')
        raise ExecRequestError(404, "pod does not exist")

    async def run(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace_cap: float = 5.0) -> None:
        """Stop every Pod's processes (grace capped so a node shutdown stays short)."""
        self._stopping.set()
        for task in self._tasks:
            if task.get_name() == "pods":
                task.cancel()
        workers = list(self.workers.values())
        await asyncio.gather(*(w.shutdown(grace_cap) for w in workers), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.network is not None:
            with contextlib.suppress(Exception):
                await self.network.stop()
        if self._server_runner is not None:
            with contextlib.suppress(Exception):
                await self._server_runner.cleanup()
        self.cgroups.close()
        if self.api is not None and getattr(self.api, "_session", None) is not None:
            with contextlib.suppress(Exception):
                await self.api._session.aclose()

    # -- Node and Lease -----------------------------------------------------------------------
    def _node_status(self) -> dict[str, Any]:
        stamp = fmt_time()
        pressure = resources.pressure(self.state_dir)
        texts = {
            "MemoryPressure": ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory",
                               "kubelet has sufficient memory available"),
            "DiskPressure": ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure",
                             "kubelet has no disk pressure"),
            "PIDPressure": ("KubeletHasSufficientPID", "KubeletHasInsufficientPID",
                            "kubelet has sufficient PID available"),
        }
        conditions = []
        for kind, (ok_reason, bad_reason, ok_msg) in texts.items():
            bad = pressure[kind]
            conditions.append({"type": kind, "status": "True" if bad else "False",
                               "reason": bad_reason if bad else ok_reason,
                               "message": f"kubelet has {kind}" if bad else ok_msg,
                               "lastHeartbeatTime": stamp,
                               "lastTransitionTime": self._since(kind, "True" if bad else "False")})
        conditions.append({"type": "Ready", "status": "True", "reason": "KubeletReady",
                           "message": "kubelet is posting ready status",
                           "lastHeartbeatTime": stamp,
                           "lastTransitionTime": self._since("Ready", "True")})
        return {
            "capacity": dict(self.allocatable), "allocatable": dict(self.allocatable),
            "conditions": conditions,
            "addresses": [{"type": "InternalIP", "address": self.host_ip},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.server_port}},
            "nodeInfo": resources.node_info(),
            "images": [],
        }

    def _since(self, kind: str, status: str) -> str:
        prev = self._transitions.get(kind)
        if prev is None or prev[0] != status:
            self._transitions[kind] = (status, fmt_time())
        return self._transitions[kind][1]

    async def _register_node(self) -> None:
        arch = resources.node_info()["architecture"]
        labels = {"kubernetes.io/hostname": self.node_name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": arch}
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": {}}
        try:
            out = await self.request("POST", "/api/v1/nodes", body=node)
        except Conflict:
            out = await self.request("PATCH", f"/api/v1/nodes/{self.node_name}",
                                     body={"metadata": {"labels": labels}},
                                     content_type="application/merge-patch+json")
        self.node_uid = out["metadata"]["uid"]
        await self._post_node_status()
        await self._renew_lease()

    async def _post_node_status(self) -> None:
        out = await self.request("PATCH", f"/api/v1/nodes/{self.node_name}/status",
                                 body={"status": self._node_status()},
                                 content_type="application/merge-patch+json", missing_ok=True)
        if out is None:  # the Node was deleted: register again, as the kubelet does
            await self._register_node()

    async def _renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {"holderIdentity": self.node_name, "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_time()}
        out = await self.request("PATCH", path, body={"spec": spec},
                                 content_type="application/merge-patch+json", missing_ok=True)
        if out is None:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node_name, "namespace": "kube-node-lease",
                                  "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                       "name": self.node_name,
                                                       "uid": self.node_uid}]},
                     "spec": spec}
            await self.request("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                               "leases", body=lease)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._renew_lease()
                await self._post_node_status()
            except Exception as exc:  # noqa: BLE001 - keep beating through API hiccups
                log.warning("heartbeat failed: %s", exc)

    # -- Pods ---------------------------------------------------------------------------------
    async def _watch_pods(self) -> None:
        # Any ERROR event lists again at once; any other failure after a second.
        while True:
            try:
                async for event in ListThenWatch(self._list_pods, self._watch_pods_from,
                                                 relist_on=(APIError,)):
                    if isinstance(event, Relisted):
                        seen = set()
                        for pod in event.items:
                            seen.add(pod["metadata"]["uid"])
                            self._on_pod(pod)
                        for uid in list(self.workers):
                            if uid not in seen:
                                self._on_deleted(uid)
                    elif event.type == "DELETED":
                        self._on_deleted(event.object["metadata"]["uid"])
                    else:
                        self._on_pod(event.object)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - relist after any watch failure
                log.warning("pod watch failed (%s); listing again", exc)
                await asyncio.sleep(1)

    async def _list_pods(self) -> tuple[list[dict[str, Any]], str]:
        listing = await self.request("GET", "/api/v1/pods",
                                     params={"fieldSelector": f"spec.nodeName={self.node_name}"})
        return list(listing.get("items") or []), listing["metadata"]["resourceVersion"]

    @contextlib.asynccontextmanager
    async def _watch_pods_from(self, rv: str) -> AsyncIterator[AsyncIterator[str]]:
        params = {"watch": "true", "fieldSelector": f"spec.nodeName={self.node_name}",
                  "resourceVersion": rv, "allowWatchBookmarks": "true", "timeoutSeconds": "300"}
        base, version, url = _split("/api/v1/pods")
        async with self.api.call_api("GET", base=base, version=version, url=url, params=params,
                                     stream=True) as resp:
            yield resp.aiter_lines()

    def _on_pod(self, pod: dict[str, Any]) -> None:
        if (pod.get("spec") or {}).get("nodeName") != self.node_name or self._stopping.is_set():
            return
        uid = pod["metadata"]["uid"]
        self.network.observe_pod(pod)
        worker = self.workers.get(uid)
        if worker is None:
            worker = self.workers[uid] = PodWorker(self, pod)
            worker.task = asyncio.create_task(self._run_worker(worker), name=f"pod-{uid}")
        else:
            worker.update(pod)

    async def _run_worker(self, worker: Any) -> None:
        try:
            await worker.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pod worker %s crashed", worker.key)
        finally:
            if not self._stopping.is_set():
                self.workers.pop(worker.uid, None)

    def _on_deleted(self, uid: str) -> None:
        self.network.forget_pod(uid)
        worker = self.workers.get(uid)
        if worker is not None:
            worker.removed()


def _split(path: str) -> tuple[str, str, str]:
    """``/api/v1/x`` -> ("/api", "v1", "x"); ``/apis/g/v/x`` -> ("/apis", "g/v", "x")."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        return "/api", parts[1], "/".join(parts[2:])
    return "/apis", f"{parts[1]}/{parts[2]}", "/".join(parts[3:])


def _status(response: Any) -> Any:
    """The ``Status`` body of an error answer, or None if it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None
