"""Endpoints and EndpointSlice addresses: no unspecified, loopback or link-local IPs.

kube-apiserver refuses these in both kinds (``ValidateNonSpecialIP`` for Endpoints,
``ValidateEndpointIP`` for EndpointSlices): they are meaningless or node-local as a Service
backend, and a proxy on another node would send traffic to itself. The process kubelet's Pods
have loopback addresses, which is why its Pod network reads Pods, not Endpoints
(``kubelet/network.py``), and why the local endpoints controller leaves such Pods out. The
messages are Kubernetes 1.32's.
"""

from __future__ import annotations

from typing import Any

from .._special_ips import special_ip_problems
from .errors import Cause

Obj = dict[str, Any]


def _causes(path: str, address: Any) -> list[Cause]:
    if not isinstance(address, str):
        return []  # the schema check reports the wrong type
    return [Cause(path, f'Invalid value: "{address}": {problem}')
            for problem in special_ip_problems(address)]


def validate_endpoints(obj: Obj, ctx: Any = None) -> list[Cause]:
    meta = obj.get("metadata") or {}
    if (meta.get("namespace"), meta.get("name")) == ("default", "kubernetes"):
        # The API server's own record of where it listens (kubernetes_service.py), which on a
        # loopback-bound local server is a loopback address: its one writer is the server, as
        # on a real cluster, where the endpoints reconciler writes it. (A cluster-admin could
        # write a loopback address there too; a real server would refuse that.)
        return []
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        for field in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate((subset or {}).get(field) or []):
                causes += _causes(f"subsets[{i}].{field}[{j}].ip", (addr or {}).get("ip"))
    return causes


def validate_endpointslice(obj: Obj, ctx: Any = None) -> list[Cause]:
    if obj.get("addressType") not in ("IPv4", "IPv6"):
        return []  # FQDN slices hold names
    causes: list[Cause] = []
    for i, endpoint in enumerate(obj.get("endpoints") or []):
        for j, address in enumerate((endpoint or {}).get("addresses") or []):
            causes += _causes(f"endpoints[{i}].addresses[{j}]", address)
    return causes
