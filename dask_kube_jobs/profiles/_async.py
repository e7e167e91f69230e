"""The async face of profile discovery: which DaskClusterProfiles there are, and their options.

As Dask Gateway's ``cluster_options()``: before picking a profile and its options, a user can
read what the administrator offers. ``dask_kube_jobs.asyncio`` exports these coroutines; the
sync face (``profiles/__init__.py``) runs them on the job API's event-loop thread.

>>> from dask_kube_jobs.asyncio import get_profile
>>> [o.name for o in (await get_profile("standard")).options]     # doctest: +SKIP
['worker_memory', 'image', 'workers']
"""

from __future__ import annotations

import os

from .. import kube
from ..jobs._client import connect
from ..jobs._profile import read_profile, read_profiles
from ..profile_spec import ClusterProfile, ProfileOption

__all__ = ["get_profile", "list_profiles", "profile_options"]


async def list_profiles(*, kubeconfig: str | os.PathLike[str] | None = None,
                        context: str | None = None,
                        client: kube.Client | None = None) -> list[ClusterProfile]:
    """Every DaskClusterProfile (they are cluster-scoped), by name. A 403 raises
    :class:`~dask_kube_jobs.APIRequestError` whose hint names the RBAC that is missing."""
    return await read_profiles(client or await connect(kubeconfig, context=context))


async def get_profile(name: str, *, kubeconfig: str | os.PathLike[str] | None = None,
                      context: str | None = None,
                      client: kube.Client | None = None) -> ClusterProfile:
    """One DaskClusterProfile: its description, options and locked fields;
    :class:`~dask_kube_jobs.ProfileNotFound` if there is none of that name."""
    return await read_profile(client or await connect(kubeconfig, context=context), name)


async def profile_options(name: str, *, kubeconfig: str | os.PathLike[str] | None = None,
                          context: str | None = None,
                          client: kube.Client | None = None) -> list[ProfileOption]:
    """The options profile ``name`` offers (name, description, target, default, bounds or
    choices), as Gateway's ``cluster_options()`` lists them."""
    profile = await get_profile(name, kubeconfig=kubeconfig, context=context, client=client)
    return list(profile.options)
