"""Which IPs may back a Service: shared by the API server (which refuses the others in Endpoints
and EndpointSlices) and the endpoints controller (which leaves Pods with such IPs out rather
than write what the server refuses)."""

from __future__ import annotations

import ipaddress


def special_ip_problems(address: str) -> list[str]:
    """Why ``address`` may not be a Service backend, in kube-apiserver's words (empty if it may)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return ["must be a valid IP address"]
    problems = []
    if ip.is_unspecified:
        problems.append(f"may not be unspecified ({address})")
    if ip.is_loopback:
        problems.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local and not ip.is_multicast:
        problems.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if ip in ipaddress.ip_network("224.0.0.0/24") or ip in ipaddress.ip_network("ff02::/16"):
        problems.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return problems
