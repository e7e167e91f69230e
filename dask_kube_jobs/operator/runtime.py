"""What the operator's reconcilers share while it runs.

kopf drives the custom resources (one daemon per object, restarted with the operator, so every
object is reconciled again after a restart). Pods are not watched through kopf: kopf filters
labels on the client, so its memory would grow with every unrelated Pod in the namespace.
Instead one informer per watched namespace lists and watches only Pods carrying the
``dask.org/component`` label (a server-side selector), and each change wakes exactly the daemons
of the objects that Pod belongs to. Daemons also wake on a timer, which makes the whole
operator level-triggered: a missed event costs latency, never correctness. The timer is short
only while something time-based is pending (a timeout, a TTL, a retry's back-off, a limits
re-check); an object that waits only on events sleeps ``SETTLED`` between passes, so hundreds
of settled objects cost next to nothing.

Reads come from memory, not from the API server: the custom objects from what kopf's watch
delivered (``cache.ObjectCache``, fed by ``handlers.py``, with this process's own writes on
top until the watch shows them), Pods and the schedulers' Services from their informers. A
read the cache cannot answer (an object the watch has not delivered yet) falls back to a GET,
so a restarted operator converges exactly as before, only with more requests at first.

The Runtime is also where the operator's metrics are fed from (``metrics.py``): a wake-up's
time is kept until the pass it causes starts, a status write that ends a job counts its outcome,
and ``snapshot`` tells the scrape what the process manages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..contract import names
from ..contract.api_resources import DASKJOBS
from ..kube import PODS, SERVICES, Client, EventRecorder, Informer, NotFound, Resource
from . import metrics
from .cache import UNKNOWN, ObjectCache
from .profile_admission import ProfileSource

log = logging.getLogger("dask_kube_jobs.operator")

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (namespace, kind, name)

#: The timed pass of an object that waits only on watch events (settled, finished, or waiting
#: for a Pod to change): a safety net against a lost event, not a poll. Anything that must
#: happen at a time (a timeout, a TTL, a retry, a limits re-check) returns its own shorter delay.
SETTLED = 600.0
#: Seconds the wake-ups that worker Pods cause are gathered before they wake their cluster,
#: group and job: a scale-up's Pods change state within moments of each other, and the
#: objects' status (worker and ready counts) is written once per gathering instead of once
#: per Pod change. Workers' own readiness is the scheduler's; these counts only report it.
WORKER_COALESCE = 0.5


@dataclass
class Expectation:
    """Pods we created and have not yet seen come back through the informer (client-go's
    ControllerExpectations): until they do, a reconcile must not count them as missing."""

    names: set[str]
    deadline: float


@dataclass
class Runtime:
    client: Client
    events: EventRecorder
    namespaces: list[str] | None  # None: all namespaces
    informers: dict[str | None, Informer] = field(default_factory=dict)
    service_informers: dict[str | None, Informer] = field(default_factory=dict)
    objects: ObjectCache = field(default_factory=ObjectCache)
    _triggers: dict[Key, asyncio.Event] = field(default_factory=dict)
    _expectations: dict[Key, Expectation] = field(default_factory=dict)
    _woken_at: dict[Key, float] = field(default_factory=dict)  # first unserved wake-up
    _soon: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)  # gathered wake-ups
    managed: dict[Key, str] = field(default_factory=dict)  # daemons running -> phase seen
    # Finished DaskJobs whose cluster this process deleted or saw gone: their passes need not
    # look again. Only a saving: a new process looks once per job, which is as correct.
    torn_down: dict[Key, str] = field(default_factory=dict)  # -> the job's uid
    # DaskClusters (namespace, name) a child of which the API server refused for good, with
    # their Failed condition: written by the cluster's daemon from its status, read by its
    # job's daemon (so a job ends with its cluster's refusal without asking for the cluster).
    refused_clusters: dict[tuple[str, str], Obj] = field(default_factory=dict)
    # The DaskClusterProfiles (an informer of their own: cluster-scoped, read at admission).
    profiles: ProfileSource | None = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, kubeconfig: str | None, namespaces: list[str] | None) -> Runtime:
        client = await Client.connect(kubeconfig)
        rt = cls(client, EventRecorder(client, names.EVENT_COMPONENT), namespaces)
        for ns in namespaces or [None]:  # type: ignore[list-item]
            informer = Informer(client, PODS, namespace=ns, label_selector=names.LABEL_COMPONENT)
            informer.on_change(rt._on_pod)
            rt.informers[ns] = informer
            rt._tasks.append(asyncio.create_task(informer.run(), name=f"pods-informer-{ns or 'all'}"))
            # The schedulers' Services (every one carries its cluster's label): a Service is
            # created when this cache says it is missing, never re-sent to be answered 409.
            services = Informer(client, SERVICES, namespace=ns, label_selector=names.LABEL_CLUSTER)
            services.on_change(rt._on_service)
            rt.service_informers[ns] = services
            rt._tasks.append(asyncio.create_task(services.run(), name=f"services-informer-{ns or 'all'}"))
        rt.profiles = ProfileSource(client, rt.trigger)
        rt._tasks.append(await rt.profiles.start())
        synced = [*rt.informers.values(), *rt.service_informers.values()]
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in synced)), 60)
        metrics.STATE.source = rt.snapshot
        return rt

    async def stop(self) -> None:
        if metrics.STATE.source == self.snapshot:
            metrics.STATE.source = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.client.close()

    # -- pods -------------------------------------------------------------------------------
    def _informer_for(self, namespace: str) -> Informer | None:
        return self.informers.get(namespace) or self.informers.get(None)

    def pods(self, namespace: str, **labels: str) -> list[Obj]:
        """Cached Pods in ``namespace`` whose labels include all of ``labels``."""
        informer = self._informer_for(namespace)
        if informer is None:
            return []
        return [p for p in informer.items(namespace)
                if all((p["metadata"].get("labels") or {}).get(k) == v for k, v in labels.items())]

    def pod(self, namespace: str, name: str) -> Obj | None:
        informer = self._informer_for(namespace)
        return informer.get(namespace, name) if informer else None

    # -- services ---------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> Obj | None:
        """The Service from the informer, or as this process just created it (the watch may
        not have brought it back yet)."""
        informer = self.service_informers.get(namespace) or self.service_informers.get(None)
        found = informer.get(namespace, name) if informer else None
        if found is None:
            made = self.objects.lookup(SERVICES.kind, namespace, name)
            found = made if made is not UNKNOWN else None
        return found

    def _on_service(self, kind: str, service: Obj, old: Obj | None) -> None:
        meta = service["metadata"]
        ns = meta.get("namespace") or ""
        cluster = (meta.get("labels") or {}).get(names.LABEL_CLUSTER)
        if kind == "DELETED":  # a scheduler Service removed by someone: make it again now
            self.objects.forget_written((ns, SERVICES.kind, meta["name"]))
            if cluster:
                self.trigger(ns, "DaskCluster", cluster)
        if cluster:
            self.trigger(ns, "DaskJob", cluster)  # a job's runner is made once its Service exists

    # -- custom objects -----------------------------------------------------------------------
    async def read(self, res: Resource, namespace: str, name: str) -> Obj | None:
        """An object from the cache (read-only: do not change it); a GET only when the cache
        cannot tell (see ``cache.py``). None: it does not exist."""
        found = self.objects.lookup(res.kind, namespace, name)
        if found is not UNKNOWN:
            return found  # type: ignore[no-any-return]
        obj = await self.client.get(res, namespace, name)
        if obj is not None:
            obj.setdefault("kind", res.kind)
            self.objects.wrote(obj)  # as fresh as a write: kept until the watch catches up
        return obj

    def wrote(self, res: Resource, obj: Obj | None) -> Obj | None:
        """Note an object as the API server answered a write of it."""
        if obj is not None:
            obj.setdefault("kind", res.kind)
            self.objects.wrote(obj)
        return obj

    async def patch(self, res: Resource, namespace: str, name: str, body: Obj) -> Obj:
        """A merge patch of a custom object, remembered until the watch brings it back."""
        return self.wrote(res, await self.client.patch(res, namespace, name, body))  # type: ignore[return-value]

    def _on_pod(self, kind: str, pod: Obj, old: Obj | None) -> None:
        meta = pod["metadata"]
        labels = meta.get("labels") or {}
        ns = meta.get("namespace") or ""
        if kind == "DELETED":  # our own creation of it no longer says it exists: make it again now
            self.objects.forget_written((ns, PODS.kind, meta["name"]))
        wake = self.trigger_soon if labels.get(names.LABEL_COMPONENT) == names.COMPONENT_WORKER \
            else self.trigger
        cluster = labels.get(names.LABEL_CLUSTER)
        if cluster:
            wake(ns, "DaskCluster", cluster)
        group = labels.get(names.LABEL_WORKER_GROUP)
        if group:
            wake(ns, "DaskWorkerGroup", group)
        job = labels.get(names.LABEL_JOB)
        if job:
            wake(ns, "DaskJob", job)
        elif cluster:
            # A job's cluster bears the job's name: its scheduler decides when the runner may
            # be judged, its workers what the job's status says while they cannot start.
            wake(ns, "DaskJob", cluster)

    # -- wake-ups ---------------------------------------------------------------------------
    def trigger(self, namespace: str, kind: str, name: str) -> None:
        key = (namespace, kind, name)
        event = self._triggers.get(key)
        if event is None and key in self.managed:
            # Its daemon is in its first pass and has not waited yet: keep the wake-up for
            # the wait that ends that pass (a runner finishing then must not wait a resync).
            event = self._triggers[key] = asyncio.Event()
        if event is not None:
            self._woken_at.setdefault(key, time.monotonic())
            event.set()

    def trigger_soon(self, namespace: str, kind: str, name: str) -> None:
        """``trigger`` within ``WORKER_COALESCE`` seconds, once for all the calls meanwhile."""
        key = (namespace, kind, name)
        if key not in self._soon:
            self._soon[key] = asyncio.get_running_loop().call_later(
                WORKER_COALESCE, self._trigger_gathered, key)

    def _trigger_gathered(self, key: Key) -> None:
        self._soon.pop(key, None)
        self.trigger(*key)

    async def wait(self, key: Key, timeout: float, stopped: Any) -> None:
        """Sleep until woken for ``key``, ``timeout`` passes, or the daemon is stopped."""
        event = self._triggers.setdefault(key, asyncio.Event())
        if event.is_set():
            event.clear()
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(event.wait())]
        if stopped is not None:
            waiters.append(asyncio.ensure_future(stopped.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.05, timeout),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
            event.clear()
            woken_at = self._woken_at.pop(key, None)
            if woken_at is not None:  # the next pass is the one this wake-up asked for
                metrics.observe_wakeup(key[1], woken_at)

    def forget(self, key: Key) -> None:
        soon = self._soon.pop(key, None)
        if soon is not None:
            soon.cancel()
        self._triggers.pop(key, None)
        self._expectations.pop(key, None)
        self._woken_at.pop(key, None)
        self.managed.pop(key, None)
        self.torn_down.pop(key, None)
        if key[1] == "DaskCluster":
            self.refused_clusters.pop((key[0], key[2]), None)

    # -- what this process manages ----------------------------------------------------------
    def track(self, key: Key, obj: Obj) -> None:
        """Note an object a daemon of this process reconciles, with its phase if a DaskJob."""
        phase = ""
        if key[1] == "DaskJob":
            phase = (obj.get("status") or {}).get("jobStatus") or "New"
        self.managed[key] = phase

    def snapshot(self) -> metrics.Snapshot:
        objects: dict[str, int] = {}
        jobs: dict[str, int] = {}
        for (_, kind, _), phase in self.managed.items():
            objects[kind] = objects.get(kind, 0) + 1
            if kind == "DaskJob":
                jobs[phase] = jobs.get(phase, 0) + 1
        pods: dict[tuple[str, str], int] = {}
        for informer in self.informers.values():
            for pod in informer.items():
                component = (pod["metadata"].get("labels") or {}).get(names.LABEL_COMPONENT, "")
                phase = (pod.get("status") or {}).get("phase") or "Pending"
                pods[component, phase] = pods.get((component, phase), 0) + 1
        return metrics.Snapshot(objects, jobs, pods)

    # -- expectations -----------------------------------------------------------------------
    def expect(self, key: Key, pod_names: Iterable[str], within: float = 30.0) -> None:
        exp = self._expectations.get(key)
        if exp is None or time.monotonic() > exp.deadline:
            exp = self._expectations[key] = Expectation(set(), 0.0)
        exp.names.update(pod_names)
        exp.deadline = time.monotonic() + within

    def unexpect(self, key: Key, pod_names: Iterable[str]) -> None:
        """Pods whose creation failed: they will never come back through the informer."""
        exp = self._expectations.get(key)
        if exp is not None:
            exp.names.difference_update(pod_names)

    def expectations_met(self, key: Key, namespace: str) -> bool:
        exp = self._expectations.get(key)
        if exp is None:
            return True
        exp.names = {n for n in exp.names if self.pod(namespace, n) is None}
        if not exp.names or time.monotonic() > exp.deadline:
            self._expectations.pop(key, None)
            return True
        return False

    # -- writes -----------------------------------------------------------------------------
    async def patch_status(self, res: Resource, obj: Obj, status: Obj) -> Obj | None:
        """Merge ``status`` into the object's status; None when the object is gone."""
        meta = obj["metadata"]
        try:
            patched = await self.client.patch(res, meta["namespace"], meta["name"],
                                              {"status": status}, sub="status")
        except NotFound:
            return None
        self.wrote(res, patched)
        if res == DASKJOBS:
            metrics.observe_job_status_write(obj, status, patched)
            phase = status.get("jobStatus")
            if phase and patched is not None:
                reason = (patched.get("status") or {}).get("reason") if phase in metrics.TERMINAL_JOB_PHASES else None
                log.info("DaskJob is now %s%s", phase, f" ({reason})" if reason else "")
        return patched

    async def log_tail(self, namespace: str, pod: str, lines: int = 20,
                       max_chars: int = 4000, *, previous: bool = False) -> str | None:
        """The last lines a Pod's first container wrote (its previous instance's with
        ``previous``, for a crash-looping one), for a failed job's status; None if the log
        cannot be had (the node is gone, the Pod never started)."""
        try:
            text = await self.client.read_log(namespace, pod, tail_lines=lines,
                                              previous=previous, timeout=10)
        except Exception as exc:  # best effort: a missing log must not block the verdict
            log.debug("no log for %s/%s: %s", namespace, pod, exc)
            return None
        return text[-max_chars:]

    async def event(self, obj: Obj, reason: str, message: str, *, warning: bool = False) -> None:
        await self.events.record(obj, "Warning" if warning else "Normal", reason, message)


async def unless_stopped(pass_: Awaitable[float | None], stopped: Any) -> float | None:
    """Run one daemon pass, cut short (None) as soon as ``stopped`` (kopf's DaemonStopped) is set.

    Passes are idempotent, so one cut mid-way is simply not finished; waiting for it instead
    can outlast kopf's cancellation back-off when many objects go at once (a namespace with
    hundreds of clusters being deleted queues hundreds of passes' requests), and kopf then
    cancels each daemon with a warning.
    """
    task = asyncio.ensure_future(pass_)
    stop = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait((task, stop), return_when=asyncio.FIRST_COMPLETED)
    except BaseException:  # this daemon itself cancelled
        task.cancel()
        raise
    finally:
        stop.cancel()
    if not task.done():
        task.cancel()
        await asyncio.wait((task,))  # (not awaiting the task: its CancelledError is not ours)
        if not task.cancelled():
            task.exception()  # ended with an error meanwhile: not worth reporting now
        return None
    return task.result()
