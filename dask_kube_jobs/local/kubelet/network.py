"""Pod addresses and the service map that the Pods' name resolution reads.

A real kubelet delegates Pod networking to a CNI plugin and name resolution to cluster DNS plus
kube-proxy. The process kubelet has neither, so it gives each Pod an address of its own on the
loopback network (Linux routes all of 127.0.0.0/8 to ``lo``; nothing here ever binds or
connects outside it) and keeps a small JSON *service map* that the ``podnet/sitecustomize.py``
shim reads inside every Pod process to resolve Service names to ready backends with the right
target ports.

Why not Endpoints: a real API server refuses loopback addresses in Endpoints and EndpointSlices
("may not be in the loopback range (127.0.0.0/8)"), so the endpoints controllers can never
publish these Pods. The kubelet does not need them: it knows its own Pods (from its Pod watch:
labels, address, readiness, container ports) and reads Services with kube-proxy's rights
(``system:node-proxier``: list/watch Services cluster-wide). A Service's backends are the
node's own ready Pods matching its selector, with ``targetPort`` resolved against each Pod's
container ports, which is what the endpoints controller and kube-proxy would compute together.

Limits: only Pods on this node are backends. A Pod on another node (another process kubelet, or
a real node) is not reachable through a Service here; that would need a routable Pod address
published in EndpointSlices (a real network, not loopback) and this map built from those
slices. Services without a selector (hand-written Endpoints) have no backends; ExternalName
Services are not served; a name without a ready backend resolves to the cluster IP, which
leaves the machine, as on a node whose kube-proxy has no endpoints.

Addresses are persisted in the state directory, so a kubelet that restarts gives running Pods
the address they already have; released addresses are not handed out again at once (allocation
goes round the range), so a late connection to a deleted Pod does not reach its successor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from ...kube import APIError, Backoff, Forbidden, ListThenWatch, Relisted, api_error

log = logging.getLogger(__name__)

#: The directory the kubelet puts first on every Pod's ``PYTHONPATH``.
PODNET_DIR = Path(__file__).resolve().parent / "podnet"
#: Pod addresses: one /16 of 127.0.0.0/8 per kubelet on the machine (127.244.0.0/16 first),
#: skipping .0 and .255 in each /24 for readability.
POD_NETWORK = ipaddress.IPv4Network("127.244.0.0/16")
#: Second octets a kubelet may lease for its Pods, preferred first. Each is leased machine-wide
#: with a lock file, so several local control planes (a user's and a test session's) never
#: hand out the same Pod address.
SUBNET_OCTETS = (244, *range(200, 244), *range(245, 251))
LEASE_DIR = Path(os.environ.get("DKJ_PODNET_LEASES", "/tmp/dask-kube-jobs-podnets"))


def lease_subnet(preferred: int | None) -> tuple[ipaddress.IPv4Network, Any]:
    """Lease a /16 for this kubelet's Pods; the lease lasts as long as the returned file is
    open (the kernel drops the lock when the process dies, even by SIGKILL)."""
    import fcntl

    LEASE_DIR.mkdir(parents=True, exist_ok=True)
    order = [preferred] if preferred in SUBNET_OCTETS else []
    for octet in order + [o for o in SUBNET_OCTETS if o != preferred]:
        fh = open(LEASE_DIR / f"127.{octet}.lock", "a+")  # noqa: SIM115 - held for the lease
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        return ipaddress.IPv4Network(f"127.{octet}.0.0/16"), fh
    raise RuntimeError("every Pod subnet of 127.0.0.0/8 this kubelet may use is leased by another "
                       f"local kubelet (see {LEASE_DIR})")
CLUSTER_DOMAIN = "cluster.local"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def with_shim(env: dict[str, str]) -> dict[str, str]:
    """``env`` with the shim directory first on ``PYTHONPATH`` (for callers and tests)."""
    out = dict(env)
    rest = out.get("PYTHONPATH")
    out["PYTHONPATH"] = str(PODNET_DIR) + (os.pathsep + rest if rest else "")
    return out


def build_service_map(services: dict[tuple[str, str], dict[str, Any]],
                      pods: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The map the shim reads: per ``ns/name``, the cluster IP and the ready backends.

    Backends are this node's own Pods (``pods``, by uid) in the Service's namespace whose labels
    match its selector and that are ready (or any Pod with an address when the Service publishes
    not-ready addresses), as the endpoints controller would pick them. Each backend lists, per
    Service port, the port on that Pod: ``targetPort`` as a number, or a named container port
    of that Pod (named target ports differ per Pod; a Pod without the name is no backend for
    that port, as it gets no endpoint port).
    """
    out: dict[str, Any] = {}
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for pod in pods.values():
        by_namespace.setdefault(pod["metadata"].get("namespace") or "", []).append(pod)
    for (ns, name), svc in sorted(services.items()):
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName":
            continue  # would need the outside world's DNS; not served locally
        cluster_ip = spec.get("clusterIP")
        if cluster_ip in ("", "None"):
            cluster_ip = None
        ports = [p for p in spec.get("ports") or [] if isinstance(p.get("port"), int)]
        selector = spec.get("selector") or {}
        backends: list[dict[str, Any]] = []
        for pod in by_namespace.get(ns, []) if selector else []:
            labels = pod["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            if not _serves(pod, bool(spec.get("publishNotReadyAddresses"))):
                continue
            pod_spec = pod.get("spec") or {}
            mapped = {str(sp["port"]): target for sp in ports
                      if (target := _target_port(sp, pod_spec)) is not None}
            if ports and not mapped:
                continue
            backends.append({
                "ip": pod["status"]["podIP"],
                "hostname": pod_spec.get("hostname") if pod_spec.get("subdomain") == name
                else None,
                "pod": pod["metadata"].get("name"), "ports": mapped})
        out[f"{ns}/{name}"] = {
            "clusterIP": cluster_ip,
            "portNames": {p["name"]: p["port"] for p in ports if p.get("name")},
            "backends": sorted(backends, key=lambda b: b["ip"]),
        }
    return {"version": 1, "clusterDomain": CLUSTER_DOMAIN, "services": out}


def _serves(pod: dict[str, Any], not_ready_too: bool) -> bool:
    """Whether a Pod is a Service backend: it has an address, is not ending or ended, and is
    Ready (unless the Service publishes not-ready addresses)."""
    status = pod.get("status") or {}
    if not status.get("podIP") or pod["metadata"].get("deletionTimestamp"):
        return False
    if status.get("phase") in ("Succeeded", "Failed"):
        return False
    return not_ready_too or any(c.get("type") == "Ready" and c.get("status") == "True"
                                for c in status.get("conditions") or [])


def _target_port(sp: dict[str, Any], pod_spec: dict[str, Any]) -> int | None:
    target = sp.get("targetPort", sp["port"])
    if isinstance(target, int):
        return target
    if str(target).isdigit():
        return int(target)
    protocol = sp.get("protocol") or "TCP"
    for c in pod_spec.get("containers") or []:
        for cp in c.get("ports") or []:
            if cp.get("name") == target and (cp.get("protocol") or "TCP") == protocol:
                return int(cp["containerPort"])
    return None


class PodNetwork:
    """Addresses for Pods and the service map for their processes (see the module docstring)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir) / "network"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ips_file = self.dir / "pod-ips.json"
        self.map_file = self.dir / "services.json"
        self._ips: dict[str, str] = {}
        self._next = 0
        self._load_ips()
        previous = ipaddress.IPv4Address(next(iter(self._ips.values()))) if self._ips else None
        self.network, self._lease = lease_subnet(previous.packed[1] if previous else None)
        if previous is not None and previous not in self.network:
            self._ips, self._next = {}, 0  # our old subnet went to another kubelet meanwhile
        self._services: dict[tuple[str, str], dict[str, Any]] = {}
        self._pods: dict[str, dict[str, Any]] = {}
        self._failure: APIError | None = None
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._written: str | None = None
        if not self.map_file.exists():
            self._write_map()

    # -- addresses ---------------------------------------------------------------------------
    def _load_ips(self) -> None:
        try:
            data = json.loads(self.ips_file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return
        self._ips = {str(k): str(v) for k, v in (data.get("pods") or {}).items()}
        self._next = int(data.get("next") or 0)

    def _save_ips(self) -> None:
        _atomic_write(self.ips_file, json.dumps({"next": self._next, "pods": self._ips}, indent=1))

    def allocate(self, pod_uid: str) -> str:
        """The Pod's address: the one it already has, else the next free one in the range."""
        if pod_uid in self._ips:
            return self._ips[pod_uid]
        used = set(self._ips.values())
        size = self.network.num_addresses
        base = int(self.network.network_address)
        for step in range(1, size + 1):
            index = (self._next + step) % size
            if index % 256 in (0, 255):
                continue
            ip = str(ipaddress.IPv4Address(base + index))
            if ip not in used:
                self._next = index
                self._ips[pod_uid] = ip
                self._save_ips()
                return ip
        raise RuntimeError(f"no free Pod address left in {self.network}")

    def release(self, pod_uid: str) -> None:
        if self._ips.pop(pod_uid, None) is not None:
            self._save_ips()

    def pod_ip(self, pod_uid: str) -> str | None:
        return self._ips.get(pod_uid)

    def allocated(self) -> dict[str, str]:
        """uid -> address, e.g. for a restarted kubelet to release Pods that are gone."""
        return dict(self._ips)

    def process_env(self, pod_ip: str, namespace: str) -> dict[str, str]:
        """Environment for every container process of a Pod (the shim reads it)."""
        return {"DKJ_POD_IP": pod_ip, "DKJ_POD_NAMESPACE": namespace,
                "DKJ_SERVICE_MAP": str(self.map_file)}

    def release_lease(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def verify(self) -> None:
        """Fail clearly where the loopback range is not all local (macOS needs lo0 aliases)."""
        probe_ip = str(self.network.network_address + 1)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((probe_ip, 0))
            except OSError as exc:
                raise RuntimeError(
                    f"cannot bind {probe_ip}: Pods need the loopback range {self.network} "
                    f"(Linux routes 127.0.0.0/8 to lo; elsewhere add aliases): {exc}") from exc

    # -- service map ---------------------------------------------------------------------------
    async def start(self, api: Any) -> None:
        """List Services, write the map, then keep it current in the background.

        Fails at once, naming the request and the missing right, when the API server refuses
        the list (a node without the ``system:node-proxier`` binding), and after 30 s of other
        failures with the last one.
        """
        self.verify()
        synced, failed = asyncio.Event(), asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._sync(api, "services", self._services, synced, failed),
                                name="podnet-services"),
            asyncio.create_task(self._writer(), name="podnet-writer"),
        ]
        waiters = [asyncio.create_task(synced.wait()), asyncio.create_task(failed.wait())]
        try:
            await asyncio.wait(waiters, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if not synced.is_set():
                error = self._failure
                if isinstance(error, Forbidden):
                    raise RuntimeError(
                        f"the Pod network must list and watch Services in all namespaces, and "
                        f"the API server refused: {error}. Bind the ClusterRole "
                        f"system:node-proxier to this kubelet's user (docs/local-control-plane.md)")
                raise RuntimeError("could not list Services within 30 s"
                                   + (f": {error}" if error else ""))
        except BaseException:
            await self.stop()
            raise
        finally:
            for w in waiters:
                w.cancel()
        self._write_map()

    # -- this node's Pods -----------------------------------------------------------------------
    def observe_pod(self, pod: dict[str, Any]) -> None:
        """A Pod bound to this node as the API last showed it (its status is the kubelet's)."""
        uid = pod["metadata"]["uid"]
        if self._pods.get(uid) != pod:
            self._pods[uid] = pod
            self._dirty.set()

    def forget_pod(self, uid: str) -> None:
        if self._pods.pop(uid, None) is not None:
            self._dirty.set()

    async def stop(self) -> None:
        self.release_lease()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _write_map(self) -> None:
        text = json.dumps(build_service_map(self._services, self._pods), sort_keys=True)
        if text != self._written:
            _atomic_write(self.map_file, text)
            self._written = text

    async def _writer(self) -> None:
        # Events arriving together are written once: the flag is cleared before writing.
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                self._write_map()
            except OSError:
                log.exception("could not write the service map %s", self.map_file)

    async def _sync(self, api: Any, resource: str, store: dict[tuple[str, str], dict[str, Any]],
                    synced: asyncio.Event, failed: asyncio.Event) -> None:
        """List then watch ``resource`` in all namespaces into ``store``. Any ERROR event (a
        410 or anything else) lists again at once; after other failures the watch resumes from
        the last version seen, and lists again once the pauses have grown to 5 s."""

        async def list_all() -> tuple[list[dict[str, Any]], str]:
            try:
                async with api.call_api("GET", version="v1", url=resource) as resp:
                    body = resp.json()
            except Exception as exc:
                response = getattr(exc, "response", None)
                if response is None:
                    raise
                self._failure = api_error(response.status_code, _json_or_none(response),
                                          response.text[:200])
                if not synced.is_set():
                    failed.set()
                raise self._failure from exc
            return list(body.get("items") or []), str(body["metadata"]["resourceVersion"])

        @contextlib.asynccontextmanager
        async def watch_from(rv: str) -> AsyncIterator[AsyncIterator[str]]:
            params = {"watch": "true", "resourceVersion": rv,
                      "allowWatchBookmarks": "true", "timeoutSeconds": "290"}
            async with api.call_api("GET", version="v1", url=resource, params=params,
                                    stream=True, timeout=None) as resp:
                yield resp.aiter_lines()

        rv: str | None = None
        backoff = Backoff(first=0.2, most=5.0)
        while True:
            stream = ListThenWatch(list_all, watch_from, resource_version=rv,
                                   relist_on=(APIError,))
            try:
                async for event in stream:
                    backoff.reset()
                    if isinstance(event, Relisted):
                        store.clear()
                        for obj in event.items:
                            store[_key(obj)] = obj
                        synced.set()
                    elif event.type == "DELETED":
                        store.pop(_key(event.object), None)
                    elif event.type in ("ADDED", "MODIFIED"):
                        store[_key(event.object)] = event.object
                    else:
                        continue
                    self._dirty.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the API server restarting, a network hiccup, ...
                delay = backoff.next_delay()
                log.warning("watch of %s failed (%s); retrying in %.1fs", resource, exc, delay)
                await asyncio.sleep(delay)
                # resume where the watch stopped, until the pauses have grown to the bound
                rv = None if delay * 2 >= backoff.most else stream.resource_version


def _json_or_none(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")
