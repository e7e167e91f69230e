"""How a :class:`KubeCluster` reaches its scheduler: directly in-cluster, else a port-forward.

The scheduler Service is usually a ClusterIP: its DNS name (``<cluster>-scheduler.<ns>.svc
.cluster.local``) resolves only inside the cluster. So, as upstream does:

* if that name resolves here (we run in a Pod, or on a machine with cluster DNS, e.g. over a
  VPN), the client connects to it directly;
* a LoadBalancer Service with an ingress address is used directly from anywhere;
* otherwise a kr8s :class:`~kr8s.asyncio.portforward.PortForward` to the Service's scheduler
  port is opened on a free local port (what ``kubectl port-forward svc/...`` does), and the
  dashboard gets one too, so ``Client(cluster)`` and ``cluster.dashboard_link`` work from a
  laptop. ``port_forward_cluster_ip=False`` turns forwarding off (use the DNS name anyway);
  ``True`` forces it even when the name resolves.

kr8s's ``PortForward.start()`` returns the local port it picked as soon as it has picked it:
before its listener is bound, and even when binding then fails (another process took the port
meanwhile, which a busy machine with many forwards sees). :func:`listening` checks that
something accepts connections there.

Port-forwards run as tasks of the cluster's event loop (the loop thread of a synchronous
KubeCluster), so they live exactly as long as the cluster object; :meth:`Forwards.close` stops
and awaits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass
from typing import Any

import kr8s.asyncio
from kr8s.asyncio.objects import Service
from kr8s.asyncio.portforward import PortForward

__all__ = ["Endpoint", "Forwards", "dns_resolves", "listening", "service_endpoint"]

DNS_TIMEOUT = 2.0


@dataclass(frozen=True)
class Endpoint:
    """Where to reach one port of the scheduler: ``host:port``, and whether it is forwarded."""

    host: str
    port: int
    forwarded: bool

    def url(self, scheme: str) -> str:
        return f"{scheme}://{self.host}:{self.port}"


async def dns_resolves(host: str, timeout: float = DNS_TIMEOUT) -> bool:
    """True if ``host`` resolves here within ``timeout`` seconds (never raises)."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.getaddrinfo(host, None, type=socket.SOCK_STREAM), timeout)
    except (TimeoutError, OSError, UnicodeError):
        return False
    return True


async def listening(endpoint: Endpoint, timeout: float = DNS_TIMEOUT) -> None:
    """Raise OSError unless ``endpoint`` accepts a TCP connection within ``timeout`` seconds.

    For a forward this proves its local listener exists; a connection that reaches it also
    opens (and, closed at once, ends) one tunnel to the Pod."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(endpoint.host, endpoint.port),
                                           timeout)
    except TimeoutError as exc:
        raise OSError(f"nothing answered at {endpoint.host}:{endpoint.port}") from exc
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def _service_port(service: dict[str, Any], port_name: str, default: int) -> dict[str, Any]:
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("name") == port_name:
            return dict(port)
    for port in (service.get("spec") or {}).get("ports") or []:
        if port.get("port") == default:
            return dict(port)
    return {"port": default, "targetPort": default}


def _container_port(pod: dict[str, Any] | None, target: Any, fallback: int) -> int:
    """The Pod port a Service ``targetPort`` (number or port name) designates."""
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    for container in ((pod or {}).get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and port.get("containerPort"):
                return int(port["containerPort"])
    return fallback


async def service_endpoint(*, service: dict[str, Any], pod: dict[str, Any] | None,
                           port_name: str, default_port: int, forward: bool | None,
                           forwards: Forwards, api: kr8s.asyncio.Api) -> Endpoint:
    """Where a client here reaches ``port_name`` of the scheduler ``service``.

    ``forward`` is ``port_forward_cluster_ip``: None decides automatically (see module doc).
    Raises LookupError if a port-forward is needed but the Service selects no ready Pod.
    """
    meta, spec = service["metadata"], service.get("spec") or {}
    port = _service_port(service, port_name, default_port)
    dns = f"{meta['name']}.{meta['namespace']}.svc.cluster.local"
    if spec.get("type") == "LoadBalancer" and forward is not True:
        for ingress in (service.get("status") or {}).get("loadBalancer", {}).get("ingress") or []:
            host = ingress.get("ip") or ingress.get("hostname")
            if host:
                return Endpoint(host, int(port["port"]), False)
    if forward is False or (forward is None and await dns_resolves(dns)):
        return Endpoint(dns, int(port["port"]), False)
    remote = _container_port(pod, port.get("targetPort", port["port"]), int(port["port"]))
    target = Service(service, api=api)
    if not await target.async_ready_pods():
        # Otherwise every connection through the forward fails with "No ready pods found".
        raise LookupError(f"Service {meta['name']} selects no ready Pod (selector "
                          f"{spec.get('selector')}); does its selector match the scheduler "
                          "Pod's labels?")
    local = await forwards.open(target, remote)
    return Endpoint("localhost", local, True)


class Forwards:
    """The port-forwards of one cluster object; each listens on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self._forwards: list[tuple[PortForward, asyncio.Task[Any] | None]] = []

    async def open(self, resource: Any, remote_port: int) -> int:
        forward = PortForward(resource, remote_port, local_port="auto")
        port = await forward.start()
        # kr8s's stop() only resolves a future; keep the task so close() can await it.
        self._forwards.append((forward, forward._bg_task))
        return int(port)

    async def close(self) -> None:
        forwards, self._forwards = self._forwards, []
        for forward, task in forwards:
            with contextlib.suppress(Exception):
                await forward.stop()
            if task is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(task, 5)

    def __bool__(self) -> bool:
        return bool(self._forwards)
