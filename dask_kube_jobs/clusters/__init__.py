"""The cluster API: create a DaskCluster, read it, scale it, wait until it is ready, delete it.

Beside the job API (``dask_kube_jobs.jobs``) and shaped like it: this package's top level is
the sync face, ``dask_kube_jobs.asyncio`` the async one, with the same names and meanings.
``KubeCluster`` and the Airflow provider's cluster tasks use it instead of raw requests.

The parts, from the bottom up:

- ``_manifest``: reading a DaskCluster manifest (dict, file or YAML text);
- ``_status``: :class:`ClusterStatus`, a cluster's status as a value, and why it is not ready
  in the words of the conditions the operator writes;
- ``_async``: :class:`~dask_kube_jobs.asyncio.AsyncDaskClusterHandle` and the module
  coroutines, the one implementation;
- ``_sync``: :class:`DaskClusterHandle` and the module functions.
"""

from __future__ import annotations

from ._manifest import load_cluster_manifest
from ._status import ClusterStatus
from ._sync import DaskClusterHandle, create_cluster, get_cluster, list_clusters

__all__ = ["ClusterStatus", "DaskClusterHandle", "create_cluster", "get_cluster",
           "list_clusters", "load_cluster_manifest"]
