"""KubeCluster: a ``distributed`` cluster manager over a DaskCluster resource.

Public names, re-exported from ``dask_kube_jobs``::

    from dask_kube_jobs import KubeCluster, CreateMode

    cluster = KubeCluster(name="demo", n_workers=2)       # or KubeCluster.from_name("demo")

The implementation is split by concern: ``_options`` (pure argument handling and errors),
``_api`` (the requests), ``_network`` (direct connection or port-forward), ``_progress``
(start-up display) and ``_cluster`` (the cluster manager itself).
"""

from ..errors import (
    ClusterExistsError,
    ClusterNotFoundError,
    ClusterStartupError,
    KubeClusterError,
)
from ._cluster import DEFAULT_ADAPT_MAXIMUM, KubeCluster
from ._options import CreateMode

__all__ = [
    "DEFAULT_ADAPT_MAXIMUM",
    "ClusterExistsError",
    "ClusterNotFoundError",
    "ClusterStartupError",
    "CreateMode",
    "KubeCluster",
    "KubeClusterError",
]
