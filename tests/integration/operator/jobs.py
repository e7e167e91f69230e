"""Small DaskJob manifests for the operator's tests: real Dask, kept as light as possible."""

from __future__ import annotations

import textwrap
from typing import Any

IMAGE = "ghcr.io/dask/dask:latest"


def container(name: str, args: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "args": args, **extra}


def cluster_spec(workers: int = 1) -> dict[str, Any]:
    return {
        "worker": {"replicas": workers, "spec": {"containers": [container(
            "worker", ["dask", "worker", "--name", "$(DASK_WORKER_NAME)", "--nthreads", "1",
                       "--no-dashboard"])]}},
        "scheduler": {
            "spec": {"containers": [container(
                "scheduler", ["dask", "scheduler"],
                ports=[{"name": "tcp-comm", "containerPort": 8786},
                       {"name": "http-dashboard", "containerPort": 8787}],
                readinessProbe={"tcpSocket": {"port": "tcp-comm"}, "periodSeconds": 1})]},
            "service": {"ports": [{"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"},
                                  {"name": "http-dashboard", "port": 8787,
                                   "targetPort": "http-dashboard"}]},
        },
    }


def daskjob(name: str, script: str, *, workers: int = 1, env: list[dict[str, Any]] | None = None,
            **spec: Any) -> dict[str, Any]:
    runner = container("runner", ["python", "-c", textwrap.dedent(script)])
    runner["env"] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                     *(env or [])]
    return {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob",
            "metadata": {"name": name},
            "spec": {"job": {"spec": {"containers": [runner]}},
                     "cluster": {"spec": cluster_spec(workers)}, **spec}}
