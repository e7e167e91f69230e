"""Validation of Endpoints addresses and of EndpointSlices, as kube-apiserver 1.32 does it.

Endpoints: no unspecified, loopback or link-local IPs (``ValidateNonSpecialIP``). EndpointSlices
(``pkg/apis/discovery/validation``): an address type, 1 to 100 addresses per endpoint valid for
that type (and, for IPs, the same special-IP rule, ``ValidateEndpointIP``), at most 1000
endpoints and 20000 ports, port names, protocols and app protocols, node names, hostnames,
deprecated topology labels and zone hints; the address type never changes. 1.32 checks nothing
else (not ``zone``, not the ``kubernetes.io/service-name`` label beyond label syntax, which
ObjectMeta validation covers for every kind).

The IP rule matters here because the process kubelet's Pods have loopback addresses: its Pod
network reads Pods, not Endpoints or EndpointSlices (``kubelet/network.py``), and the local
endpoints and EndpointSlice controllers leave such Pods out. The paths and messages are 1.32's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from .._special_ips import special_ip_problems
from .errors import Cause
from .fielderrors import duplicate, invalid, not_supported, required, too_many
from .objectmeta import (
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    validate_labels,
)

Obj = dict[str, Any]

ADDRESS_TYPES = ["FQDN", "IPv4", "IPv6"]
PORT_PROTOCOLS = ["SCTP", "TCP", "UDP"]
MAX_ADDRESSES, MAX_ENDPOINTS, MAX_PORTS = 100, 1000, 20000
MAX_TOPOLOGY_LABELS, MAX_ZONE_HINTS = 16, 8
ZONE_LABEL = "topology.kubernetes.io/zone"


def _is_own_record(obj: Obj) -> bool:
    """``default/kubernetes``: the API server's own record of where it listens
    (``kubernetes_service.py``), which on a loopback-bound local server is a loopback address.
    Its one writer is the server, as on a real cluster, where the apiserver's endpoint
    reconciler writes it. (A cluster-admin could write a loopback address there too; a real
    server would refuse that.)"""
    meta = obj.get("metadata") or {}
    return (meta.get("namespace"), meta.get("name")) == ("default", "kubernetes")


def _special(path: str, address: Any) -> list[Cause]:
    if not isinstance(address, str):
        return []  # the schema check reports the wrong type
    return [Cause(path, f'Invalid value: "{address}": {problem}')
            for problem in special_ip_problems(address)]


def validate_endpoints(obj: Obj, ctx: Any = None) -> list[Cause]:
    if _is_own_record(obj):
        return []
    causes: list[Cause] = []
    for i, subset in enumerate(obj.get("subsets") or []):
        for field in ("addresses", "notReadyAddresses"):
            for j, addr in enumerate((subset or {}).get(field) or []):
                causes += _special(f"subsets[{i}].{field}[{j}].ip", (addr or {}).get("ip"))
    return causes


# -- EndpointSlice ----------------------------------------------------------------------------

def _ip_version(address: str) -> int | None:
    """4 or 6 as Go's ``net.IP.To4`` sees it (an IPv4-mapped IPv6 address is IPv4)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return 4
    return ip.version


def fqdn_errors(name: str) -> list[tuple[str, str]]:
    """``IsFullyQualifiedDomainName``: (bad value, message) pairs; a trailing dot is allowed."""
    name = name[:-1] if name.endswith(".") else name
    errs = is_dns1123_subdomain(name)
    if errs:
        return [(name, m) for m in errs]
    if len(name.split(".")) < 2:
        return [(name, "should be a domain with at least two segments separated by dots")]
    for label in name.split("."):
        errs = is_dns1123_label(label)
        if errs:
            return [(label, m) for m in errs]
    return []


def _address(path: str, address: Any, address_type: Any, own_record: bool) -> list[Cause]:
    if not isinstance(address, str):
        return []  # the schema check reports the wrong type
    if address_type in ("IPv4", "IPv6"):
        version = int(address_type[-1])
        causes = [] if _ip_version(address) == version else [
            invalid(path, address, f"must be a valid IPv{version} address")]
        return causes if own_record else causes + _special(path, address)
    if address_type == "FQDN":
        if not address:
            return [required(path)]
        return [invalid(path, value, m) for value, m in fqdn_errors(address)]
    return []  # an unknown type is reported once, at addressType


def _hints(hints: Any, path: str) -> list[Cause]:
    zones = (hints or {}).get("forZones") or [] if isinstance(hints, dict) else []
    if len(zones) > MAX_ZONE_HINTS:
        return [too_many(f"{path}.forZones", len(zones), MAX_ZONE_HINTS)]
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, zone in enumerate(zones):
        zpath, name = f"{path}.forZones[{i}].name", (zone or {}).get("name") or ""
        if name in seen:
            causes.append(duplicate(zpath, name))
        seen.add(name)
        causes += [invalid(zpath, name, m) for m in is_valid_label_value(name)]
    return causes


def _endpoint(endpoint: Obj, path: str, address_type: Any, own_record: bool) -> list[Cause]:
    causes: list[Cause] = []
    addresses = endpoint.get("addresses") or []
    if not addresses:
        causes.append(required(f"{path}.addresses", "must contain at least 1 address"))
    elif len(addresses) > MAX_ADDRESSES:
        causes.append(too_many(f"{path}.addresses", len(addresses), MAX_ADDRESSES))
    for j, address in enumerate(addresses):
        causes += _address(f"{path}.addresses[{j}]", address, address_type, own_record)
    node = endpoint.get("nodeName")
    if isinstance(node, str):
        causes += [invalid(f"{path}.nodeName", node, m) for m in is_dns1123_subdomain(node)]
    topology = endpoint.get("deprecatedTopology") or {}
    if isinstance(topology, dict):
        if len(topology) > MAX_TOPOLOGY_LABELS:
            causes.append(too_many(f"{path}.deprecatedTopology", len(topology),
                                   MAX_TOPOLOGY_LABELS))
        causes += validate_labels(topology, f"{path}.deprecatedTopology")
    hostname = endpoint.get("hostname")
    if isinstance(hostname, str):
        causes += [invalid(f"{path}.hostname", hostname, m) for m in is_dns1123_label(hostname)]
    if endpoint.get("hints") is not None:
        causes += _hints(endpoint["hints"], f"{path}.hints")
    return causes


def _ports(ports: list[Any]) -> list[Cause]:
    if len(ports) > MAX_PORTS:
        return [too_many("ports", len(ports), MAX_PORTS)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(ports):
        port, path = port or {}, f"ports[{i}]"
        name = port.get("name") or ""
        if name:
            causes += [invalid(f"{path}.name", name, m) for m in is_dns1123_label(name)]
        if name in names:
            causes.append(duplicate(f"{path}.name", name))
        names.add(name)
        protocol = port.get("protocol")
        if protocol is None:
            causes.append(required(f"{path}.protocol"))
        elif protocol not in PORT_PROTOCOLS:
            causes.append(not_supported(f"{path}.protocol", protocol, PORT_PROTOCOLS))
        app = port.get("appProtocol")
        if isinstance(app, str):
            causes += [invalid(f"{path}.appProtocol", app, m) for m in is_qualified_name(app)]
    return causes


def validate_endpointslice(obj: Obj, ctx: Any = None) -> list[Cause]:
    causes: list[Cause] = []
    address_type = obj.get("addressType")
    if not address_type:
        causes.append(required("addressType"))
    elif address_type not in ADDRESS_TYPES:
        causes.append(not_supported("addressType", address_type, ADDRESS_TYPES))
    endpoints = obj.get("endpoints") or []
    if len(endpoints) > MAX_ENDPOINTS:
        causes.append(too_many("endpoints", len(endpoints), MAX_ENDPOINTS))
    else:
        own_record = _is_own_record(obj)
        for i, endpoint in enumerate(endpoints):
            causes += _endpoint(endpoint or {}, f"endpoints[{i}]", address_type, own_record)
    causes += _ports(obj.get("ports") or [])
    old = getattr(ctx, "old", None)
    if old is not None and old.get("addressType") != address_type:
        causes.append(invalid("addressType", address_type, "field is immutable"))
    return causes
