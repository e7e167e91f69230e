"""Namespace lifecycle: deleting a namespace's content, its default ServiceAccount, its CA bundle.

* ``NamespaceController`` is kcm's namespace deleter. The API server only marks a deleted
  namespace (``deletionTimestamp``, phase ``Terminating``, finalizer ``kubernetes`` in
  ``spec.finalizers``); this controller deletes every namespaced object of every resource
  discovery lists (custom resources included), reports progress in the namespace's status
  conditions with Kubernetes' reasons and messages (``NamespaceContentRemaining``,
  ``NamespaceFinalizersRemaining``, ...), and once nothing is left calls
  ``PUT /api/v1/namespaces/<name>/finalize`` without the ``kubernetes`` finalizer, which the
  server turns into the namespace's removal. Objects held by finalizers hold the namespace, as on
  a real cluster.
* ``ServiceAccountController`` gives every active namespace a ``default`` ServiceAccount and
  recreates it when deleted: Pods default to ``serviceAccountName: default``.
* ``RootCAController`` publishes ``kube-root-ca.crt`` (the cluster CA) into every namespace,
  as kcm's root-ca-cert-publisher does, so in-cluster clients can verify the server.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from ...contract.conditions import set_condition
from ...contract.times import fmt_time
from ...kube import (
    CONFIGMAPS,
    NAMESPACES,
    SERVICEACCOUNTS,
    APIError,
    Client,
    Conflict,
    Forbidden,
    Informer,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Obj,
    Resource,
    WorkQueue,
    run_informers,
    wait_synced,
)

log = logging.getLogger("dask_kube_jobs.local.controllers.namespaces")

FINALIZER = "kubernetes"
ROOT_CA_NAME = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = (
    "Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
    "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
    "guaranteed across distributions of Kubernetes clusters.")


def _active(ns: Obj) -> bool:
    return not ns["metadata"].get("deletionTimestamp") \
        and (ns.get("status") or {}).get("phase") != "Terminating"


def _cond(ctype: str, status: str, reason: str, message: str) -> Obj:
    return {"type": ctype, "status": status, "lastTransitionTime": fmt_time(),
            "reason": reason, "message": message}


class NamespaceController:
    """Deletes the content of Terminating namespaces, then finalizes them."""

    name = "namespace"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.namespaces = Informer(client, NAMESPACES)
        self.queue = WorkQueue("namespace", max_delay=5.0)
        self.namespaces.on_change(self._on_namespace)

    def _on_namespace(self, kind: str, ns: Obj, old: Obj | None) -> None:
        if kind != "DELETED" and ns["metadata"].get("deletionTimestamp"):
            self.queue.add(ns["metadata"]["name"])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.namespaces.run())
            await self.namespaces.synced.wait()
            tg.create_task(self.queue.work(self.sync, workers=4))

    async def sync(self, name: str) -> float | None:
        ns = await self.client.get(NAMESPACES, None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return None
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return None
        resources = [r for r in await self.client.discover()
                     if r.namespaced and {"list", "delete"} <= r.verbs]
        remaining: dict[Resource, int] = {}
        by_finalizer: Counter[str] = Counter()
        failures: list[str] = []
        for res in resources:
            try:
                items = await self._delete_all(res, name)
            except (NotFound, MethodNotAllowed):
                continue
            except APIError as exc:
                failures.append(f"{res}: {exc.message}")
                continue
            if items:
                remaining[res] = len(items)
                for item in items:
                    for fin in item["metadata"].get("finalizers") or []:
                        by_finalizer[fin] += 1
        await self._report(ns, remaining, by_finalizer, failures)
        if remaining or failures:
            return 1.0
        spec_finalizers = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        body = {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "resourceVersion": ns["metadata"]["resourceVersion"]},
                "spec": {"finalizers": spec_finalizers}}
        with contextlib.suppress(NotFound):
            await self.client.replace(NAMESPACES, None, name, body, sub="finalize")
        log.info("namespace %s: content removed, finalized", name)
        return None

    async def _delete_all(self, res: Resource, namespace: str) -> list[Obj]:
        """Delete every object of ``res`` in ``namespace``; return what is still there."""
        items, _ = await self.client.list(res, namespace)
        if not items:
            return []
        if "deletecollection" in res.verbs:
            await self.client.request("DELETE", res.path(namespace), body={
                "kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"})
        else:
            for item in items:
                if not item["metadata"].get("deletionTimestamp"):
                    await self.client.delete(res, namespace, item["metadata"]["name"],
                                             propagation="Background")
        items, _ = await self.client.list(res, namespace)
        return items

    async def _report(self, ns: Obj, remaining: dict[Resource, int], by_finalizer: Counter[str],
                      failures: list[str]) -> None:
        conds = list((ns.get("status") or {}).get("conditions") or [])
        conds = set_condition(conds, _cond("NamespaceDeletionDiscoveryFailure", "False",
                                           "ResourcesDiscovered", "All resources successfully discovered"))
        conds = set_condition(conds, _cond("NamespaceDeletionGroupVersionParsingFailure", "False",
                                           "ParsedGroupVersions", "All legacy kube types successfully parsed"))
        if failures:
            conds = set_condition(conds, _cond("NamespaceDeletionContentFailure", "True",
                                               "ContentDeletionFailed",
                                               "Failed to delete all resource types, "
                                               f"{len(failures)} remaining: " + ", ".join(sorted(failures))))
        else:
            conds = set_condition(conds, _cond("NamespaceDeletionContentFailure", "False", "ContentDeleted",
                                               "All content successfully deleted, may be waiting on finalization"))
        if remaining:
            text = ", ".join(sorted(f"{r.plural}.{r.group} has {n} resource instances"
                                    for r, n in remaining.items()))
            conds = set_condition(conds, _cond("NamespaceContentRemaining", "True", "SomeResourcesRemain",
                                               f"Some resources are remaining: {text}"))
        else:
            conds = set_condition(conds, _cond("NamespaceContentRemaining", "False", "ContentRemoved",
                                               "All content successfully removed"))
        if by_finalizer:
            text = ", ".join(sorted(f"{f} in {n} resource instances" for f, n in by_finalizer.items()))
            conds = set_condition(conds, _cond("NamespaceFinalizersRemaining", "True", "SomeFinalizersRemain",
                                               f"Some content in the namespace has finalizers remaining: {text}"))
        else:
            conds = set_condition(conds, _cond("NamespaceFinalizersRemaining", "False", "ContentHasNoFinalizers",
                                               "All content-preserving finalizers finished"))
        if conds == (ns.get("status") or {}).get("conditions"):
            return
        with contextlib.suppress(NotFound, Conflict, Invalid):
            await self.client.patch(NAMESPACES, None, ns["metadata"]["name"],
                                    {"status": {"conditions": conds}}, sub="status")


class _PerNamespace:
    """Keeps one named object in every active namespace (shared by the two publishers below)."""

    name = "per-namespace"
    res: Resource
    object_name: str

    def __init__(self, client: Client) -> None:
        self.client = client
        self.namespaces = Informer(client, NAMESPACES)
        self.objects = Informer(client, self.res, field_selector=f"metadata.name={self.object_name}")
        self.queue = WorkQueue(self.name)
        self.namespaces.on_change(lambda kind, ns, old: kind != "DELETED" and self.queue.add(
            ns["metadata"]["name"]))
        self.objects.on_change(lambda kind, obj, old: self.queue.add(obj["metadata"]["namespace"]))

    def desired(self) -> Obj | None:
        raise NotImplementedError

    def up_to_date(self, current: Obj, desired: Obj) -> bool:
        return True

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.namespaces, self.objects))
            await wait_synced(self.namespaces, self.objects)
            tg.create_task(self.queue.work(self.sync, workers=2))

    async def sync(self, namespace: str) -> None:
        ns = self.namespaces.get(None, namespace)
        desired = self.desired()
        if ns is None or not _active(ns) or desired is None:
            return
        current = self.objects.get(namespace, self.object_name)
        try:
            if current is None:
                await self.client.create(self.res, namespace, desired)
            elif not self.up_to_date(current, desired):
                await self.client.patch(self.res, namespace, self.object_name, desired)
        except (Conflict, Forbidden, NotFound):
            pass  # created meanwhile; or the namespace started terminating or went away


class ServiceAccountController(_PerNamespace):
    """Every active namespace has a ``default`` ServiceAccount."""

    name = "serviceaccount"
    res = SERVICEACCOUNTS
    object_name = "default"

    def desired(self) -> Obj:
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}


def cluster_ca(kubeconfig: str) -> str | None:
    """The PEM CA of the kubeconfig's current cluster (inline data or file), if it has one."""
    config: Any = yaml.safe_load(Path(kubeconfig).read_text()) or {}
    contexts = {c["name"]: c.get("context") or {} for c in config.get("contexts") or []}
    clusters = {c["name"]: c.get("cluster") or {} for c in config.get("clusters") or []}
    context = contexts.get(config.get("current-context", ""), {})
    cluster = clusters.get(context.get("cluster", ""), {})
    if not cluster and clusters:
        cluster = next(iter(clusters.values()))
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    if cluster.get("certificate-authority"):
        path = Path(cluster["certificate-authority"])
        if not path.is_absolute():
            path = Path(kubeconfig).parent / path
        return path.read_text()
    return None


class RootCAController(_PerNamespace):
    """Every active namespace has the ``kube-root-ca.crt`` ConfigMap with the cluster's CA."""

    name = "root-ca-cert-publisher"
    res = CONFIGMAPS
    object_name = ROOT_CA_NAME

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.ca = cluster_ca(client.kubeconfig)

    def desired(self) -> Obj | None:
        if self.ca is None:
            return None  # a plain-http server has no CA to publish
        return {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_NAME,
                             "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                "data": {"ca.crt": self.ca}}

    def up_to_date(self, current: Obj, desired: Obj) -> bool:
        return (current.get("data") or {}) == desired["data"] and \
            (current["metadata"].get("annotations") or {}).get("kubernetes.io/description") \
            == ROOT_CA_DESCRIPTION
