"""The API requests a KubeCluster makes, as plain async functions over ``kube.Client``.

They take the client, namespace and names explicitly (no cluster object), so the cluster
manager stays a thin orchestration layer and each request can be read, and tested, on its own.
``kube.Client`` is used rather than kr8s objects because it maps error ``Status`` bodies to
:class:`~dask_kube_jobs.kube.APIError` subclasses by status (``NotFound``, ``Conflict``...)
without kr8s's habit of re-authenticating on any 401/403 (see ``dask_kube_jobs/kube/client.py``).
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from distributed.utils import Log, Logs

from ..contract.api_resources import DASKCLUSTERS
from ..contract.names import (
    API_VERSION,
    COMPONENT_AUTOSCALER,
    COMPONENT_SCHEDULER,
    COMPONENT_WORKER,
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    scheduler_name,
)
from ..contract.objects import owner_reference
from ..errors import APIRequestError, CRDsNotInstalled
from ..kube import PODS, SERVICES, APIError, Client, Conflict, Forbidden, NotFound, Resource

__all__ = [
    "autoscaler_body", "delete_and_wait", "get_logs", "pod_log", "upsert", "worker_group_body",
]

LOG_TAIL_LINES = 20


def explain(exc: APIError, what: str) -> APIRequestError:
    """An API error turned into the package's error, with a message saying what to do next."""
    if isinstance(exc, NotFound) and "namespace" in exc.message.lower():
        return APIRequestError(exc.code, exc.reason, f"{what}: {exc.message}; create the "
                               "namespace or pass another namespace=", status=exc.body)
    if isinstance(exc, NotFound):
        return CRDsNotInstalled(exc.code, exc.reason, f"{what}: the DaskCluster resource type is "
                                "not installed in this cluster", status=exc.body)
    error = APIRequestError(exc.code, exc.reason, f"{what}: {exc.message}", status=exc.body)
    if isinstance(exc, Forbidden):
        error.hint = ("your account needs rights on daskclusters, daskworkergroups and "
                      "daskautoscalers (kubernetes.dask.org) and get/list on pods, pods/log, "
                      "pods/portforward and services in this namespace")
    return error


def autoscaler_body(cluster: dict[str, Any], name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """A DaskAutoscaler for ``cluster``, owned by it so that it goes when the cluster goes."""
    meta = cluster["metadata"]
    return {"apiVersion": API_VERSION, "kind": "DaskAutoscaler",
            "metadata": {"name": name, "namespace": meta["namespace"],
                         "labels": {LABEL_CLUSTER: meta["name"],
                                    LABEL_COMPONENT: COMPONENT_AUTOSCALER},
                         "ownerReferences": [owner_reference(cluster, controller=False)]},
            "spec": spec}


def worker_group_body(cluster: dict[str, Any], group: str, n_workers: int,
                      overrides: dict[str, Any], custom_spec: dict[str, Any] | None
                      ) -> dict[str, Any]:
    """A DaskWorkerGroup for ``cluster``: ``custom_spec`` as given, else a copy of the cluster's
    worker template with ``n_workers`` and the first container's fields in ``overrides``
    (``None`` or ``False`` = keep the template's) replaced."""
    if custom_spec is not None:
        worker = copy.deepcopy(custom_spec)
        worker.setdefault("replicas", n_workers)
    else:
        worker = copy.deepcopy((cluster.get("spec") or {}).get("worker") or {})
        worker["replicas"] = n_workers
        containers = worker.setdefault("spec", {}).setdefault("containers", [{}])
        for key, value in overrides.items():
            if value is not False and value is not None:
                containers[0][key] = value
    meta = cluster["metadata"]
    return {"apiVersion": API_VERSION, "kind": "DaskWorkerGroup",
            "metadata": {"name": group, "namespace": meta["namespace"],
                         "labels": {LABEL_CLUSTER: meta["name"]}},
            "spec": {"cluster": meta["name"], "worker": worker}}


async def upsert(client: Client, res: Resource, namespace: str, body: dict[str, Any]) -> None:
    """Create ``body``, or merge-patch its spec onto the existing object of that name."""
    try:
        await client.create(res, namespace, body)
    except Conflict:
        await client.patch(res, namespace, body["metadata"]["name"], {"spec": body["spec"]})


async def delete_and_wait(client: Client, res: Resource, namespace: str, name: str,
                          timeout: float) -> bool:
    """Delete (background cascade) and wait until the object is gone; False on timeout."""
    await client.delete(res, namespace, name, propagation="Background")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await client.get(res, namespace, name) is None:
            return True
        await asyncio.sleep(0.5)
    return False


async def pod_log(client: Client, pod: dict[str, Any], *, tail_lines: int | None = None) -> str:
    """The log of a Pod's first container through ``pods/log``, as text ('' if none yet)."""
    meta = pod["metadata"]
    try:
        return await client.read_log(meta["namespace"], meta["name"], tail_lines=tail_lines)
    except APIError:
        return ""


async def get_logs(client: Client, namespace: str, cluster: str, *, scheduler: bool = True,
                   workers: bool = True) -> Logs:
    """``{pod name: log}`` for the cluster's scheduler and worker Pods."""
    pods, _ = await client.list(PODS, namespace, label_selector=f"{LABEL_CLUSTER}={cluster}")
    logs = Logs()
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        component = pod["metadata"].get("labels", {}).get(LABEL_COMPONENT)
        if (component == COMPONENT_SCHEDULER and not scheduler) or \
                (component == COMPONENT_WORKER and not workers) or \
                component not in (COMPONENT_SCHEDULER, COMPONENT_WORKER):
            continue
        phase = (pod.get("status") or {}).get("phase", "Pending")
        text = await pod_log(client, pod) if phase != "Pending" else ""
        logs[pod["metadata"]["name"]] = Log(text or f"(no log yet: the Pod is {phase})")
    return logs


async def scheduler_objects(client: Client, namespace: str, cluster: str
                            ) -> tuple[dict[str, Any] | None, dict[str, Any] | None,
                                       dict[str, Any] | None]:
    """The DaskCluster, its scheduler Pod and its scheduler Service (each None if absent)."""
    name = scheduler_name(cluster)
    return (await client.get(DASKCLUSTERS, namespace, cluster),
            await client.get(PODS, namespace, name),
            await client.get(SERVICES, namespace, name))
