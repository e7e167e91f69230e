"""The API requests a KubeCluster makes, as plain async functions over ``kube.Client``.

They take the client, namespace and names explicitly (no cluster object), so the cluster
manager stays a thin orchestration layer and each request can be read, and tested, on its own.
``kube.Client`` is used rather than kr8s objects because it maps error ``Status`` bodies to
:class:`~dask_kube_jobs.kube.APIError` subclasses by status (``NotFound``, ``Conflict``...)
without kr8s's habit of re-authenticating on any 401/403 (see ``dask_kube_jobs/kube/client.py``).
"""

from __future__ import annotations

import copy
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
from ..kube import PODS, SERVICES, APIError, Client, Conflict, Resource

__all__ = [
    "autoscaler_body", "get_logs", "pod_log", "upsert", "worker_group_body",
]

LOG_TAIL_LINES = 20


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
