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

from typing import Any

from kr8s.asyncio.objects import APIObject
from kr8s.objects import APIObject as SyncAPIObject

from .contract.api_resources import (
    DASKAUTOSCALERS,
    DASKCLUSTERS,
    DASKJOBS,
    DASKWORKERGROUPS,
    Resource,
)
from .contract.names import API_VERSION

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


class _DaskObject(APIObject):
    """Takes a kind's REST names from its contract ``Resource`` (``class X(_DaskObject,
    resource=DASKJOBS)``), so they are written once. Having no ``version`` itself, this base is
    never what kr8s's lookup by kind returns."""

    def __init_subclass__(cls, resource: Resource | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if resource is not None:  # the sync subclasses inherit the async class's names
            cls.version = resource.api_version
            cls.endpoint = cls.plural = resource.plural
            cls.kind = resource.kind
            cls.singular = resource.kind.lower()
            cls.namespaced = resource.namespaced


class AsyncDaskCluster(_DaskObject, resource=DASKCLUSTERS):
    """A Dask cluster: scheduler Pod and Service plus the ``<name>-default`` worker group."""

    scalable = True
    scalable_spec = "worker.replicas"


class AsyncDaskWorkerGroup(_DaskObject, resource=DASKWORKERGROUPS):
    """A group of identical workers attached to a DaskCluster."""

    scalable = True
    scalable_spec = "worker.replicas"


class AsyncDaskJob(_DaskObject, resource=DASKJOBS):
    """A batch job: a DaskCluster plus a runner Pod run to completion."""


class AsyncDaskAutoscaler(_DaskObject, resource=DASKAUTOSCALERS):
    """Keeps a worker group within ``[minimum, maximum]`` following the scheduler's wishes."""


class DaskCluster(SyncAPIObject, AsyncDaskCluster):
    __doc__ = AsyncDaskCluster.__doc__


class DaskWorkerGroup(SyncAPIObject, AsyncDaskWorkerGroup):
    __doc__ = AsyncDaskWorkerGroup.__doc__


class DaskJob(SyncAPIObject, AsyncDaskJob):
    __doc__ = AsyncDaskJob.__doc__


class DaskAutoscaler(SyncAPIObject, AsyncDaskAutoscaler):
    __doc__ = AsyncDaskAutoscaler.__doc__
