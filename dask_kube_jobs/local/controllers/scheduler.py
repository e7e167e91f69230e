"""The scheduler: binds Pods to Nodes, as kube-scheduler's default profile does.

A Pod with no ``spec.nodeName`` whose ``schedulerName`` is ``default-scheduler`` goes through the
filters kube-scheduler applies — node readiness and cordoning (as the ``not-ready`` /
``unreachable`` / ``unschedulable`` taints express them), ``nodeSelector``, required node
affinity, ``NoSchedule``/``NoExecute`` taints against tolerations, and resource fit of the Pod's
requests against ``status.allocatable`` minus what non-terminated Pods on the node request —
and is bound with a ``Binding`` to the least allocated node that passes. A Pod that fits
nowhere stays Pending with ``PodScheduled=False, reason=Unschedulable`` and a message in
kube-scheduler's exact wording (``0/1 nodes are available: 1 Insufficient nvidia.com/gpu.
preemption: ...``), plus a ``FailedScheduling`` Warning Event, because users and tools
(``kubectl describe``, the operator) read those. Unschedulable Pods are retried whenever a Node
or Pod changes and every ``RETRY_SECONDS``.

One worker binds Pods one at a time and remembers what it bound until the watch reflects it,
so two Pods never both claim the last GPU of a node.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from decimal import Decimal

from ...contract.conditions import condition
from ...contract.quantity import parse_quantity
from ...contract.times import fmt_time
from ...kube import (
    NODES,
    PODS,
    Client,
    Conflict,
    EventRecorder,
    Informer,
    NotFound,
    Obj,
    WorkQueue,
    run_informers,
    wait_synced,
)

SCHEDULER_NAME = "default-scheduler"
RETRY_SECONDS = 10.0
DEFAULT_MAX_PODS = 110

def _container_requests(container: Obj) -> dict[str, Decimal]:
    res = container.get("resources") or {}
    # The API server defaults requests from limits; do the same for objects that skipped it.
    merged = {**(res.get("limits") or {}), **(res.get("requests") or {})}
    return {k: parse_quantity(v) for k, v in merged.items()}


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """Effective requests: max(sum of containers, any init container), plus overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for k, v in _container_requests(c).items():
            total[k] = total.get(k, Decimal(0)) + v
    for c in spec.get("initContainers") or []:
        for k, v in _container_requests(c).items():
            total[k] = max(total.get(k, Decimal(0)), v)
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, Decimal(0)) + parse_quantity(v)
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    for t in tolerations:
        effect = t.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key, op = t.get("key", ""), t.get("operator", "Equal")
        if op == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expression_matches(expr: Obj, values: dict[str, str]) -> bool:
    key, op, wanted = expr.get("key"), expr.get("operator"), expr.get("values") or []
    present = key in values
    if op == "In":
        return present and values[key] in wanted
    if op == "NotIn":
        return not present or values[key] not in wanted
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > limit if op == "Gt" else have < limit
    return False


def matches_node_selector_terms(terms: list[Obj], node: Obj) -> bool:
    """Required node affinity: terms are ORed, the expressions of a term ANDed."""
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        exprs, field_exprs = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not field_exprs:
            continue  # an empty term matches nothing
        if all(_expression_matches(e, labels) for e in exprs) and \
                all(_expression_matches(e, fields) for e in field_exprs):
            return True
    return False


def _implicit_taints(node: Obj) -> list[Obj]:
    """The taints the node lifecycle controller puts on nodes that are not Ready or cordoned."""
    taints = list((node.get("spec") or {}).get("taints") or [])
    keys = {t.get("key") for t in taints}
    ready = condition(node, "Ready")
    status = (ready or {}).get("status")
    if status != "True":
        key = "node.kubernetes.io/unreachable" if status == "Unknown" else "node.kubernetes.io/not-ready"
        if key not in keys:
            taints.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable") and "node.kubernetes.io/unschedulable" not in keys:
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    return taints


RESOURCE_REASONS = ("Insufficient ", "Too many pods")


def filter_node(pod: Obj, node: Obj, used: dict[str, Decimal], pod_count: int) -> list[str]:
    """Why ``pod`` cannot go on ``node`` (kube-scheduler's reason strings); empty if it fits."""
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}) \
        .get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    if any(labels.get(k) != v for k, v in selector.items()) or (
            affinity and not matches_node_selector_terms(affinity.get("nodeSelectorTerms") or [], node)):
        return ["node(s) didn't match Pod's node affinity/selector"]
    tolerations = spec.get("tolerations") or []
    for taint in _implicit_taints(node):
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not tolerates(tolerations, taint):
            if taint.get("key") == "node.kubernetes.io/unschedulable":
                return ["node(s) were unschedulable"]
            return [f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"]
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    max_pods = int(parse_quantity(allocatable.get("pods", DEFAULT_MAX_PODS)))
    if pod_count + 1 > max_pods:
        reasons.append("Too many pods")
    for name, want in sorted(pod_requests(pod).items()):
        if want <= 0:
            continue
        have = parse_quantity(allocatable[name]) if name in allocatable else Decimal(0)
        if used.get(name, Decimal(0)) + want > have:
            reasons.append(f"Insufficient {name}")
    return reasons


def fit_error(num_nodes: int, reasons: dict[str, list[str]]) -> str:
    """kube-scheduler's FitError message, with its preemption post-filter message."""
    if num_nodes == 0:
        return "no nodes available to schedule pods"
    histogram = Counter(r for rs in reasons.values() for r in rs)
    text = ", ".join(f"{n} {r}" for r, n in sorted(histogram.items(), key=lambda kv: kv[0]))
    preemption: Counter[str] = Counter()
    for rs in reasons.values():
        if rs and all(r.startswith(RESOURCE_REASONS) for r in rs):
            preemption["No preemption victims found for incoming pod"] += 1
        else:
            preemption["Preemption is not helpful for scheduling"] += 1
    ptext = ", ".join(f"{n} {r}" for r, n in sorted(preemption.items()))
    return (f"0/{num_nodes} nodes are available: {text}. "
            f"preemption: 0/{num_nodes} nodes are available: {ptext}.")


def _wants_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return not spec.get("nodeName") \
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME \
        and not pod["metadata"].get("deletionTimestamp") \
        and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _counts(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


class Scheduler:
    """kube-scheduler: one queue of unbound Pods, retried on cluster changes."""

    name = "scheduler"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.pods = Informer(client, PODS)
        self.nodes = Informer(client, NODES)
        self.queue = WorkQueue("scheduler")
        self.recorder = EventRecorder(client, SCHEDULER_NAME)
        #: pod uid -> (node name, requests) for bindings the watch has not shown yet
        self.assumed: dict[str, tuple[str, dict[str, Decimal]]] = {}
        self.pods.on_change(self._on_pod)
        self.nodes.on_change(self._on_node)

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        meta = pod["metadata"]
        if kind == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self.assumed.pop(meta.get("uid", ""), None)
        if kind != "DELETED" and _wants_scheduling(pod):
            self.queue.add((meta["namespace"], meta["name"]))
        freed = kind == "DELETED" or (old is not None and _counts(old) and not _counts(pod))
        if freed and (pod.get("spec") or {}).get("nodeName"):
            self._requeue_pending()

    def _on_node(self, kind: str, node: Obj, old: Obj | None) -> None:
        self._requeue_pending()

    def _requeue_pending(self) -> None:
        for pod in self.pods.items():
            if _wants_scheduling(pod):
                self.queue.add((pod["metadata"]["namespace"], pod["metadata"]["name"]))

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_informers(self.pods, self.nodes))
            await wait_synced(self.pods, self.nodes)
            tg.create_task(self.queue.work(self.schedule))

    def _usage(self) -> tuple[dict[str, dict[str, Decimal]], Counter[str]]:
        used: dict[str, dict[str, Decimal]] = {}
        count: Counter[str] = Counter()
        seen: set[str] = set()
        for pod in self.pods.items():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or not _counts(pod):
                continue
            seen.add(pod["metadata"].get("uid", ""))
            count[node] += 1
            bucket = used.setdefault(node, {})
            for k, v in pod_requests(pod).items():
                bucket[k] = bucket.get(k, Decimal(0)) + v
        for uid, (node, requests) in self.assumed.items():
            if uid in seen:
                continue
            count[node] += 1
            bucket = used.setdefault(node, {})
            for k, v in requests.items():
                bucket[k] = bucket.get(k, Decimal(0)) + v
        return used, count

    async def schedule(self, key: tuple[str, str]) -> float | None:
        pod = self.pods.get(*key)
        if pod is None or not _wants_scheduling(pod) or pod["metadata"].get("uid") in self.assumed:
            return None
        nodes = self.nodes.items()
        used, count = self._usage()
        reasons: dict[str, list[str]] = {}
        feasible: list[tuple[float, str]] = []
        for node in nodes:
            name = node["metadata"]["name"]
            why = filter_node(pod, node, used.get(name, {}), count[name])
            if why:
                reasons[name] = why
            else:
                feasible.append((self._score(node, used.get(name, {})), name))
        if not feasible:
            await self._unschedulable(pod, fit_error(len(nodes), reasons))
            return RETRY_SECONDS
        feasible.sort(key=lambda s: (-s[0], s[1]))
        target = feasible[0][1]
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                                "uid": meta.get("uid")},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": target}}
        try:
            await self.client.request("POST", PODS.path(meta["namespace"], meta["name"], "binding"),
                                      body=binding)
        except (NotFound, Conflict):  # gone, or bound by someone else meanwhile
            return None
        self.assumed[meta.get("uid", "")] = (target, pod_requests(pod))
        await self.recorder.record(pod, "Normal", "Scheduled",
                                   f"Successfully assigned {meta['namespace']}/{meta['name']} "
                                   f"to {target}", action="Binding")
        return None

    @staticmethod
    def _score(node: Obj, used: dict[str, Decimal]) -> float:
        """NodeResourcesFit LeastAllocated over cpu and memory: the emptier the better."""
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        score = 0.0
        for res in ("cpu", "memory"):
            if res in allocatable:
                cap = parse_quantity(allocatable[res])
                if cap > 0:
                    score += float((cap - used.get(res, Decimal(0))) / cap)
        return score

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        current = condition(pod, "PodScheduled") or {}
        if current.get("status") != "False" or current.get("reason") != "Unschedulable" \
                or current.get("message") != message:
            conditions = [c for c in (pod.get("status") or {}).get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                               "lastTransitionTime": current.get("lastTransitionTime")
                               if current.get("status") == "False" else fmt_time(),
                               "reason": "Unschedulable", "message": message})
            try:
                await self.client.patch(PODS, meta["namespace"], meta["name"],
                                        {"status": {"conditions": conditions}}, sub="status")
            except NotFound:
                return
        await self.recorder.record(pod, "Warning", "FailedScheduling", message,
                                   action="Scheduling")
