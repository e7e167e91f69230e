"""Cluster profiles: the DaskClusterProfiles an administrator offers, and their options.

This package's top level is the sync face (also reachable from ``dask_kube_jobs``);
``dask_kube_jobs.asyncio`` has the same functions as coroutines. A profile is picked with
``profile=`` (and its options with ``profile_options=``, or keyword arguments for
``KubeCluster``) in :func:`~dask_kube_jobs.make_cluster_spec`,
:func:`~dask_kube_jobs.make_job_spec`, :func:`~dask_kube_jobs.submit` and
:class:`~dask_kube_jobs.KubeCluster`.

>>> from dask_kube_jobs import list_profiles, profile_options
>>> [p.name for p in list_profiles()]                                # doctest: +SKIP
['gpu', 'standard']
>>> [(o.name, o.allowed()) for o in profile_options("standard")]     # doctest: +SKIP
[('worker_memory', '2Gi to 16Gi'), ('workers', '1 to 20')]
"""

from __future__ import annotations

import os

from ..jobs._sync import run_sync
from ..profile_spec import ClusterProfile, ProfileOption
from . import _async as async_face

__all__ = ["ClusterProfile", "ProfileOption", "get_profile", "list_profiles", "profile_options"]


def list_profiles(*, kubeconfig: str | os.PathLike[str] | None = None,
                  context: str | None = None) -> list[ClusterProfile]:
    """Every DaskClusterProfile (see :func:`dask_kube_jobs.asyncio.list_profiles`)."""
    return run_sync(async_face.list_profiles(kubeconfig=kubeconfig, context=context))


def get_profile(name: str, *, kubeconfig: str | os.PathLike[str] | None = None,
                context: str | None = None) -> ClusterProfile:
    """One DaskClusterProfile; :class:`~dask_kube_jobs.ProfileNotFound` if none."""
    return run_sync(async_face.get_profile(name, kubeconfig=kubeconfig, context=context))


def profile_options(name: str, *, kubeconfig: str | os.PathLike[str] | None = None,
                    context: str | None = None) -> list[ProfileOption]:
    """The options profile ``name`` offers, with their defaults and bounds or choices."""
    return run_sync(async_face.profile_options(name, kubeconfig=kubeconfig, context=context))
