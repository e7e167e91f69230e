"""EndpointSlice validation through the API server's create and update paths, against the field
paths and messages of kube-apiserver 1.32 (``pkg/apis/discovery/validation``)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dask_kube_jobs.local.apiserver import errors
from dask_kube_jobs.local.apiserver.core import APICore

KEY = ("discovery.k8s.io", "endpointslices")
LOOPBACK = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


@pytest.fixture(scope="module")
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    return core


def eps(address_type: Any = "IPv4", endpoints: Any = None, ports: Any = None,
        name: str = "s") -> dict[str, Any]:
    body: dict[str, Any] = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                            "metadata": {"name": name}, "addressType": address_type,
                            "endpoints": [{"addresses": ["10.1.0.1"]}] if endpoints is None
                            else endpoints}
    if ports is not None:
        body["ports"] = ports
    if address_type is None:
        del body["addressType"]
    return body


def causes(core: APICore, body: dict[str, Any], *, dry_run: bool = True) -> list[str]:
    rtype = core.registry.get(*KEY)
    assert rtype is not None
    try:
        core.create(rtype, "v1", "default", copy.deepcopy(body), dry_run=dry_run)
    except errors.APIError as exc:
        assert exc.code == 422, exc.message
        return [f"{c.field}: {c.message}" for c in exc.causes]
    return []


def ep(*addresses: str, **extra: Any) -> dict[str, Any]:
    return {"addresses": list(addresses), **extra}


CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    ("valid IPv4", eps(endpoints=[ep("10.1.0.1", nodeName="node-a", hostname="h",
                                     conditions={"ready": True}, zone="any value",
                                     hints={"forZones": [{"name": "zone-a"}]})],
                       ports=[{"name": "http", "port": 80, "appProtocol": "kubernetes.io/h2c"},
                              {"port": 81, "protocol": "UDP"}]), []),
    ("valid IPv6", eps("IPv6", [ep("fd00::1")]), []),
    ("valid FQDN, trailing dot", eps("FQDN", [ep("db.example.com.")]), []),
    ("no endpoints at all", eps(endpoints=[]), []),
    ("address type required", eps(None), ["addressType: Required value"]),
    ("address type supported", eps("IP"), [
        'addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"']),
    ("an endpoint needs an address", eps(endpoints=[ep()]), [
        "endpoints[0].addresses: Required value: must contain at least 1 address"]),
    ("at most 100 addresses", eps(endpoints=[ep(*[f"10.1.0.{i}" for i in range(1, 102)])]), [
        "endpoints[0].addresses: Too many: 101: must have at most 100 items"]),
    ("at most 1000 endpoints", eps(endpoints=[ep("10.1.0.1")] * 1001), [
        "endpoints: Too many: 1001: must have at most 1000 items"]),
    ("IPv4 address", eps(endpoints=[ep("fd00::1"), ep("nope")]), [
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address',
        'endpoints[1].addresses[0]: Invalid value: "nope": must be a valid IPv4 address',
        'endpoints[1].addresses[0]: Invalid value: "nope": must be a valid IP address']),
    ("IPv6 address", eps("IPv6", [ep("10.1.0.1")]), [
        'endpoints[0].addresses[0]: Invalid value: "10.1.0.1": must be a valid IPv6 address']),
    ("loopback refused (the process kubelet's Pod IPs)", eps(endpoints=[ep("127.201.0.9")]), [
        f'endpoints[0].addresses[0]: Invalid value: "127.201.0.9": {LOOPBACK}']),
    ("IPv6 loopback refused", eps("IPv6", [ep("::1")]), [
        f'endpoints[0].addresses[0]: Invalid value: "::1": {LOOPBACK}']),
    ("unspecified and link-local refused", eps(endpoints=[ep("0.0.0.0", "169.254.1.1")]), [
        'endpoints[0].addresses[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)',
        'endpoints[0].addresses[1]: Invalid value: "169.254.1.1": may not be in the link-local '
        "range (169.254.0.0/16, fe80::/10)"]),
    ("link-local multicast refused", eps(endpoints=[ep("224.0.0.1")]), [
        'endpoints[0].addresses[0]: Invalid value: "224.0.0.1": may not be in the link-local '
        "multicast range (224.0.0.0/24, ff02::/10)"]),
    ("FQDN needs two segments", eps("FQDN", [ep("localhost")]), [
        'endpoints[0].addresses[0]: Invalid value: "localhost": should be a domain with at '
        "least two segments separated by dots"]),
    ("FQDN is a subdomain", eps("FQDN", [ep("Db.example.com")]), [
        f'endpoints[0].addresses[0]: Invalid value: "Db.example.com": {SUBDOMAIN_MSG}']),
    ("FQDN loopback-looking names are names", eps("FQDN", [ep("127.0.0.1.nip.io")]), []),
    ("node name", eps(endpoints=[ep("10.1.0.1", nodeName="Node_A")]), [
        f'endpoints[0].nodeName: Invalid value: "Node_A": {SUBDOMAIN_MSG}']),
    ("hostname", eps(endpoints=[ep("10.1.0.1", hostname="a.b")]), [
        f'endpoints[0].hostname: Invalid value: "a.b": {LABEL_MSG}']),
    ("zone hints", eps(endpoints=[ep("10.1.0.1", hints={"forZones": [
        {"name": "a"}, {"name": "a"}, {"name": "-b"}]})]), [
        'endpoints[0].hints.forZones[1].name: Duplicate value: "a"',
        'endpoints[0].hints.forZones[2].name: Invalid value: "-b": a valid label must be an '
        "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
        "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
        "regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("at most 8 zone hints", eps(endpoints=[ep("10.1.0.1", hints={"forZones": [
        {"name": f"z{i}"} for i in range(9)]})]), [
        "endpoints[0].hints.forZones: Too many: 9: must have at most 8 items"]),
    ("at most 16 topology labels", eps(endpoints=[ep("10.1.0.1", deprecatedTopology={
        f"k{i}": "v" for i in range(17)})]), [
        "endpoints[0].deprecatedTopology: Too many: 17: must have at most 16 items"]),
    ("port names", eps(ports=[{"name": "Web", "port": 80}, {"port": 81}, {"port": 82}]), [
        f'ports[0].name: Invalid value: "Web": {LABEL_MSG}',
        'ports[2].name: Duplicate value: ""']),
    ("port protocol", eps(ports=[{"port": 80, "protocol": "ICMP"}]), [
        'ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"']),
    ("app protocol", eps(ports=[{"port": 80, "appProtocol": "a/b/c"}]), [
        'ports[0].appProtocol: Invalid value: "a/b/c": a qualified name must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and "
        "'/' (e.g. 'example.com/MyName')"]),
    ("at most 20000 ports", eps(ports=[{"port": 1}] * 20001), [
        "ports: Too many: 20001: must have at most 20000 items"]),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_validation(core: APICore, body: dict[str, Any], expected: list[str]) -> None:
    assert causes(core, body) == expected


def test_defaults(core: APICore) -> None:
    """A port's name defaults to "" and its protocol to TCP; ``endpoints`` is always there."""
    rtype = core.registry.get(*KEY)
    assert rtype is not None
    out = core.create(rtype, "v1", "default", eps(endpoints=[], ports=[{"port": 80}]),
                      dry_run=True)
    assert out["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    body = eps(ports=[{"port": 80}])
    del body["endpoints"]
    assert core.create(rtype, "v1", "default", body, dry_run=True)["endpoints"] is None


def test_address_type_is_immutable(core: APICore) -> None:
    rtype = core.registry.get(*KEY)
    assert rtype is not None
    stored = core.create(rtype, "v1", "default", eps(name="immutable"))
    changed = copy.deepcopy(stored)
    changed["addressType"], changed["endpoints"] = "FQDN", [ep("db.example.com")]
    with pytest.raises(errors.APIError) as caught:
        core.update(rtype, "v1", "default", "immutable", changed)
    assert [f"{c.field}: {c.message}" for c in caught.value.causes] == [
        'addressType: Invalid value: "FQDN": field is immutable']


def test_the_servers_own_slice_is_exempt_from_the_loopback_rule(core: APICore) -> None:
    """As the ``default/kubernetes`` Endpoints: the server's own record of its loopback address."""
    assert causes(core, eps(endpoints=[ep("127.0.0.1")], name="kubernetes")) == []
    assert causes(core, eps(endpoints=[ep("fd00::1")], name="kubernetes")) == [
        'endpoints[0].addresses[0]: Invalid value: "fd00::1": must be a valid IPv4 address']
