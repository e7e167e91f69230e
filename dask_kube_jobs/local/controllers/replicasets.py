"""The ReplicaSet controller: keeps ``spec.replicas`` Pods of a template running, as kcm does.

It creates Pods named ``<rs>-<random>`` (``generateName``) with a controller ownerReference
(``blockOwnerDeletion: true``), replaces Pods that were deleted or failed, and on scale-down
deletes first the Pods that cost least to lose — unscheduled, then pending, then not ready, then
the newest — as kcm ranks them. Orphan Pods matching the selector are adopted, owned Pods that
stopped matching are released. ``status`` (replicas, fullyLabeledReplicas, readyReplicas,
availableReplicas honouring ``minReadySeconds``, observedGeneration) is what Deployments and
``kubectl`` read. Events ``SuccessfulCreate`` / ``SuccessfulDelete`` as kcm writes them.

Like kcm it keeps *expectations*: after creating or deleting Pods it waits until the watch has
shown them before counting again, so a lagging watch never makes it create a Pod twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ...contract.conditions import condition
from ...contract.objects import controller_ref, owner_reference
from ...contract.pods import pod_active, pod_ready
from ...contract.times import now, parse_time
from ...kube import (
    PODS,
    REPLICASETS,
    APIError,
    Client,
    Conflict,
    EventRecorder,
    Informer,
    Invalid,
    NotFound,
    Obj,
    WorkQueue,
    namespace_terminating,
    run_informers,
    wait_synced,
)
from .._aggregation import selector_matches

log = logging.getLogger("dask_kube_jobs.local.controllers.replicasets")

BURST = 500
EXPECTATIONS_TIMEOUT = 5.0


def selector_matcher(selector: Obj | None) -> Callable[[dict[str, str]], bool]:
    """A ``LabelSelector`` (matchLabels + matchExpressions) as a predicate; empty matches nothing."""
    selector = selector or {}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return lambda labels: False
    return lambda labels: selector_matches(selector, labels)


def available(pod: Obj, min_ready_seconds: int) -> bool:
    if not pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is None or (now() - since).total_seconds() >= min_ready_seconds


def deletion_rank(pod: Obj) -> tuple[int, int, int, int, float]:
    """Lower ranks are deleted first (kcm's ActivePodsWithRanks, simplified)."""
    status = pod.get("status") or {}
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    return (1 if (pod.get("spec") or {}).get("nodeName") else 0, phase_rank,
            1 if pod_ready(pod) else 0, -restarts, -(created.timestamp() if created else 0.0))


@dataclass
class Expectations:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    stamp: float = field(default_factory=time.monotonic)

    def satisfied(self) -> bool:
        return (self.adds <= 0 and not self.deletes) or \
            time.monotonic() - self.stamp > EXPECTATIONS_TIMEOUT


class ReplicaSetController:
    name = "replicaset"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.replicasets = Informer(client, REPLICASETS)
        self.pods = Informer(client, PODS)
        self.queue = WorkQueue("replicaset")
        self.recorder = EventRecorder(client, "replicaset-controller")
        self.expectations: dict[str, Expectations] = {}
        self.replicasets.on_change(self._on_rs)
        self.pods.on_change(self._on_pod)

    def _on_rs(self, kind: str, rs: Obj, old: Obj | None) -> None:
        self.queue.add((rs["metadata"]["namespace"], rs["metadata"]["name"]))

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "ReplicaSet":
                return
            exp = self.expectations.get(ref.get("uid", ""))
            if exp is not None:
                if kind == "ADDED":
                    exp.adds -= 1
                if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                    exp.deletes.discard(pod["metadata"].get("uid", ""))
            self.queue.add((pod["metadata"]["namespace"], ref["name"]))
        elif kind != "DELETED" and not pod["metadata"].get("deletionTimestamp"):
            labels = pod["metadata"].get("labels") or {}
            for rs in self.replicasets.items(pod["metadata"]["namespace"]):
                if selector_matcher((rs.get("spec") or {}).get("selector"))(labels):
                    self.queue.add((rs["metadata"]["namespace"], rs["metadata"]["name"]))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.replicasets, self.pods))
            await wait_synced(self.replicasets, self.pods)
            tg.create_task(self.queue.work(self.sync, workers=4))

    async def sync(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        rs = self.replicasets.get(namespace, name)
        if rs is None:
            return None
        uid = rs["metadata"]["uid"]
        spec = rs.get("spec") or {}
        matches = selector_matcher(spec.get("selector"))
        owned: list[Obj] = []
        for pod in self.pods.items(namespace):
            ref = controller_ref(pod)
            labels = pod["metadata"].get("labels") or {}
            if ref is not None and ref.get("uid") == uid:
                if matches(labels) or rs["metadata"].get("deletionTimestamp"):
                    owned.append(pod)
                else:
                    await self._release(pod, uid)
            elif ref is None and matches(labels) and not pod["metadata"].get("deletionTimestamp") \
                    and not rs["metadata"].get("deletionTimestamp"):
                if await self._adopt(pod, rs):
                    owned.append(pod)
        active = [p for p in owned if pod_active(p)]
        exp = self.expectations.get(uid)
        if not rs["metadata"].get("deletionTimestamp") and (exp is None or exp.satisfied()):
            await self._manage(rs, active)
        return await self._update_status(rs, active)

    async def _manage(self, rs: Obj, active: list[Obj]) -> None:
        uid = rs["metadata"]["uid"]
        want = int((rs.get("spec") or {}).get("replicas", 1))
        diff = len(active) - want
        if diff < 0:
            count = min(-diff, BURST)
            exp = self.expectations[uid] = Expectations(adds=count)
            created = 0
            batch = 1
            while created < count:  # slow start, as kcm: 1, 2, 4, ... until an error
                n = min(batch, count - created)
                results = await asyncio.gather(*(self._create_pod(rs) for _ in range(n)),
                                               return_exceptions=True)
                errors = [r for r in results if isinstance(r, BaseException)]
                created += n - len(errors)
                if errors:
                    exp.adds -= count - created
                    raise errors[0]
                batch *= 2
        elif diff > 0:
            victims = sorted(active, key=deletion_rank)[:min(diff, BURST)]
            exp = self.expectations[uid] = Expectations(
                deletes={p["metadata"]["uid"] for p in victims})
            for pod in victims:
                meta = pod["metadata"]
                if await self.client.delete(PODS, meta["namespace"], meta["name"], uid=meta["uid"]):
                    await self.recorder.record(rs, "Normal", "SuccessfulDelete",
                                               f"Deleted pod: {meta['name']}")
                else:
                    exp.deletes.discard(meta["uid"])

    async def _create_pod(self, rs: Obj) -> None:
        template = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
        meta = template.get("metadata") or {}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"generateName": f"{rs['metadata']['name']}-",
                            "namespace": rs["metadata"]["namespace"],
                            "labels": meta.get("labels") or {},
                            "ownerReferences": [owner_reference(rs)]},
               "spec": template.get("spec") or {}}
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = meta["annotations"]
        if meta.get("finalizers"):
            pod["metadata"]["finalizers"] = meta["finalizers"]
        try:
            created = await self.client.create(PODS, rs["metadata"]["namespace"], pod)
        except APIError as exc:
            if namespace_terminating(exc):
                return  # as kcm: the namespace deleter removes the ReplicaSet soon anyway
            await self.recorder.record(rs, "Warning", "FailedCreate",
                                       f"Error creating: {exc.message}")
            raise
        await self.recorder.record(rs, "Normal", "SuccessfulCreate",
                                   f"Created pod: {created['metadata']['name']}")

    async def _adopt(self, pod: Obj, rs: Obj) -> bool:
        meta = pod["metadata"]
        refs = list(meta.get("ownerReferences") or []) + [owner_reference(rs)]
        try:
            await self.client.patch(PODS, meta["namespace"], meta["name"], [
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "add", "path": "/metadata/ownerReferences", "value": refs}], type="json")
        except (NotFound, Conflict, Invalid):
            return False
        return True

    async def _release(self, pod: Obj, uid: str) -> None:
        meta = pod["metadata"]
        refs = [r for r in meta.get("ownerReferences") or [] if r.get("uid") != uid]
        with contextlib.suppress(NotFound, Conflict, Invalid):
            await self.client.patch(PODS, meta["namespace"], meta["name"], [
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "replace", "path": "/metadata/ownerReferences", "value": refs}], type="json")

    async def _update_status(self, rs: Obj, active: list[Obj]) -> float | None:
        spec = rs.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        ready = [p for p in active if pod_ready(p)]
        avail = [p for p in ready if available(p, min_ready)]
        status = {
            "replicas": len(active),
            "fullyLabeledReplicas": sum(1 for p in active if all(
                (p["metadata"].get("labels") or {}).get(k) == v for k, v in template_labels.items())),
            "readyReplicas": len(ready),
            "availableReplicas": len(avail),
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        old = rs.get("status") or {}
        if any(old.get(k, 0) != v for k, v in status.items()):
            with contextlib.suppress(NotFound):
                await self.client.patch(REPLICASETS, rs["metadata"]["namespace"],
                                        rs["metadata"]["name"], {"status": status}, sub="status")
        if len(avail) < len(ready):
            return 1.0  # becomes available after minReadySeconds
        return None
