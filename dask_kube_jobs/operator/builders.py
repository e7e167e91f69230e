"""Child manifests of each custom resource, as pure functions of the parent.

Everything the operator creates is computed here without I/O, so the reconcilers stay short and
these rules are unit-tested on their own: names and labels (upstream's), owner references (so
deleting a parent cascades), annotations inherited from the parent (minus kubectl's and kopf's
bookkeeping), and the scheduler address injected into workers and runners -- never overriding
a value the user set, so a manifest that already wires its own address keeps working.
"""

from __future__ import annotations

import copy
from typing import Any

from ..contract import names
from ..contract.objects import owner_reference

Obj = dict[str, Any]


def inherited_annotations(parent: Obj) -> dict[str, str]:
    annotations = (parent.get("metadata") or {}).get("annotations") or {}
    return {k: v for k, v in annotations.items()
            if not k.startswith(names.PRIVATE_ANNOTATION_PREFIXES)}


def _metadata(name: str, parent: Obj, labels: dict[str, str],
              extra: Obj | None = None) -> Obj:
    """Metadata of a child: user metadata from the spec, then ours on top (ours wins)."""
    extra = extra or {}
    annotations = {**inherited_annotations(parent), **(extra.get("annotations") or {})}
    meta: Obj = {
        "name": name,
        "namespace": parent["metadata"]["namespace"],
        "labels": {**(extra.get("labels") or {}), **labels},
        "ownerReferences": [owner_reference(parent)],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def inject_env(pod_spec: Obj, env: list[Obj]) -> Obj:
    """Add ``env`` to every container unless the container already defines that name."""
    spec = copy.deepcopy(pod_spec)
    for container in spec.get("containers") or []:
        existing = container.setdefault("env", [])
        defined = {e.get("name") for e in existing}
        existing.extend(e for e in env if e["name"] not in defined)
    return spec


def cluster_labels(cluster: str, component: str) -> dict[str, str]:
    return {names.LABEL_CLUSTER: cluster, names.LABEL_COMPONENT: component}


def scheduler_pod(cluster: Obj) -> Obj:
    name = cluster["metadata"]["name"]
    scheduler = (cluster.get("spec") or {}).get("scheduler") or {}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": _metadata(names.scheduler_name(name), cluster,
                              cluster_labels(name, names.COMPONENT_SCHEDULER),
                              scheduler.get("metadata")),
        "spec": copy.deepcopy(scheduler.get("spec") or {}),
    }


def scheduler_service(cluster: Obj) -> Obj:
    name = cluster["metadata"]["name"]
    scheduler = (cluster.get("spec") or {}).get("scheduler") or {}
    spec = copy.deepcopy(scheduler.get("service") or {})
    if not spec.get("selector"):
        # Upstream manifests always carry this selector; ours is injected when it is missing so
        # a Service spec without one still reaches the scheduler instead of nothing.
        spec["selector"] = cluster_labels(name, names.COMPONENT_SCHEDULER)
    if not spec.get("ports"):
        spec["ports"] = [
            {"name": "tcp-comm", "protocol": "TCP", "port": names.SCHEDULER_PORT,
             "targetPort": names.SCHEDULER_PORT},
            {"name": "http-dashboard", "protocol": "TCP", "port": names.DASHBOARD_PORT,
             "targetPort": names.DASHBOARD_PORT},
        ]
    labels = {names.LABEL_CLUSTER: name}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _metadata(names.scheduler_name(name), cluster, labels,
                                  scheduler.get("metadata")),
            "spec": spec}


def default_worker_group(cluster: Obj) -> Obj:
    name = cluster["metadata"]["name"]
    worker = copy.deepcopy((cluster.get("spec") or {}).get("worker") or {})
    return {
        "apiVersion": names.API_VERSION, "kind": "DaskWorkerGroup",
        "metadata": _metadata(names.default_worker_group(name), cluster,
                              cluster_labels(name, names.COMPONENT_WORKER_GROUP)),
        "spec": {"cluster": name, "worker": worker},
    }


def worker_pod(group: Obj, token: str) -> Obj:
    group_name = group["metadata"]["name"]
    namespace = group["metadata"]["namespace"]
    spec = group.get("spec") or {}
    cluster = spec["cluster"]
    worker = spec.get("worker") or {}
    name = names.worker_name(group_name, token)
    labels = {**cluster_labels(cluster, names.COMPONENT_WORKER),
              names.LABEL_WORKER_GROUP: group_name}
    pod_spec = inject_env(worker.get("spec") or {}, [
        {"name": "DASK_WORKER_NAME", "value": name},
        {"name": "DASK_SCHEDULER_ADDRESS", "value": names.scheduler_address(cluster, namespace)},
    ])
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _metadata(name, group, labels, worker.get("metadata")),
            "spec": pod_spec}


def cluster_of_job(job: Obj) -> str:
    """The DaskCluster a job's runner connects to: the existing one its ``spec.clusterRef``
    names, or the one made for it."""
    ref = ((job.get("spec") or {}).get("clusterRef") or {}).get("name")
    return ref or names.job_cluster_name(job["metadata"]["name"])


def job_cluster(job: Obj) -> Obj:
    name = names.job_cluster_name(job["metadata"]["name"])
    cluster = (job.get("spec") or {}).get("cluster") or {}
    meta = _metadata(name, job, {names.LABEL_CLUSTER: name,
                                 names.LABEL_JOB: job["metadata"]["name"]},
                     cluster.get("metadata"))
    return {"apiVersion": names.API_VERSION, "kind": "DaskCluster", "metadata": meta,
            "spec": copy.deepcopy(cluster.get("spec") or {})}


#: The distributed setting that bounds how long ``Client()`` (and any later connection of the
#: runner) keeps retrying: set on the runner so its first ``Client()`` waits for a scheduler
#: that starts at the same time as the runner (docs/operator-failures.md).
CONNECT_TIMEOUT_ENV = "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"


def runner_pod(job: Obj, attempt: int, *, connect_timeout: float | None = None) -> Obj:
    """The runner Pod of ``attempt``. With ``connect_timeout`` (seconds) its containers are
    told to keep trying to reach the scheduler that long, unless they set it themselves."""
    meta = job["metadata"]
    namespace = meta["namespace"]
    cluster = cluster_of_job(job)
    runner = ((job.get("spec") or {}).get("job") or {})
    name = names.runner_name(meta["name"], meta["uid"], attempt)
    labels = {**cluster_labels(cluster, names.COMPONENT_RUNNER),
              names.LABEL_JOB: meta["name"], names.LABEL_ATTEMPT: str(attempt)}
    env = [{"name": "DASK_SCHEDULER_ADDRESS", "value": names.scheduler_address(cluster, namespace)}]
    if connect_timeout is not None:
        env.append({"name": CONNECT_TIMEOUT_ENV, "value": f"{connect_timeout:.0f}s"})
    pod_spec = inject_env(runner.get("spec") or {}, env)
    # Retries are the operator's (spec.backoffLimit, with fresh Pods it can count and name);
    # a kubelet restarting the runner in place would hide failed attempts from it.
    pod_spec["restartPolicy"] = "Never"
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": _metadata(name, job, labels, runner.get("metadata")),
            "spec": pod_spec}
