"""The EndpointSlice controller: which Pods back each Service, as kcm's endpointslice controller
writes it (discovery.k8s.io/v1, what kube-proxy and current clients read instead of Endpoints).

For every Service with a selector it keeps slices named ``<service>-<random>`` (generateName),
owned by the Service, labelled ``kubernetes.io/service-name`` and
``endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io`` (plus the Service's
own labels, and ``service.kubernetes.io/headless`` for a headless one). Each matching Pod that has
an IP of the slice's address family and is not terminal becomes an endpoint: its address,
``conditions`` (``serving`` = Ready, ``ready`` = serving and not terminating, ``terminating`` =
being deleted; all ready and serving with ``publishNotReadyAddresses``), ``nodeName``,
``hostname`` when the Pod names this Service as its subdomain, and ``targetRef``. Pods whose
ports resolve alike share slices of at most 100 endpoints; a Service without any such Pod keeps
one empty placeholder slice, as in Kubernetes. Slices go with their Service; a selector-less
Service's slices are the user's (or, for ``default/kubernetes``, the API server's own).

Pods whose IP the API server refuses as an endpoint address (loopback, as every Pod of the
process kubelet has; unspecified; link-local) are handled as the local Endpoints controller
handles them (``endpoints.py``): left out, with one Warning Event ``AddressNotAllowed`` on the
Service per Pod, so the controller writes what the server accepts and nothing retries or loops.
kcm's controller would write the address, be refused and retry with back-off.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging

from ...contract.pods import pod_ready
from ...contract.times import fmt_time
from ...kube import (
    ENDPOINTSLICES,
    PODS,
    SERVICES,
    Client,
    EventRecorder,
    Informer,
    NotFound,
    Obj,
    WorkQueue,
    run_informers,
    wait_synced,
)
from .._special_ips import special_ip_problems
from .endpoints import HEADLESS, TRIGGER_TIME, resolve_port, selected, services_of_pod

log = logging.getLogger("dask_kube_jobs.local.controllers.endpointslices")

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100  # kcm's --max-endpoints-per-slice default

Group = tuple[str, str]  # (addressType, the ports as JSON)


def _pod_address(pod: Obj, address_type: str) -> str | None:
    status = pod.get("status") or {}
    ips = [p.get("ip") for p in status.get("podIPs") or []] or [status.get("podIP")]
    version = 6 if address_type == "IPv6" else 4
    for ip in ips:
        try:
            if ip and ipaddress.ip_address(ip).version == version:
                return str(ip)
        except ValueError:
            continue
    return None


def _ports(service: Obj, pod: Obj) -> list[Obj]:
    """The service ports resolved on ``pod``, in the Service's order (unresolvable ones left out)."""
    ports = []
    for sp in (service.get("spec") or {}).get("ports") or []:
        number = resolve_port(sp, pod)
        if number is None:
            continue
        port: Obj = {"name": sp.get("name") or "", "port": number,
                     "protocol": sp.get("protocol", "TCP")}
        if sp.get("appProtocol"):
            port["appProtocol"] = sp["appProtocol"]
        ports.append(port)
    return ports


def _endpoint(service: Obj, pod: Obj, address: str) -> Obj:
    spec, meta = service.get("spec") or {}, pod["metadata"]
    publish = bool(spec.get("publishNotReadyAddresses"))
    serving = publish or pod_ready(pod)
    terminating = bool(meta.get("deletionTimestamp"))
    endpoint: Obj = {"addresses": [address],
                     "conditions": {"ready": publish or (serving and not terminating),
                                    "serving": serving, "terminating": terminating}}
    pod_spec = pod.get("spec") or {}
    if pod_spec.get("hostname") and pod_spec.get("subdomain") == service["metadata"]["name"]:
        endpoint["hostname"] = pod_spec["hostname"]
    if pod_spec.get("nodeName"):
        endpoint["nodeName"] = pod_spec["nodeName"]
    endpoint["targetRef"] = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                             "uid": meta.get("uid")}
    return endpoint


def desired_groups(service: Obj, pods: list[Obj],
                   refused: list[tuple[Obj, str]] | None = None) -> dict[Group, list[Obj]]:
    """Endpoints for ``service`` by address type and resolved ports; Pods whose address the
    server refuses are left out and, with the reason, appended to ``refused`` when given."""
    families = (service.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    groups: dict[Group, list[Obj]] = {}
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not selected(service, pod) or (pod.get("status") or {}).get("phase") in (
                "Succeeded", "Failed"):
            continue
        for address_type in families:
            address = _pod_address(pod, address_type)
            if address is None:
                continue
            problems = special_ip_problems(address)
            if problems:
                if refused is not None:
                    refused.append((pod, problems[0]))
                continue
            key = (address_type, json.dumps(_ports(service, pod), sort_keys=True))
            groups.setdefault(key, []).append(_endpoint(service, pod, address))
    if not groups:  # the placeholder: one empty slice of the first family, no ports
        groups[(families[0], "null")] = []
    return groups


def chunked(endpoints: list[Obj]) -> list[list[Obj]]:
    """The endpoints of one group, at most 100 a slice (one empty slice if there are none)."""
    return [endpoints[i:i + MAX_ENDPOINTS_PER_SLICE]
            for i in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE)] or [[]]


def _group_of(slice_: Obj) -> Group:
    return (slice_.get("addressType") or "", json.dumps(slice_.get("ports"), sort_keys=True))


class EndpointSliceController:
    name = "endpointslice"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.services = Informer(client, SERVICES)
        self.pods = Informer(client, PODS)
        self.slices = Informer(client, ENDPOINTSLICES,
                               label_selector=f"{MANAGED_BY}={CONTROLLER_NAME}")
        self.queue = WorkQueue("endpointslice")
        self.recorder = EventRecorder(client, "endpointslice-controller")
        self._warned: set[tuple[str, str]] = set()  # (Service uid, Pod uid) already said
        # Slices this controller created or deleted that its informer has not shown yet: a
        # sync waits for them rather than act on a cache that does not know its own writes.
        self._expected: dict[tuple[str, str], dict[str, bool]] = {}
        self.services.on_change(lambda kind, svc, old: self.queue.add(
            (svc["metadata"]["namespace"], svc["metadata"]["name"])))
        self.slices.on_change(self._on_slice)
        self.pods.on_change(self._on_pod)

    def _on_slice(self, kind: str, slice_: Obj, old: Obj | None) -> None:
        service = (slice_["metadata"].get("labels") or {}).get(SERVICE_NAME)
        if service:
            key = (slice_["metadata"]["namespace"], service)
            # the informer has caught up with this slice, whatever became of it since
            self._expected.get(key, {}).pop(slice_["metadata"]["name"], None)
            self.queue.add(key)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        for key in services_of_pod(self.services, pod, old):
            self.queue.add(key)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.services, self.pods, self.slices))
            await wait_synced(self.services, self.pods, self.slices)
            tg.create_task(self.queue.work(self.sync, workers=2))

    def _owned(self, namespace: str, name: str) -> list[Obj]:
        return sorted((s for s in self.slices.items(namespace)
                       if (s["metadata"].get("labels") or {}).get(SERVICE_NAME) == name),
                      key=lambda s: s["metadata"]["name"])

    def _cache_is_behind(self, key: tuple[str, str], owned: list[Obj]) -> bool:
        expected = self._expected.get(key)
        if not expected:
            return False
        present = {s["metadata"]["name"] for s in owned}
        for name, exists in list(expected.items()):
            if (name in present) == exists:
                del expected[name]
        return bool(expected)

    async def sync(self, key: tuple[str, str]) -> None:
        namespace, name = key
        service = self.services.get(namespace, name)
        owned = self._owned(namespace, name)
        if self._cache_is_behind(key, owned):
            return  # the informer's event for our own write requeues this Service
        expected = self._expected.setdefault(key, {})
        if service is None or not (service.get("spec") or {}).get("selector"):
            for slice_ in owned:  # a Service gone, or no longer selecting: its slices go
                with_name = slice_["metadata"]["name"]
                if await self.client.delete(ENDPOINTSLICES, namespace, with_name):
                    expected[with_name] = False
            if service is None:
                self._expected.pop(key, None)
            return
        refused: list[tuple[Obj, str]] = []
        groups = desired_groups(service, self.pods.items(namespace), refused)
        await self._warn(service, refused)
        by_group: dict[Group, list[Obj]] = {}
        for slice_ in owned:
            by_group.setdefault(_group_of(slice_), []).append(slice_)
        for group, endpoints in sorted(groups.items()):
            current = by_group.pop(group, [])
            chunks = chunked(endpoints)
            for i, chunk in enumerate(chunks):
                await self._write(service, group, chunk, current[i] if i < len(current) else None)
            for extra in current[len(chunks):]:
                by_group.setdefault(group, []).append(extra)
        for stale in (s for slices in by_group.values() for s in slices):
            stale_name = stale["metadata"]["name"]
            if await self.client.delete(ENDPOINTSLICES, namespace, stale_name):
                expected[stale_name] = False

    async def _warn(self, service: Obj, refused: list[tuple[Obj, str]]) -> None:
        for pod, problem in refused:
            said = (service["metadata"].get("uid") or "", pod["metadata"].get("uid") or "")
            if said in self._warned:
                continue
            if len(self._warned) > 10000:
                self._warned.clear()
            self._warned.add(said)
            ip = (pod.get("status") or {}).get("podIP")
            await self.recorder.record(
                service, "Warning", "AddressNotAllowed",
                f'Pod {pod["metadata"]["name"]} is left out of the EndpointSlices: its IP "{ip}" '
                f"{problem}, which the API server refuses in EndpointSlices")

    def _labels(self, service: Obj) -> dict[str, str]:
        labels = {k: v for k, v in (service["metadata"].get("labels") or {}).items()
                  if k not in (SERVICE_NAME, MANAGED_BY)}
        labels[SERVICE_NAME] = service["metadata"]["name"]
        labels[MANAGED_BY] = CONTROLLER_NAME
        if (service.get("spec") or {}).get("clusterIP") == "None":
            labels[HEADLESS] = ""
        return labels

    async def _write(self, service: Obj, group: Group, endpoints: list[Obj],
                     current: Obj | None) -> None:
        meta = service["metadata"]
        namespace, labels = meta["namespace"], self._labels(service)
        address_type, ports = group[0], json.loads(group[1])
        if current is not None and current.get("endpoints") == endpoints and \
                (current["metadata"].get("labels") or {}) == labels:
            return
        if current is None and meta.get("deletionTimestamp"):
            # As kube-controller-manager's reconciler: no new slice for a Service pending
            # deletion, or a foreground delete waits while the garbage collector removes each
            # slice and this controller makes it again.
            return
        body: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                     "metadata": {"labels": labels, "annotations": {TRIGGER_TIME: fmt_time()},
                                  "ownerReferences": [{
                                      "apiVersion": "v1", "kind": "Service",
                                      "name": meta["name"], "uid": meta["uid"],
                                      "controller": True, "blockOwnerDeletion": True}]},
                     "addressType": address_type, "endpoints": endpoints, "ports": ports}
        try:
            if current is None:
                body["metadata"]["generateName"] = f"{meta['name'][:56]}-"
                made = await self.client.create(ENDPOINTSLICES, namespace, body)
                self._expected.setdefault((namespace, meta["name"]), {})[
                    made["metadata"]["name"]] = True
            else:
                body["metadata"]["name"] = current["metadata"]["name"]
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                await self.client.replace(ENDPOINTSLICES, namespace, body["metadata"]["name"],
                                          body)
        except NotFound:
            if current is None:
                return  # the namespace is going away
            raise
