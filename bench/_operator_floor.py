"""The floor under the trivial job: the same Pods, started by a plain script, with no operator.

What an operator adds to a DaskJob's run is everything between the user's create and the
processes doing their work, and back. The floor removes the operator and keeps the rest: the
same local API server, scheduler, kubelet and Service resolution, and the same three processes
the trivial DaskJob runs (its ``_operator_manifests.daskjob`` manifest's scheduler, worker and
runner), with the scheduler address injected as the contract names it.

The script does by hand what our operator does, in the same order: the scheduler Pod, its
Service, the worker Pod and the runner Pod at once (workers and the runner wait for their
scheduler, so their start-ups overlap the scheduler's), then, once the runner has Succeeded, it
deletes everything. Its timings are what an operator could reach if its own work cost nothing.
Creating the worker or the runner only once the scheduler is ready is not a floor: it
serialises start-ups that our operator overlaps.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from _operator_manifests import TRIVIAL_RUNNER, daskjob
from _operator_workloads import Env, Watched, WorkloadFailed, create

from dask_kube_jobs.contract import names
from dask_kube_jobs.kube import PODS, SERVICES

Obj = dict[str, Any]
CLUSTER = "floor"


def _with_env(pod_spec: Obj, env: list[Obj]) -> Obj:
    spec = copy.deepcopy(pod_spec)
    for container in spec["containers"]:
        container.setdefault("env", []).extend(env)
    return spec


def _pod(name: str, component: str, spec: Obj) -> Obj:
    labels = {names.LABEL_CLUSTER: CLUSTER, names.LABEL_COMPONENT: component}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": spec}


def floor_objects(namespace: str) -> tuple[Obj, Obj, Obj, Obj]:
    """(scheduler Pod, Service, worker Pod, runner Pod) of the trivial job, without an owner."""
    job = daskjob(CLUSTER, TRIVIAL_RUNNER, workers=1)  # the trivial workload's DaskJob
    spec = job["spec"]["cluster"]["spec"]
    address = {"name": "DASK_SCHEDULER_ADDRESS",
               "value": names.scheduler_address(CLUSTER, namespace)}
    scheduler = _pod(names.scheduler_name(CLUSTER), names.COMPONENT_SCHEDULER,
                     copy.deepcopy(spec["scheduler"]["spec"]))
    service = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": names.scheduler_name(CLUSTER),
                            "labels": {names.LABEL_CLUSTER: CLUSTER}},
               "spec": copy.deepcopy(spec["scheduler"]["service"])}
    worker_name = f"{CLUSTER}-worker-0"
    worker = _pod(worker_name, names.COMPONENT_WORKER, _with_env(
        spec["worker"]["spec"], [{"name": "DASK_WORKER_NAME", "value": worker_name}, address]))
    runner_spec = _with_env(job["spec"]["job"]["spec"], [address])
    runner_spec["restartPolicy"] = "Never"  # as the operator's runner: one attempt, counted
    runner = _pod(f"{CLUSTER}-runner", names.COMPONENT_RUNNER, runner_spec)
    return scheduler, service, worker, runner


def _of(items: list[Obj], pod: Obj) -> Obj | None:
    return next((p for p in items if p["metadata"]["name"] == pod["metadata"]["name"]), None)


async def trivial_floor(env: Env, ns: str) -> dict[str, float]:
    """The trivial job's Pods by hand: create → runner Succeeded, → scheduler and worker gone.

    The figures carry the trivial workload's names (Successful here is the runner Pod's
    Succeeded, which an operator turns into the job's status), so the report puts them beside
    each operator's.
    """
    scheduler, service, worker, runner = floor_objects(ns)
    async with Watched(env.client, PODS, ns) as pods:
        start = time.monotonic()
        deadline = start + env.timeout
        await asyncio.gather(create(env, PODS, ns, scheduler), create(env, SERVICES, ns, service),
                             create(env, PODS, ns, worker), create(env, PODS, ns, runner))

        def runner_done(items: list[Obj]) -> bool:
            phase = ((_of(items, runner) or {}).get("status") or {}).get("phase")
            if phase == "Failed":
                raise WorkloadFailed("the floor's runner Pod Failed")
            return phase == "Succeeded"

        ok = await pods.until("the floor's runner Succeeded", runner_done, deadline)
        await asyncio.gather(*(env.client.delete(PODS, ns, p["metadata"]["name"])
                               for p in (scheduler, worker, runner)),
                             env.client.delete(SERVICES, ns, service["metadata"]["name"]))
        done = await pods.until("the floor's scheduler and worker Pods gone",
                                lambda items: not _of(items, scheduler) and not _of(items, worker),
                                deadline)
    return {"trivial job: create → Successful (s)": ok - start,
            "trivial job: create → teardown done (s)": done - start}


# The workloads that have a floor, measured once per run after the operators' turns.
FLOORS = {"trivial": trivial_floor}
