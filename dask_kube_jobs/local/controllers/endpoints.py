"""The Endpoints controller: which Pods back each Service, as kcm's endpoint controller writes it.

For every Service with a selector it keeps an ``Endpoints`` object of the same name: each matching
Pod with an IP becomes an address (``ip``, ``nodeName``, ``targetRef``) under ``addresses`` when
Ready or ``notReadyAddresses`` otherwise (all under ``addresses`` with
``publishNotReadyAddresses``); each service port becomes an endpoint port whose number is the
``targetPort`` resolved against that Pod's container ports (a named port may be a different
number on different Pods). As in Kubernetes, addresses with the same resolved ports are packed
into one subset. The kubelet's DNS for Services, ``kubectl describe svc`` and the operator read
this. Endpoints of a Service that goes are deleted; a Service without a selector is left alone
(its Endpoints are the user's).

Pods whose IP the API server refuses as an endpoint address (loopback, as every Pod of the
process kubelet has; unspecified; link-local) are left out, with one Warning Event
``AddressNotAllowed`` on the Service per Pod. kcm's controller writes what the Pod's status says,
is refused and retries with back-off for as long as the Pod lives; leaving the address out
writes what the server accepts instead, so nothing retries or loops, and Service resolution for
such Pods is the kubelet's business (its Pod network reads Pods, not Endpoints).
"""

from __future__ import annotations

import asyncio
import json
import logging

from ...contract.pods import pod_ready
from ...contract.times import fmt_time
from ...kube import (
    ENDPOINTS,
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

log = logging.getLogger("dask_kube_jobs.local.controllers.endpoints")

TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
HEADLESS = "service.kubernetes.io/headless"


def selected(service: Obj, pod: Obj) -> bool:
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = pod["metadata"].get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def services_of_pod(services: Informer, pod: Obj, old: Obj | None) -> list[tuple[str, str]]:
    """(namespace, name) of each Service that selects ``pod`` now or selected it before the
    change (``old``): what a Pod event requeues in the controllers that follow Services' Pods."""
    ns = pod["metadata"]["namespace"]
    return [(ns, svc["metadata"]["name"]) for svc in services.items(ns)
            if selected(svc, pod) or (old is not None and selected(svc, old))]


def resolve_port(service_port: Obj, pod: Obj) -> int | None:
    """The number a service port's ``targetPort`` means on ``pod`` (None if the name is unknown)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = service_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == protocol:
                return int(p["containerPort"])
    return None


def build_subsets(service: Obj, pods: list[Obj],
                  refused: list[tuple[Obj, str]] | None = None) -> list[Obj]:
    """``subsets`` for ``service``: addresses grouped by identical resolved ports (RepackSubsets).

    Pods whose IP may not be an endpoint address are left out and, with the reason, appended to
    ``refused`` when it is given."""
    spec = service.get("spec") or {}
    publish_unready = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[str, tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for pod in sorted(pods, key=lambda p: ((p.get("status") or {}).get("podIP", ""),
                                           p["metadata"]["name"])):
        status = pod.get("status") or {}
        ip = status.get("podIP")
        if not ip or not selected(service, pod) or status.get("phase") in ("Succeeded", "Failed"):
            continue
        if pod["metadata"].get("deletionTimestamp") and not publish_unready:
            continue
        problems = special_ip_problems(ip)
        if problems:
            if refused is not None:
                refused.append((pod, problems[0]))
            continue
        meta = pod["metadata"]
        address: Obj = {"ip": ip}
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        if (pod.get("spec") or {}).get("hostname") and (pod.get("spec") or {}).get("subdomain") \
                == service["metadata"]["name"]:
            address["hostname"] = pod["spec"]["hostname"]
        address["targetRef"] = {"kind": "Pod", "namespace": meta["namespace"],
                                "name": meta["name"], "uid": meta.get("uid")}
        ports: list[Obj] = []
        for sp in spec.get("ports") or []:
            number = resolve_port(sp, pod)
            if number is None:
                continue
            port = {"port": number, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                port["name"] = sp["name"]
            if sp.get("appProtocol"):
                port["appProtocol"] = sp["appProtocol"]
            ports.append(port)
        if spec.get("ports") and not ports:
            continue
        ports.sort(key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        group = groups.setdefault(json.dumps(ports, sort_keys=True), ([], [], ports))
        (group[0] if publish_unready or pod_ready(pod) else group[1]).append(address)
    subsets = []
    for _, (ready, unready, ports) in sorted(groups.items()):
        subset: Obj = {}
        if ready:
            subset["addresses"] = ready
        if unready:
            subset["notReadyAddresses"] = unready
        if ports:
            subset["ports"] = ports
        subsets.append(subset)
    return subsets


class EndpointsController:
    name = "endpoints"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.services = Informer(client, SERVICES)
        self.pods = Informer(client, PODS)
        self.endpoints = Informer(client, ENDPOINTS)
        self.queue = WorkQueue("endpoints")
        self.recorder = EventRecorder(client, "endpoint-controller")
        self._warned: set[tuple[str, str]] = set()  # (Service uid, Pod uid) already said
        self.services.on_change(lambda kind, svc, old: self.queue.add(
            (svc["metadata"]["namespace"], svc["metadata"]["name"])))
        # As kcm: only a deleted Endpoints is re-synced (recreated if its Service selects Pods);
        # Endpoints a user creates for a selector-less Service are never touched.
        self.endpoints.on_change(lambda kind, ep, old: kind == "DELETED" and self.queue.add(
            (ep["metadata"]["namespace"], ep["metadata"]["name"])))
        self.pods.on_change(self._on_pod)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        for key in services_of_pod(self.services, pod, old):
            self.queue.add(key)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.services, self.pods, self.endpoints))
            await wait_synced(self.services, self.pods, self.endpoints)
            tg.create_task(self.queue.work(self.sync, workers=2))

    async def sync(self, key: tuple[str, str]) -> None:
        namespace, name = key
        service = self.services.get(namespace, name)
        current = self.endpoints.get(namespace, name)
        if service is None:
            if current is not None:
                await self.client.delete(ENDPOINTS, namespace, name)
            return
        spec = service.get("spec") or {}
        if not spec.get("selector"):
            return  # user-managed Endpoints
        refused: list[tuple[Obj, str]] = []
        subsets = build_subsets(service, self.pods.items(namespace), refused)
        for pod, problem in refused:
            said = (service["metadata"].get("uid") or "", pod["metadata"].get("uid") or "")
            if said in self._warned:
                continue
            if len(self._warned) > 10000:
                self._warned.clear()
            self._warned.add(said)
            ip = pod["status"]["podIP"]
            await self.recorder.record(
                service, "Warning", "AddressNotAllowed",
                f'Pod {pod["metadata"]["name"]} is left out of the Endpoints: its IP "{ip}" '
                f"{problem}, which the API server refuses in Endpoints")
        labels = dict(service["metadata"].get("labels") or {})
        if spec.get("clusterIP") == "None":
            labels[HEADLESS] = ""
        if current is not None and (current.get("subsets") or []) == subsets and \
                (current["metadata"].get("labels") or {}) == labels:
            return
        body: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                     "metadata": {"name": name, "namespace": namespace, "labels": labels,
                                  "annotations": {TRIGGER_TIME: fmt_time()}},
                     "subsets": subsets}
        try:
            if current is None:
                await self.client.create(ENDPOINTS, namespace, body)
            else:
                body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
                annotations = dict(current["metadata"].get("annotations") or {})
                annotations[TRIGGER_TIME] = fmt_time()
                body["metadata"]["annotations"] = annotations
                await self.client.replace(ENDPOINTS, namespace, name, body)
        except NotFound:
            if current is None:
                return  # the namespace is going away
            raise
