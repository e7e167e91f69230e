"""The kopf registrations: one daemon per custom object, woken by events and by a timer.

The timer is a safety net for settled objects (``runtime.SETTLED``) and short only while
something time-based is pending; what changes an object's next step arrives as an event: its
own watch events, its Pods' and Services' (``runtime.py``), and, for a DaskJob, its cluster's.

A daemon is kopf's per-object task: it starts for every object the operator sees (including all
existing ones when a new operator process starts) and is stopped when the object is deleted.
Each loop iteration takes the object as kopf's watch last delivered it (``Runtime.read``: no
request, unless the watch has not caught up with a write of this process) and runs one reconcile
pass, so the loop is the whole controller: nothing is remembered between passes that could not
be observed again. Errors are
retried with a bounded back-off; a daemon whose object is gone ends instead of retrying.
The loop is also the one place each pass is counted and timed (``metrics.reconcile_pass``) and
where the daemon's log records are tagged with its object (``logs.bind_object``).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import kopf

from ..contract import names
from ..contract.api_resources import (
    DASK_RESOURCES,
    DASKAUTOSCALERS,
    DASKCLUSTERS,
    DASKJOBS,
    DASKWORKERGROUPS,
)
from ..contract.objects import without_nulls
from ..kube import TRANSIENT_ERRORS, APIError, Resource, exponential_delay, namespace_terminating
from . import autoscaler, cluster, job, logs, metrics, workergroup
from .runtime import Runtime, unless_stopped

log = logging.getLogger("dask_kube_jobs.operator")

MAX_ERROR_DELAY = 60.0
# A namespace being deleted takes its objects (and so their daemons) with it; until then a
# pass that can only be refused there waits this long instead of retrying.
TERMINATING_NAMESPACE_DELAY = 60.0
Reconcile = Callable[[Runtime, dict[str, Any]], Awaitable[float]]


def error_delay(failures: int) -> float:
    """The pause after ``failures`` failed passes in a row: 1 s, doubling, at most a minute."""
    return exponential_delay(failures, first=0.5, most=MAX_ERROR_DELAY)


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a cluster use the ServiceAccount; elsewhere the kubeconfig ($KUBECONFIG)."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        return kopf.login_with_service_account(**kwargs)
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{names.GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=names.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=names.GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # our own Events say what happened, in words
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.error_backoffs = [1, 2, 5, 10, 20]
    memo.runtime = await Runtime.start(memo.get("kubeconfig"), memo.get("namespaces"))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    runtime = memo.get("runtime")
    if runtime is not None:
        await runtime.stop()


async def _loop(kind: str, res: Resource, reconcile: Reconcile, name: str, namespace: str,
                stopped: kopf.DaemonStopped, memo: kopf.Memo, logger: Any) -> None:
    rt: Runtime = memo.runtime
    key = (namespace, kind, name)
    logs.bind_object(kind, namespace, name)
    failures = 0

    async def one_pass() -> float | None:
        """The pass's next delay; None when the object is gone."""
        with metrics.reconcile_pass(kind):
            found = await rt.read(res, namespace, name)
            if found is None:
                return None  # deleted: nothing left to reconcile
            obj = copy.deepcopy(found)  # the pass's own copy: the cache's is shared
            rt.track(key, obj)
            # A spec's nulls mean "not set" (see without_nulls); reconcilers never see them.
            if obj.get("spec") is not None:
                obj["spec"] = without_nulls(obj["spec"])
            return await reconcile(rt, obj)

    try:
        while not stopped:
            try:
                outcome = await unless_stopped(one_pass(), stopped)
                if outcome is None:
                    return
                delay = outcome
                failures = 0
            except asyncio.CancelledError:
                raise
            except APIError as exc:
                if namespace_terminating(exc):
                    failures = 0
                    delay = TERMINATING_NAMESPACE_DELAY
                    logger.debug(f"{kind} {namespace}/{name}: its namespace is being deleted")
                else:
                    failures += 1
                    delay = error_delay(failures)
                    logger.warning(f"{kind} {namespace}/{name}: {exc}; retrying in {delay:.1f}s")
            except TRANSIENT_ERRORS as exc:
                # Includes kube.RequestTimeout: every request has a total deadline, so a pass
                # stuck on a request ends here and is retried instead of stalling the daemon.
                failures += 1
                delay = error_delay(failures)
                logger.warning(f"{kind} {namespace}/{name}: {exc}; retrying in {delay:.1f}s")
            except Exception:
                failures += 1
                delay = error_delay(failures)
                logger.exception(f"{kind} {namespace}/{name}: reconcile failed; retrying in {delay:.1f}s")
            await rt.wait(key, delay, stopped)
    finally:
        rt.forget(key)


# A daemon whose object is deleted is first asked to stop (``stopped``, which ends the wait
# between passes at once) and cancelled only if it has not ended 2 s later: an immediate
# cancellation would log a warning ("is cancelled. Will escalate.") on every deletion.
@kopf.daemon(DASKCLUSTERS.group, DASKCLUSTERS.version, DASKCLUSTERS.plural, cancellation_backoff=2.0,
             cancellation_timeout=5.0)
async def daskcluster_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped,
                             memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await _loop("DaskCluster", DASKCLUSTERS, cluster.reconcile, name, namespace, stopped, memo, logger)


@kopf.daemon(DASKWORKERGROUPS.group, DASKWORKERGROUPS.version, DASKWORKERGROUPS.plural, cancellation_backoff=2.0,
             cancellation_timeout=5.0)
async def daskworkergroup_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped,
                                 memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await _loop("DaskWorkerGroup", DASKWORKERGROUPS, workergroup.reconcile, name, namespace,
                stopped, memo, logger)


@kopf.daemon(DASKJOBS.group, DASKJOBS.version, DASKJOBS.plural, cancellation_backoff=2.0,
             cancellation_timeout=5.0)
async def daskjob_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped,
                         memo: kopf.Memo, logger: Any, **_: Any) -> None:
    await _loop("DaskJob", DASKJOBS, job.reconcile, name, namespace, stopped, memo, logger)


@kopf.daemon(DASKAUTOSCALERS.group, DASKAUTOSCALERS.version, DASKAUTOSCALERS.plural, cancellation_backoff=2.0,
             cancellation_timeout=5.0)
async def daskautoscaler_daemon(name: str, namespace: str, stopped: kopf.DaemonStopped,
                                memo: kopf.Memo, logger: Any, **_: Any) -> None:
    state: dict[str, Any] = {}

    async def reconcile(rt: Runtime, obj: dict[str, Any]) -> float:
        return await autoscaler.reconcile(rt, obj, state)

    await _loop("DaskAutoscaler", DASKAUTOSCALERS, reconcile, name, namespace, stopped, memo, logger)


def _observe(kind: str) -> Callable[..., None]:
    def handler(name: str, namespace: str, event: dict[str, Any], memo: kopf.Memo, **_: Any) -> None:
        runtime: Runtime | None = memo.get("runtime")
        if runtime is not None:
            runtime.objects.observe(kind, event.get("type"), event["object"])
            runtime.trigger(namespace, kind, name)
            job = (event["object"]["metadata"].get("labels") or {}).get(names.LABEL_JOB)
            if kind == DASKCLUSTERS.kind and job:
                runtime.trigger(namespace, DASKJOBS.kind, job)  # its job reads its status
    return handler


# Every watch event of an object goes into the operator's cache (what passes read, of every
# kind) and wakes its daemon at once instead of at its next timed pass.
for _res in DASK_RESOURCES:
    kopf.on.event(_res.group, _res.version, _res.plural, id=f"wake-{_res.plural}")(_observe(_res.kind))
