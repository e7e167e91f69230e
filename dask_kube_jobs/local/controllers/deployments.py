"""The Deployment controller: rolls a Pod template out through ReplicaSets, as kcm does.

Each distinct template gets a ReplicaSet named ``<deployment>-<pod-template-hash>`` (the hash also
labels its selector and template, so the ReplicaSets of one Deployment never share Pods), owned
by the Deployment (controller, blockOwnerDeletion) and numbered by the annotation
``deployment.kubernetes.io/revision``. A template change starts a rollout:

* ``RollingUpdate`` scales the new ReplicaSet up within ``maxSurge`` and the old ones down as the
  new Pods become available, never below ``replicas - maxUnavailable`` available Pods (kcm's
  reconcileNewReplicaSet / reconcileOldReplicaSets arithmetic);
* ``Recreate`` scales the old ReplicaSets to zero, waits until their Pods are gone, then scales
  up the new one.

``status`` and its ``Available`` / ``Progressing`` conditions use kcm's reasons
(``MinimumReplicasAvailable``, ``NewReplicaSetCreated``, ``ReplicaSetUpdated``,
``NewReplicaSetAvailable``, ``ProgressDeadlineExceeded``) because ``kubectl rollout status`` and
``kubectl wait --for=condition=Available`` read exactly those. Old ReplicaSets beyond
``revisionHistoryLimit`` are deleted; ``ScalingReplicaSet`` Events record each scaling.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import math
from typing import Any

from ...contract.conditions import condition, set_condition
from ...contract.objects import controller_ref, owner_reference
from ...contract.times import fmt_time, now, parse_time
from ...kube import (
    DEPLOYMENTS,
    PODS,
    REPLICASETS,
    Client,
    Conflict,
    EventRecorder,
    Informer,
    Invalid,
    NotFound,
    Obj,
    WorkQueue,
    run_informers,
    wait_synced,
)
from .replicasets import selector_matcher

log = logging.getLogger("dask_kube_jobs.local.controllers.deployments")

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' rand.SafeEncodeString alphabet


def template_hash(template: Obj, collision_count: int = 0) -> str:
    """A stable pod-template-hash: FNV-1a of the template (and collision count), safe-encoded."""
    data = json.dumps(_strip_hash(template), sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return "".join(_ALPHABET[int(c) % len(_ALPHABET)] for c in str(h))


def _strip_hash(template: Obj) -> Obj:
    """The template without the hash label and without Go zero values (``null``, ``{}``, ``[]``):
    kcm compares Go structs, where ``creationTimestamp: null`` (which ``kubectl rollout undo``
    copies back from a ReplicaSet) and an absent field are the same thing."""
    t = _prune(copy.deepcopy(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def same_template(a: Obj, b: Obj) -> bool:
    return _strip_hash(a) == _strip_hash(b)


def resolve(value: Any, total: int, *, round_up: bool) -> int:
    """An IntOrString like ``25%`` or ``1`` against ``total``."""
    if isinstance(value, str) and value.endswith("%"):
        scaled = int(value[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(value)


def surge_unavailable(d: Obj) -> tuple[int, int]:
    spec = d.get("spec") or {}
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = resolve(rolling.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = resolve(rolling.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def _replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 0))


def _status(rs: Obj | None, key: str) -> int:
    return int(((rs or {}).get("status") or {}).get(key, 0))


def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _created(rs: Obj) -> tuple[str, str]:
    return (rs["metadata"].get("creationTimestamp", ""), rs["metadata"]["name"])


class DeploymentController:
    name = "deployment"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.deployments = Informer(client, DEPLOYMENTS)
        self.replicasets = Informer(client, REPLICASETS)
        self.pods = Informer(client, PODS)
        self.queue = WorkQueue("deployment")
        self.recorder = EventRecorder(client, "deployment-controller")
        self.deployments.on_change(lambda kind, d, old: self._enqueue(d["metadata"]["namespace"],
                                                                      d["metadata"]["name"]))
        self.replicasets.on_change(self._on_rs)
        self.pods.on_change(self._on_pod)

    def _enqueue(self, namespace: str, name: str) -> None:
        self.queue.add((namespace, name))

    def _on_rs(self, kind: str, rs: Obj, old: Obj | None) -> None:
        ref = controller_ref(rs)
        ns = rs["metadata"]["namespace"]
        if ref is not None:
            if ref.get("kind") == "Deployment":
                self._enqueue(ns, ref["name"])
            return
        labels = rs["metadata"].get("labels") or {}
        for d in self.deployments.items(ns):
            if selector_matcher((d.get("spec") or {}).get("selector"))(labels):
                self._enqueue(ns, d["metadata"]["name"])

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        # Only Recreate waits on Pods: it needs to see the old ones gone.
        if kind != "DELETED":
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.replicasets.get(pod["metadata"]["namespace"], ref["name"])
        dref = controller_ref(rs) if rs else None
        if dref is not None and dref.get("kind") == "Deployment":
            self._enqueue(pod["metadata"]["namespace"], dref["name"])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.deployments, self.replicasets, self.pods))
            await wait_synced(self.deployments, self.replicasets, self.pods)
            tg.create_task(self.queue.work(self.sync, workers=4))

    # -- sync ---------------------------------------------------------------------------------
    async def sync(self, key: tuple[str, str]) -> float | None:
        namespace, name = key
        d = self.deployments.get(namespace, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return None
        spec = d.get("spec") or {}
        uid = d["metadata"]["uid"]
        matches = selector_matcher(spec.get("selector"))
        owned: list[Obj] = []
        for rs in self.replicasets.items(namespace):
            ref = controller_ref(rs)
            if ref is not None and ref.get("uid") == uid:
                owned.append(rs)
            elif ref is None and not rs["metadata"].get("deletionTimestamp") and \
                    matches(rs["metadata"].get("labels") or {}):
                if await self._adopt(rs, d):
                    owned.append(rs)
        owned.sort(key=_created)
        new_rs = next((rs for rs in owned if same_template(
            (rs.get("spec") or {}).get("template") or {}, spec.get("template") or {})), None)
        olds = [rs for rs in owned if rs is not new_rs]
        if spec.get("paused"):
            return await self._sync_status(d, new_rs, olds)
        created = False
        if new_rs is None:
            new_rs = await self._create_rs(d, olds)
            if new_rs is None:
                return 0.5
            created = True
        else:
            new_rs = await self._ensure_revision(d, new_rs, olds)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            new_rs = await self._recreate(d, new_rs, olds)
        else:
            new_rs = await self._rolling(d, new_rs, olds)
        await self._cleanup(d, olds)
        return await self._sync_status(d, new_rs, olds, created=created)

    async def _adopt(self, rs: Obj, d: Obj) -> bool:
        meta = rs["metadata"]
        try:
            await self.client.patch(REPLICASETS, meta["namespace"], meta["name"], [
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "add", "path": "/metadata/ownerReferences",
                 "value": list(meta.get("ownerReferences") or []) + [owner_reference(d)]}], type="json")
        except (NotFound, Conflict, Invalid):
            return False
        return True

    async def _create_rs(self, d: Obj, olds: list[Obj]) -> Obj | None:
        spec = d.get("spec") or {}
        collisions = int((d.get("status") or {}).get("collisionCount") or 0)
        h = template_hash(spec.get("template") or {}, collisions)
        template = copy.deepcopy(spec.get("template") or {})
        template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = max([_revision(rs) for rs in olds] + [0]) + 1
        replicas = int(spec.get("replicas", 1))
        surge, _ = surge_unavailable(d)
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{d['metadata']['name']}-{h}",
                           "namespace": d["metadata"]["namespace"],
                           "labels": template["metadata"]["labels"],
                           "annotations": {REVISION: str(revision), DESIRED: str(replicas),
                                           MAX_REPLICAS: str(replicas + surge)},
                           "ownerReferences": [owner_reference(d)]},
              "spec": {"replicas": 0, "minReadySeconds": int(spec.get("minReadySeconds") or 0),
                       "selector": selector, "template": template}}
        try:
            created = await self.client.create(REPLICASETS, d["metadata"]["namespace"], rs)
        except Conflict:
            existing = await self.client.get(REPLICASETS, d["metadata"]["namespace"], rs["metadata"]["name"])
            ref = controller_ref(existing) if existing else None
            if existing and ref and ref.get("uid") == d["metadata"]["uid"] and same_template(
                    existing["spec"].get("template") or {}, spec.get("template") or {}):
                return existing
            # A hash collision with someone else's ReplicaSet: bump collisionCount and retry.
            await self.client.patch(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"],
                                    {"status": {"collisionCount": collisions + 1}}, sub="status")
            return None
        await self._set_revision_annotation(d, revision)
        return created

    async def _ensure_revision(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> Obj:
        """A rollback to an old template makes its ReplicaSet the newest revision again."""
        top = max([_revision(rs) for rs in olds] + [0])
        revision = _revision(new_rs)
        if revision <= top:
            revision = top + 1
            meta = new_rs["metadata"]
            new_rs = await self.client.patch(REPLICASETS, meta["namespace"], meta["name"],
                                             {"metadata": {"annotations": {REVISION: str(revision)}}})
        await self._set_revision_annotation(d, revision)
        return new_rs

    async def _set_revision_annotation(self, d: Obj, revision: int) -> None:
        if (d["metadata"].get("annotations") or {}).get(REVISION) != str(revision):
            await self.client.patch(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"],
                                    {"metadata": {"annotations": {REVISION: str(revision)}}})

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        old = _replicas(rs)
        if old == replicas:
            return rs
        surge, _ = surge_unavailable(d)
        want = int((d.get("spec") or {}).get("replicas", 1))
        meta = rs["metadata"]
        updated = await self.client.patch(REPLICASETS, meta["namespace"], meta["name"], {
            "metadata": {"annotations": {DESIRED: str(want), MAX_REPLICAS: str(want + surge)}},
            "spec": {"replicas": replicas}})
        direction = "up" if replicas > old else "down"
        await self.recorder.record(d, "Normal", "ScalingReplicaSet",
                                   f"Scaled {direction} replica set {meta['name']} from {old} to {replicas}")
        return updated

    async def _rolling(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> Obj:
        want = int((d.get("spec") or {}).get("replicas", 1))
        surge, max_unavailable = surge_unavailable(d)
        # reconcileNewReplicaSet
        if _replicas(new_rs) > want:
            new_rs = await self._scale(d, new_rs, want)
        elif _replicas(new_rs) < want:
            total = _replicas(new_rs) + sum(_replicas(rs) for rs in olds)
            room = want + surge - total
            if room > 0:
                new_rs = await self._scale(d, new_rs, _replicas(new_rs) + min(room, want - _replicas(new_rs)))
        # reconcileOldReplicaSets
        if not any(_replicas(rs) for rs in olds):
            return new_rs
        all_count = _replicas(new_rs) + sum(_replicas(rs) for rs in olds)
        min_available = want - max_unavailable
        new_unavailable = _replicas(new_rs) - _status(new_rs, "availableReplicas")
        budget = all_count - min_available - new_unavailable
        if budget <= 0:
            return new_rs
        # first the old replicas that are unavailable anyway
        for i, rs in enumerate(olds):
            if budget <= 0:
                break
            unhealthy = _replicas(rs) - _status(rs, "availableReplicas")
            if unhealthy > 0:
                step = min(unhealthy, budget)
                olds[i] = await self._scale(d, rs, _replicas(rs) - step)
                budget -= step
        available = _status(new_rs, "availableReplicas") + sum(_status(rs, "availableReplicas") for rs in olds)
        budget = min(budget, available - min_available)
        for i, rs in enumerate(olds):
            if budget <= 0:
                break
            step = min(_replicas(rs), budget)
            if step > 0:
                olds[i] = await self._scale(d, rs, _replicas(rs) - step)
                budget -= step
        return new_rs

    async def _recreate(self, d: Obj, new_rs: Obj, olds: list[Obj]) -> Obj:
        if any(_replicas(rs) for rs in olds):
            for i, rs in enumerate(olds):
                olds[i] = await self._scale(d, rs, 0)
            return new_rs
        old_uids = {rs["metadata"]["uid"] for rs in olds}
        for pod in self.pods.items(d["metadata"]["namespace"]):
            ref = controller_ref(pod)
            if ref is not None and ref.get("uid") in old_uids and \
                    (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return new_rs  # old Pods still running: requeued when they are deleted
        return await self._scale(d, new_rs, int((d.get("spec") or {}).get("replicas", 1)))

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = int((d.get("spec") or {}).get("revisionHistoryLimit", 10))
        idle = [rs for rs in olds if _replicas(rs) == 0 and _status(rs, "replicas") == 0
                and not rs["metadata"].get("deletionTimestamp")]
        for rs in sorted(idle, key=_revision)[: max(0, len(idle) - limit)]:
            await self.client.delete(REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"],
                                     uid=rs["metadata"]["uid"])

    # -- status ---------------------------------------------------------------------------------
    async def _sync_status(self, d: Obj, new_rs: Obj | None, olds: list[Obj], *,
                           created: bool = False) -> float | None:
        spec = d.get("spec") or {}
        want = int(spec.get("replicas", 1))
        every = ([new_rs] if new_rs else []) + olds
        available = sum(_status(rs, "availableReplicas") for rs in every)
        total = sum(_replicas(rs) for rs in every)
        old_status = d.get("status") or {}
        status: Obj = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": sum(_status(rs, "replicas") for rs in every),
            "updatedReplicas": _status(new_rs, "replicas"),
            "readyReplicas": sum(_status(rs, "readyReplicas") for rs in every),
            "availableReplicas": available,
            "unavailableReplicas": max(total - available, 0),
        }
        status = {k: v for k, v in status.items() if v}  # Go's omitempty
        if old_status.get("collisionCount"):
            status["collisionCount"] = old_status["collisionCount"]
        stamp = fmt_time()
        conds = list(old_status.get("conditions") or [])
        _, max_unavailable = surge_unavailable(d)
        if available >= want - max_unavailable:
            conds = _set(conds, "Available", "True", "MinimumReplicasAvailable",
                         "Deployment has minimum availability.", stamp)
        else:
            conds = _set(conds, "Available", "False", "MinimumReplicasUnavailable",
                         "Deployment does not have minimum availability.", stamp)
        requeue: float | None = None
        name = new_rs["metadata"]["name"] if new_rs else ""
        complete = new_rs is not None and _status(new_rs, "replicas") == want and \
            _status(new_rs, "availableReplicas") == want and _replicas(new_rs) == want and \
            not any(_status(rs, "replicas") for rs in olds)
        deadline = spec.get("progressDeadlineSeconds", 600)
        progressing = condition(d, "Progressing") or {}
        if spec.get("paused"):
            conds = _set(conds, "Progressing", "Unknown", "DeploymentPaused",
                         "Deployment is paused", stamp)
        elif complete:
            conds = _set(conds, "Progressing", "True", "NewReplicaSetAvailable",
                         f'ReplicaSet "{name}" has successfully progressed.', stamp)
        elif created:
            conds = _set(conds, "Progressing", "True", "NewReplicaSetCreated",
                         f'Created new replica set "{name}"', stamp)
        elif new_rs is not None and self._moved(d, every):
            conds = _set(conds, "Progressing", "True", "ReplicaSetUpdated",
                         f'ReplicaSet "{name}" is progressing.', stamp, touch=True)
        elif progressing.get("reason") != "ProgressDeadlineExceeded" and deadline is not None:
            last = parse_time(progressing.get("lastUpdateTime"))
            left = int(deadline) - ((now() - last).total_seconds() if last else 0)
            if left <= 0:
                conds = _set(conds, "Progressing", "False", "ProgressDeadlineExceeded",
                             f'ReplicaSet "{name}" has timed out progressing.', stamp)
            else:
                requeue = min(left + 0.5, 30.0)
        if not any(c.get("type") == "Progressing" for c in conds) and new_rs is not None:
            conds = _set(conds, "Progressing", "True", "ReplicaSetUpdated",
                         f'ReplicaSet "{name}" is progressing.', stamp)
        status["conditions"] = conds
        if status != old_status:
            with contextlib.suppress(NotFound):
                await self.client.patch(DEPLOYMENTS, d["metadata"]["namespace"], d["metadata"]["name"],
                                        {"status": {**{k: None for k in old_status if k not in status},
                                                    **status}}, sub="status")
        return requeue

    def _moved(self, d: Obj, every: list[Obj]) -> bool:
        """Did the rollout make progress since the last status (kcm's progress check)?"""
        old = d.get("status") or {}
        now_counts = (sum(_status(rs, "availableReplicas") for rs in every),
                      sum(_status(rs, "replicas") for rs in every))
        return now_counts != (old.get("availableReplicas", 0), old.get("replicas", 0)) or \
            d["metadata"].get("generation") != old.get("observedGeneration")


def _set(conds: list[Obj], ctype: str, status: str, reason: str, message: str, stamp: str, *,
         touch: bool = False) -> list[Obj]:
    """kcm's SetDeploymentCondition: same status, reason and message keep the condition as it
    is, except that ``touch`` records progress in ``lastUpdateTime``."""
    for c in conds:
        if c.get("type") == ctype and c.get("status") == status and c.get("reason") == reason:
            if c.get("message") == message:
                if touch and c.get("lastUpdateTime") != stamp:
                    return [{**x, "lastUpdateTime": stamp} if x is c else x for x in conds]
                return conds
            break
    new = {"type": ctype, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
           "reason": reason, "message": message}
    return set_condition(conds, new)

