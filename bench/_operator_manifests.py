"""The manifests both operators are given: upstream's documented shapes, sized to fit 2 cores.

Every Pod runs as a local process of the benchmark's Python environment (the kubelet ignores
images), so the sizes are chosen by what that costs: a real ``dask scheduler`` or ``dask worker``
is ~100 MB and a second or two of CPU to start. Where the figure is about the operator's
orchestration rather than Dask (the many-jobs makespan), the scheduler is a stand-in that only
listens on the scheduler's ports, so the readiness probe both operators rely on passes at once.
Where Pods must exist but not run (memory at hundreds of clusters), they name a scheduler that
does not exist, so they stay Pending without a process and without scheduler churn.
"""

from __future__ import annotations

from typing import Any

IMAGE = "ghcr.io/dask/dask:latest"
NO_SCHEDULER = "bench-nobody"  # no scheduler serves it: Pods stay Pending, untouched

STAND_IN_SCHEDULER = (
    "import socket, time\n"
    "socks = []\n"
    "for port in (8786, 8787):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(64); socks.append(s)\n"
    "time.sleep(86400)\n"
)
TRIVIAL_RUNNER = (
    "from distributed import Client\n"
    "with Client(timeout=120) as client:\n"
    "    print('sum', client.submit(sum, [1, 2]).result())\n"
)


def _container(name: str, args: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "args": args, **extra}


def _pod_spec(containers: list[dict[str, Any]], pending: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if pending:
        spec["schedulerName"] = NO_SCHEDULER
    return spec


def cluster_spec(name: str, *, workers: int, scheduler: str = "dask",
                 pending: bool = False) -> dict[str, Any]:
    """A DaskCluster spec as upstream documents it (explicit Service selector included).

    ``scheduler`` is ``dask`` (a real ``dask scheduler``) or ``stand-in`` (ports only).
    """
    if scheduler == "dask":
        args = ["dask", "scheduler"]
    elif scheduler == "stand-in":
        args = ["python", "-c", STAND_IN_SCHEDULER]
    else:
        raise ValueError(f"scheduler must be 'dask' or 'stand-in', not {scheduler!r}")
    worker = _container("worker", ["dask", "worker", "--name", "$(DASK_WORKER_NAME)",
                                   "--nthreads", "1", "--no-dashboard"])
    sched = _container(
        "scheduler", args,
        ports=[{"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
               {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"}],
        readinessProbe={"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1})
    return {
        "worker": {"replicas": workers, "spec": _pod_spec([worker], pending)},
        "scheduler": {
            "spec": _pod_spec([sched], pending),
            "service": {
                "type": "ClusterIP",
                "selector": {"dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786,
                           "targetPort": "tcp-comm"},
                          {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
                           "targetPort": "http-dashboard"}],
            },
        },
    }


def daskcluster(name: str, **kwargs: Any) -> dict[str, Any]:
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster",
            "metadata": {"name": name}, "spec": cluster_spec(name, **kwargs)}


def daskjob(name: str, runner: str, **kwargs: Any) -> dict[str, Any]:
    """A DaskJob whose runner is ``python -c runner``; its cluster is named after the job.

    ``pending=True`` keeps the runner Pod Pending too, like the cluster's Pods.
    """
    runner_spec = _pod_spec([_container("job", ["python", "-c", runner])],
                            kwargs.get("pending", False))
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
            "metadata": {"name": name},
            "spec": {"job": {"spec": runner_spec},
                     "cluster": {"spec": cluster_spec(name, **kwargs)}}}


def unrelated_pod(name: str) -> dict[str, Any]:
    """A Pending Pod with no Dask labels, the kind an operator should not pay for."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "unrelated", "bench": "operator"}},
            "spec": _pod_spec([_container("app", ["python", "-c", "pass"],
                                          env=[{"name": "PAD", "value": "x" * 64}])],
                              pending=True)}
