"""Why a DaskJob's runner has not started (its Pod not running, or running but still waiting
for its cluster's scheduler), read now from the cluster (best effort).

For a caller that gave a job a startup deadline (the Airflow provider's ``startup_timeout``):
a timer alone is not evidence (apache/airflow#40018: after a triggerer restart the timer fired
although the Pod was long running), so when the deadline passes the real state is read: the
job's reason and conditions, its Pods' scheduling and container states (through the contract
layer's ``start_problem``, the same words the operator uses), and the Warning Events of the
job and its Pods. Reads the RBAC hides are skipped, never taken as a problem.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import kube
from ..contract.api_resources import DASKCLUSTERS
from ..contract.cluster_status import scheduler_ready
from ..contract.names import LABEL_CLUSTER, LABEL_JOB
from ..contract.pods import start_problem
from ._status import JobStatus

__all__ = ["startup_problem"]

Obj = dict[str, Any]
_STARTED_PHASES = ("Running", "Succeeded", "Failed")  # a runner Pod in these has started
_EVENTS_READ = 20  # the most recent Warning Events looked at


async def startup_problem(client: kube.Client, job: Obj) -> str | None:
    """None if the job's runner has started (or the job ended, or the Pods cannot be read);
    else why it has not, one ``; ``-separated line."""
    meta, st = job["metadata"], JobStatus.from_job(job)
    if st.done:
        return None
    namespace = meta["namespace"]
    waiting = None
    if st.runner_pod:
        try:
            runner = await client.get(kube.PODS, namespace, st.runner_pod)
        except kube.APIError:  # no right to read Pods: cannot tell, and never fire falsely
            return None
        if runner and (runner.get("status") or {}).get("phase") in _STARTED_PHASES:
            # The operator starts the runner with its cluster and the runner's Client() waits
            # for the scheduler: the job has started its work once that scheduler is ready too.
            try:
                cluster = await client.get(DASKCLUSTERS, namespace, st.cluster_name or meta["name"])
            except kube.APIError:  # no right to read it: cannot tell, and never fire falsely
                return None
            if not cluster or scheduler_ready(cluster.get("status")):
                return None
            waiting = f"runner Pod {st.runner_pod} runs, waiting for its scheduler to be ready"
    reasons = [f"the job is {st.phase or 'not yet seen by the operator'}"]
    if waiting:
        reasons.append(waiting)
    if st.reason:
        reasons.append(f"{st.reason}: {st.message or ''}".rstrip(": "))
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "False" and cond.get("reason"):
            reasons.append(f"{cond['type']}={cond['reason']}: {cond.get('message') or ''}")
    pods: dict[str, Obj] = {}
    events: list[Obj] = []
    with contextlib.suppress(kube.APIError):  # diagnosis is best effort: RBAC may hide these
        for selector in (f"{LABEL_JOB}={meta['name']}",
                         f"{LABEL_CLUSTER}={st.cluster_name or meta['name']}"):
            items, _ = await client.list(kube.PODS, namespace, label_selector=selector)
            pods.update((p["metadata"]["name"], p) for p in items)
        events, _ = await client.list(kube.EVENTS, namespace, field_selector="type=Warning")
    for pod_name, pod in sorted(pods.items()):
        problem = start_problem(pod)
        if problem:
            reasons.append(f"Pod {pod_name}: {problem.reason}: {problem.message}")
    involved = {meta["name"], *pods}
    for event in events[-_EVENTS_READ:]:
        obj = event.get("involvedObject") or {}
        if obj.get("name") in involved:
            reasons.append(f"event on {obj.get('kind')} {obj['name']}: {event.get('reason')}: "
                           f"{event.get('message')}")
    return "; ".join(dict.fromkeys(reasons))
