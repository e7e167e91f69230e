"""The ``default/kubernetes`` Service, Endpoints and EndpointSlice: where the API server is reached.

Every real cluster has them, written by kube-apiserver's own reconciler (not by the endpoints
controller, since the Service has no selector): a ClusterIP Service named ``kubernetes`` in
``default`` with port ``https`` 443 pointing at the API server's secure port, and Endpoints of
the same name holding the server's advertise address (labelled so the EndpointSlice mirroring
controller leaves them alone), and the EndpointSlice of the same name that the same reconciler
writes beside them (labelled with the Service's name, no ``managed-by``: the EndpointSlice
controller leaves a selector-less Service's slices alone). In-cluster clients and tools that look
for "the API server" read them.

The local API server listens on loopback only, so the address it publishes is that loopback
address and the port it really bound. A real server would refuse 127.0.0.0/8 in Endpoints a
client writes, and never advertises such an address itself; here it is the only true answer,
and it is written by the server through its own storage path, at start-up, exactly as the real
reconciler is the only writer of these Endpoints and this EndpointSlice. Whatever validation
the Endpoints and EndpointSlices of clients get, this one writer is the server's
(``endpointsvalidation.py`` exempts exactly ``default/kubernetes``). It is rewritten on each start (the port may change) and
the ClusterIP is the first address of the local service range, as on a real cluster.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import errors

if TYPE_CHECKING:
    from .core import APICore

Obj = dict[str, Any]

NAME, NAMESPACE = "kubernetes", "default"
SERVICES, ENDPOINTS = ("", "services"), ("", "endpoints")
ENDPOINTSLICES = ("discovery.k8s.io", "endpointslices")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def desired_service(cluster_ip: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                "targetPort": port}]}}


def desired_endpoints(host: str, port: int) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": host}],
                         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}


def desired_endpointslice(host: str, port: int) -> Obj:
    """What the reconciler derives from the Endpoints: one ready endpoint, the https port."""
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {SERVICE_NAME_LABEL: NAME}},
            "addressType": "IPv6" if ":" in host else "IPv4",
            "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}


def _upsert(core: APICore, key: tuple[str, str], desired: Obj, fields: tuple[str, ...]) -> None:
    rtype = core.registry.get(*key)
    assert rtype is not None
    version = rtype.storage_version
    current = core.store.get(key, NAMESPACE, NAME)
    if current is None:
        core.create(rtype, version, NAMESPACE, desired)
        return
    updated = copy.deepcopy(current)
    updated["metadata"]["labels"] = {**(current["metadata"].get("labels") or {}),
                                     **desired["metadata"]["labels"]}
    for field in fields:
        if field == "spec":
            updated["spec"] = {**(current.get("spec") or {}), "ports": desired["spec"]["ports"]}
        else:
            updated[field] = desired[field]
    if updated != current:
        core.update(rtype, version, NAMESPACE, NAME, updated)


def publish(core: APICore, host: str, port: int) -> None:
    """Create or refresh the Service, Endpoints and EndpointSlice for the server now listening
    at host:port."""
    cluster_ip = core.ips.first()
    try:
        _upsert(core, SERVICES, desired_service(cluster_ip, port), ("spec",))
        _upsert(core, ENDPOINTS, desired_endpoints(host, port), ("subsets",))
        _upsert(core, ENDPOINTSLICES, desired_endpointslice(host, port), ("endpoints", "ports"))
    except errors.APIError as exc:  # never expected: the server's own objects are valid
        raise RuntimeError(f"cannot publish the kubernetes Service: {exc}") from exc
