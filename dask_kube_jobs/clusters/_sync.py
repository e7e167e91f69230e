"""The sync face of the cluster API: :class:`DaskClusterHandle` and the module functions.

Each method runs the async face's coroutine on the job API's private event-loop thread
(``jobs._sync.run_sync``), as kr8s's sync classes wrap its async ones: one implementation.

>>> from dask_kube_jobs.clusters import create_cluster
>>> from dask_kube_jobs import make_cluster_spec
>>> cluster = create_cluster(make_cluster_spec("demo", n_workers=1))  # doctest: +SKIP
>>> cluster.wait_ready(workers=1, timeout=300).ready_workers          # doctest: +SKIP
1
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ..jobs._sync import run_sync
from . import _async as async_face
from ._status import ClusterStatus

__all__ = ["DaskClusterHandle", "create_cluster", "get_cluster", "list_clusters"]


class DaskClusterHandle:
    """One DaskCluster; the same names and meanings as
    :class:`~dask_kube_jobs.asyncio.AsyncDaskClusterHandle`, blocking."""

    def __init__(self, handle: async_face.AsyncDaskClusterHandle) -> None:
        self._handle = handle

    @property
    def name(self) -> str:
        return self._handle.name

    @property
    def namespace(self) -> str:
        return self._handle.namespace

    @property
    def uid(self) -> str | None:
        return self._handle.uid

    @property
    def raw(self) -> dict[str, Any]:
        return self._handle.raw

    @property
    def last_status(self) -> ClusterStatus:
        return self._handle.last_status

    def __repr__(self) -> str:
        return repr(self._handle)

    def refresh(self) -> dict[str, Any]:
        return run_sync(self._handle.refresh())

    def status(self) -> ClusterStatus:
        return run_sync(self._handle.status())

    def scale(self, n: int, worker_group: str | None = None) -> None:
        run_sync(self._handle.scale(n, worker_group))

    def wait_ready(self, workers: int = 0, timeout: float | None = None) -> ClusterStatus:
        return run_sync(self._handle.wait_ready(workers, timeout))

    def delete(self, wait: bool = True, timeout: float = 120.0, *,
               propagation: str = "Foreground") -> bool:
        return run_sync(self._handle.delete(wait, timeout, propagation=propagation))


def create_cluster(spec: Any, *, namespace: str | None = None,
                   labels: Mapping[str, str] | None = None,
                   kubeconfig: str | os.PathLike[str] | None = None,
                   context: str | None = None, profile: str | None = None,
                   profile_options: Mapping[str, Any] | None = None) -> DaskClusterHandle:
    """Create a DaskCluster (see :func:`dask_kube_jobs.asyncio.create_cluster`)."""
    return DaskClusterHandle(run_sync(async_face.create_cluster(
        spec, namespace=namespace, labels=labels, kubeconfig=kubeconfig, context=context,
        profile=profile, profile_options=profile_options)))


def get_cluster(name: str, namespace: str | None = None, *,
                kubeconfig: str | os.PathLike[str] | None = None,
                context: str | None = None) -> DaskClusterHandle:
    """An existing DaskCluster by name; :class:`~dask_kube_jobs.ClusterNotFoundError` if none."""
    return DaskClusterHandle(run_sync(async_face.get_cluster(
        name, namespace, kubeconfig=kubeconfig, context=context)))


def list_clusters(namespace: str | None = None, labels: Mapping[str, str] | str | None = None,
                  *, all_namespaces: bool = False,
                  kubeconfig: str | os.PathLike[str] | None = None,
                  context: str | None = None) -> list[DaskClusterHandle]:
    """The DaskClusters of a namespace (or all), optionally selected by labels."""
    return [DaskClusterHandle(h) for h in run_sync(async_face.list_clusters(
        namespace, labels, all_namespaces=all_namespaces, kubeconfig=kubeconfig,
        context=context))]
