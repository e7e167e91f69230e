"""Garbage collection: ownerReferences, Pods of vanished Nodes, and the objects of deleted CRDs.

``GarbageCollector`` is kube-controller-manager's garbage collector. It watches every resource
discovery lists (custom resources included, re-discovered whenever a CRD changes) and keeps a
graph of who owns whom, keyed by uid. Like kcm it decides nothing from the graph alone: before
deleting it reads the object and each owner live, so a lagging watch never deletes a thing
with a live owner.

* Background: when an owner goes, every dependent whose owners are *all* gone is deleted (an
  object with one live owner stays, minus the dangling references if it has some).
* Foreground: an owner with ``deletionTimestamp`` and the ``foregroundDeletion`` finalizer gets
  its dependents deleted (themselves in the foreground when they have dependents), and loses the
  finalizer once no dependent with ``blockOwnerDeletion: true`` is left.
* Orphan: an owner with ``deletionTimestamp`` and the ``orphan`` finalizer has its reference
  removed from every dependent, then loses the finalizer.
* Dangling references — an object created with an owner uid that does not exist — are collected
  after a short delay and a live re-check, at start-up and whenever such an object appears.

Finalizers and ownerReferences are changed with JSON patches that ``test`` the
resourceVersion, so a concurrent writer is never overwritten (a 422 retries with back-off).

``PodGC`` force-deletes Pods bound to a Node that no longer exists (kcm's pod GC), and
``CRDCleanup`` is the apiextensions finalizer: a CRD being deleted loses
``customresourcecleanup.apiextensions.k8s.io`` only once all of its objects are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from ...contract.times import fmt_time
from ...kube import (
    CRDS,
    NODES,
    PODS,
    APIError,
    Client,
    Informer,
    NotFound,
    Obj,
    Resource,
    WorkQueue,
    run_informers,
    wait_synced,
)

log = logging.getLogger("dask_kube_jobs.local.controllers.gc")

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
#: kcm ignores Events: they are never owners and would only cost watches
IGNORED = {("", "events"), ("events.k8s.io", "events")}
#: how long a dependent of an unknown owner waits before the live re-check
DANGLING_DELAY = 0.5


def _finalizers(obj: Obj) -> list[str]:
    return list(obj["metadata"].get("finalizers") or [])


def _deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


async def remove_finalizer(client: Client, res: Resource, obj: Obj, finalizer: str) -> None:
    """Drop one finalizer, guarded by a ``test`` of the resourceVersion (422 if it moved)."""
    meta = obj["metadata"]
    if finalizer not in _finalizers(obj):
        return
    patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
             {"op": "replace", "path": "/metadata/finalizers",
              "value": [f for f in _finalizers(obj) if f != finalizer]}]
    with contextlib.suppress(NotFound):
        await client.patch(res, meta.get("namespace"), meta["name"], patch, type="json")


@dataclass
class Node:
    """One object in the ownership graph."""

    res: Resource
    namespace: str | None
    name: str
    owners: list[Obj] = field(default_factory=list)
    deleting_dependents: bool = False


class GarbageCollector:
    """kcm's ownerReference garbage collector over every resource the server serves."""

    name = "garbage-collector"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.nodes: dict[str, Node] = {}
        self.dependents: dict[str, set[str]] = {}
        self.monitors: dict[Resource, tuple[Informer, asyncio.Task[None]]] = {}
        self.by_kind: dict[tuple[str, str], Resource] = {}
        self.absent: set[str] = set()
        self.delete_queue = WorkQueue("gc-attempt-to-delete")
        self.orphan_queue = WorkQueue("gc-attempt-to-orphan")
        self.crds = Informer(client, CRDS)
        self.crds.on_change(lambda *_: self._rediscover.set())
        self._rediscover = asyncio.Event()
        self._tg: asyncio.TaskGroup | None = None

    # -- monitors -----------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(self.crds.run())
                await self.crds.synced.wait()
                await self._sync_monitors()
                await wait_synced(*(inf for inf, _ in self.monitors.values()))
                for uid, node in list(self.nodes.items()):  # dangling references at start-up
                    if any(ref.get("uid") not in self.nodes for ref in node.owners):
                        self.delete_queue.add(uid)
                tg.create_task(self.delete_queue.work(self.attempt_to_delete, workers=4))
                tg.create_task(self.orphan_queue.work(self.attempt_to_orphan, workers=2))
                while True:
                    await self._rediscover.wait()
                    await asyncio.sleep(0.2)  # let a burst of CRD events settle
                    self._rediscover.clear()
                    await self._sync_monitors()
        finally:
            self._tg = None

    async def _sync_monitors(self) -> None:
        resources = await self.client.discover()
        self.by_kind = {(r.group, r.kind): r for r in resources}
        wanted = {r for r in resources if {"list", "watch", "delete"} <= r.verbs
                  and (r.group, r.plural) not in IGNORED}
        assert self._tg is not None
        for res in wanted - set(self.monitors):
            inf = Informer(self.client, res)
            inf.on_change(lambda kind, obj, old, res=res: self._on_change(res, kind, obj, old))
            self.monitors[res] = (inf, self._tg.create_task(inf.run(), name=f"gc-monitor-{res}"))
        for res in set(self.monitors) - wanted:
            _, task = self.monitors.pop(res)
            task.cancel()

    async def resource_for(self, ref: Obj) -> Resource | None:
        group = ref.get("apiVersion", "").rpartition("/")[0]
        res = self.by_kind.get((group, ref.get("kind", "")))
        if res is None:  # maybe a CRD established a moment ago
            self.by_kind = {(r.group, r.kind): r for r in await self.client.discover()}
            res = self.by_kind.get((group, ref.get("kind", "")))
        return res

    # -- graph ----------------------------------------------------------------------------------
    def _on_change(self, res: Resource, kind: str, obj: Obj, old: Obj | None) -> None:
        meta = obj["metadata"]
        uid = meta.get("uid")
        if not uid:
            return
        previous = self.nodes.get(uid)
        old_owner_uids = {r.get("uid") for r in previous.owners} if previous else set()
        if kind == "DELETED":
            self.nodes.pop(uid, None)
            for owner_uid in old_owner_uids:
                self._unlink(owner_uid, uid)
                owner = self.nodes.get(owner_uid)
                if owner is not None and owner.deleting_dependents:
                    self.delete_queue.add(owner_uid)
            for dep in self.dependents.get(uid, ()):
                self.delete_queue.add(dep)
            return
        owners = list(meta.get("ownerReferences") or [])
        deleting = _deleting(obj)
        node = Node(res, meta.get("namespace"), meta["name"], owners,
                    deleting and FOREGROUND in _finalizers(obj))
        self.nodes[uid] = node
        new_owner_uids = {r.get("uid") for r in owners}
        for owner_uid in old_owner_uids - new_owner_uids:
            self._unlink(owner_uid, uid)
            owner = self.nodes.get(owner_uid)
            if owner is not None and owner.deleting_dependents:
                self.delete_queue.add(owner_uid)
        for owner_uid in new_owner_uids:
            self.dependents.setdefault(owner_uid, set()).add(uid)
        if any(r.get("uid") not in self.nodes or r.get("uid") in self.absent for r in owners):
            self.delete_queue.add_after(uid, DANGLING_DELAY)
        elif any(self.nodes[r["uid"]].deleting_dependents for r in owners):
            self.delete_queue.add(uid)
        if deleting and ORPHAN in _finalizers(obj):
            self.orphan_queue.add(uid)
        if node.deleting_dependents:
            self.delete_queue.add(uid)
            for dep in self.dependents.get(uid, ()):
                self.delete_queue.add(dep)

    def _unlink(self, owner_uid: str | None, dep_uid: str) -> None:
        deps = self.dependents.get(owner_uid or "")
        if deps is not None:
            deps.discard(dep_uid)
            if not deps and owner_uid not in self.nodes:
                self.dependents.pop(owner_uid or "", None)

    # -- attempt to delete ------------------------------------------------------------------------
    async def _owner_state(self, ref: Obj, namespace: str | None) -> str:
        """``solid``, ``waiting`` (deleting its dependents in the foreground) or ``absent``."""
        uid = ref.get("uid", "")
        if uid in self.absent:
            return "absent"
        res = await self.resource_for(ref)
        if res is None or (res.namespaced and not namespace):
            return "absent"
        owner = await self.client.get(res, namespace if res.namespaced else None, ref["name"])
        if owner is None or owner["metadata"].get("uid") != uid:
            self.absent.add(uid)
            if len(self.absent) > 10000:
                self.absent.clear()
            return "absent"
        if _deleting(owner) and FOREGROUND in _finalizers(owner):
            return "waiting"
        return "solid"

    async def attempt_to_delete(self, uid: str) -> float | None:
        node = self.nodes.get(uid)
        if node is None:
            return None
        latest = await self.client.get(node.res, node.namespace, node.name)
        if latest is None or latest["metadata"].get("uid") != uid:
            return None
        meta = latest["metadata"]
        if _deleting(latest) and FOREGROUND in _finalizers(latest):
            return await self._process_deleting_dependents(uid, node, latest)
        owners = list(meta.get("ownerReferences") or [])
        if not owners:
            return None
        states = {r.get("uid"): await self._owner_state(r, node.namespace) for r in owners}
        solid = [u for u, s in states.items() if s == "solid"]
        unwanted = {u for u, s in states.items() if s != "solid"}
        if solid:
            if unwanted:  # keep the object, drop references to owners that are gone/going
                await self._patch_owner_refs(node.res, latest,
                                             [r for r in owners if r.get("uid") not in unwanted])
            return None
        if _deleting(latest):
            return None  # already on its way out (e.g. held by a finalizer)
        waiting = any(s == "waiting" for s in states.values())
        if waiting and self.dependents.get(uid):
            policy = "Foreground"
        elif ORPHAN in _finalizers(latest):
            policy = "Orphan"
        elif FOREGROUND in _finalizers(latest):
            policy = "Foreground"
        else:
            policy = "Background"
        log.info("deleting %s %s/%s: no owner left that keeps it (propagation %s)", node.res,
                 node.namespace or "", node.name, policy)
        await self.client.delete(node.res, node.namespace, node.name, propagation=policy, uid=uid)
        return None

    async def _process_deleting_dependents(self, uid: str, node: Node, latest: Obj) -> float | None:
        blocking = []
        for dep_uid in list(self.dependents.get(uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            if any(r.get("uid") == uid and r.get("blockOwnerDeletion") for r in dep.owners):
                blocking.append(dep_uid)
        if not blocking:
            await remove_finalizer(self.client, node.res, latest, FOREGROUND)
            return None
        for dep_uid in blocking:
            dep = self.nodes.get(dep_uid)
            if dep is not None and not dep.deleting_dependents:
                self.delete_queue.add(dep_uid)
        return 5.0  # dependents' DELETED events requeue us sooner; this is a safety net

    async def _patch_owner_refs(self, res: Resource, obj: Obj, refs: list[Obj]) -> None:
        meta = obj["metadata"]
        patch = [{"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                 {"op": "replace", "path": "/metadata/ownerReferences", "value": refs}]
        with contextlib.suppress(NotFound):
            await self.client.patch(res, meta.get("namespace"), meta["name"], patch, type="json")

    # -- orphan -----------------------------------------------------------------------------------
    async def attempt_to_orphan(self, uid: str) -> float | None:
        node = self.nodes.get(uid)
        if node is None:
            return None
        owner = await self.client.get(node.res, node.namespace, node.name)
        if owner is None or owner["metadata"].get("uid") != uid:
            return None
        if not (_deleting(owner) and ORPHAN in _finalizers(owner)):
            return None
        for dep_uid in list(self.dependents.get(uid, ())):
            dep = self.nodes.get(dep_uid)
            if dep is None:
                continue
            latest = await self.client.get(dep.res, dep.namespace, dep.name)
            if latest is None or latest["metadata"].get("uid") != dep_uid:
                continue
            refs = latest["metadata"].get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs):
                await self._patch_owner_refs(dep.res, latest,
                                             [r for r in refs if r.get("uid") != uid])
        await remove_finalizer(self.client, node.res, owner, ORPHAN)
        return None


class PodGC:
    """kcm's pod garbage collector: force-deletes Pods bound to Nodes that no longer exist."""

    name = "pod-garbage-collector"
    #: kcm quarantines a missing node for 40s; a local cluster has no API lag worth that
    QUARANTINE = 2.0

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pods = Informer(client, PODS)
        self.nodes = Informer(client, NODES)
        self.queue = WorkQueue("pod-gc")
        self.pods.on_change(self._on_pod)
        self.nodes.on_change(self._on_node)

    def _check(self, pod: Obj) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        if node and self.nodes.synced.is_set() and self.nodes.get(None, node) is None:
            self.queue.add_after((pod["metadata"]["namespace"], pod["metadata"]["name"]),
                                 self.QUARANTINE)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        if kind != "DELETED":
            self._check(pod)

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        if kind == "DELETED":
            for pod in self.pods.items():
                self._check(pod)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.pods, self.nodes))
            await wait_synced(self.pods, self.nodes)
            for pod in self.pods.items():
                self._check(pod)
            tg.create_task(self.queue.work(self.collect))

    async def collect(self, key: tuple[str, str]) -> None:
        pod = self.pods.get(*key)
        node_name = (pod or {}).get("spec", {}).get("nodeName")
        if pod is None or not node_name or self.nodes.get(None, node_name) is not None:
            return
        if await self.client.get(NODES, None, node_name) is not None:
            return
        ns, name = key
        log.info("deleting pod %s/%s: its node %s no longer exists", ns, name, node_name)
        if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            conditions = [c for c in (pod.get("status") or {}).get("conditions") or []
                          if c.get("type") != "DisruptionTarget"]
            conditions.append({"type": "DisruptionTarget", "status": "True",
                               "lastTransitionTime": fmt_time(), "reason": "DeletionByPodGC",
                               "message": "PodGC: node no longer exists"})
            with contextlib.suppress(APIError):
                await self.client.patch(PODS, ns, name, {"status": {
                    "phase": "Failed", "conditions": conditions}}, sub="status")
        await self.client.delete(PODS, ns, name, grace_period=0, uid=pod["metadata"].get("uid"))


class CRDCleanup:
    """The ``customresourcecleanup.apiextensions.k8s.io`` finalizer of CRDs being deleted."""

    name = "crd-cleanup"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.crds = Informer(client, CRDS)
        self.queue = WorkQueue("crd-cleanup")
        self.crds.on_change(self._on_crd)

    def _on_crd(self, kind: str, crd: Obj, old: Obj | None) -> None:
        if kind != "DELETED" and _deleting(crd) and CRD_CLEANUP in _finalizers(crd):
            self.queue.add(crd["metadata"]["name"])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.crds.run())
            await self.crds.synced.wait()
            tg.create_task(self.queue.work(self.cleanup))

    async def cleanup(self, name: str) -> float | None:
        crd = await self.client.get(CRDS, None, name)
        if crd is None or not _deleting(crd) or CRD_CLEANUP not in _finalizers(crd):
            return None
        spec = crd["spec"]
        versions = [v["name"] for v in spec.get("versions") or [] if v.get("served", True)]
        storage = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        res = Resource(spec["group"], (storage or versions)[0], spec["names"]["plural"],
                       spec["names"]["kind"], spec.get("scope") == "Namespaced")
        try:
            items, _ = await self.client.list(res)
        except NotFound:
            items = []
        for item in items:
            if not _deleting(item):
                await self.client.delete(res, item["metadata"].get("namespace"),
                                         item["metadata"]["name"])
        if items:
            return 0.5  # wait for finalizers of the custom objects
        await remove_finalizer(self.client, CRDS, crd, CRD_CLEANUP)
        return None


__all__ = ["GarbageCollector", "PodGC", "CRDCleanup", "remove_finalizer"]
