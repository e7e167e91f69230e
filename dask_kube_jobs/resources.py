"""kr8s classes for the four Dask resources (group ``kubernetes.dask.org/v1``).

kr8s finds a class for a kind by walking ``APIObject`` subclasses, so defining these classes is
what makes ``kr8s.get("daskjobs")``, ``object_from_spec`` and ``kubectl``-style lookups by plural,
singular or short name return typed objects. Each kind is written once, async, on kr8s's public
base ``kr8s.asyncio.objects.APIObject`` (``AsyncDaskCluster``...); the sync class
(``DaskCluster``...) only puts kr8s's public sync base ``kr8s.objects.APIObject`` (the sync
wrappers, since kr8s 0.20.1) in front of it, as kr8s's own sync classes wrap its async ones:

* async code (the operator, ``dask_kube_jobs.asyncio``) uses ``AsyncDaskJob``;
* sync code (scripts, Airflow tasks, ``dask_kube_jobs``) uses ``DaskJob``.

DaskCluster and DaskWorkerGroup are ``scalable`` through ``spec.worker.replicas``, the path of
their CRDs' scale subresource, so ``await cluster.scale(5)`` patches the same field that
``kubectl scale`` and an HPA change.

>>> job = DaskJob.get("my-job", namespace="default")    # doctest: +SKIP
>>> job.raw["status"]["jobStatus"]                       # doctest: +SKIP
'Successful'
"""

from __future__ import annotations

from kr8s.asyncio.objects import APIObject
from kr8s.objects import APIObject as SyncAPIObject

from .crds import GROUP, VERSION

__all__ = [
    "API_VERSION",
    "AsyncDaskAutoscaler",
    "AsyncDaskCluster",
    "AsyncDaskJob",
    "AsyncDaskWorkerGroup",
    "DaskAutoscaler",
    "DaskCluster",
    "DaskJob",
    "DaskWorkerGroup",
]

API_VERSION = f"{GROUP}/{VERSION}"


class AsyncDaskCluster(APIObject):
    """A Dask cluster: scheduler Pod and Service plus the ``<name>-default`` worker group."""

    version = API_VERSION
    endpoint = "daskclusters"
    kind = "DaskCluster"
    plural = "daskclusters"
    singular = "daskcluster"
    namespaced = True
    scalable = True
    scalable_spec = "worker.replicas"


class AsyncDaskWorkerGroup(APIObject):
    """A group of identical workers attached to a DaskCluster."""

    version = API_VERSION
    endpoint = "daskworkergroups"
    kind = "DaskWorkerGroup"
    plural = "daskworkergroups"
    singular = "daskworkergroup"
    namespaced = True
    scalable = True
    scalable_spec = "worker.replicas"


class AsyncDaskJob(APIObject):
    """A batch job: a DaskCluster plus a runner Pod run to completion."""

    version = API_VERSION
    endpoint = "daskjobs"
    kind = "DaskJob"
    plural = "daskjobs"
    singular = "daskjob"
    namespaced = True


class AsyncDaskAutoscaler(APIObject):
    """Keeps a worker group within ``[minimum, maximum]`` following the scheduler's wishes."""

    version = API_VERSION
    endpoint = "daskautoscalers"
    kind = "DaskAutoscaler"
    plural = "daskautoscalers"
    singular = "daskautoscaler"
    namespaced = True


class DaskCluster(SyncAPIObject, AsyncDaskCluster):
    __doc__ = AsyncDaskCluster.__doc__


class DaskWorkerGroup(SyncAPIObject, AsyncDaskWorkerGroup):
    __doc__ = AsyncDaskWorkerGroup.__doc__


class DaskJob(SyncAPIObject, AsyncDaskJob):
    __doc__ = AsyncDaskJob.__doc__


class DaskAutoscaler(SyncAPIObject, AsyncDaskAutoscaler):
    __doc__ = AsyncDaskAutoscaler.__doc__
