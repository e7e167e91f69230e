"""Reading DaskClusterProfiles, and checking a manifest's profile options against one early.

The job API, the cluster API, ``KubeCluster``, the CLI and the Airflow provider share it: the
reads (:func:`read_profile`, :func:`read_profiles`) turn the API's answers into errors that say
what to do (no such profile, or which RBAC the account lacks), and :func:`check_early` is the
client-side check before a DaskCluster or DaskJob is created.

The operator is the authority on profiles. The early check only spares a round trip through
the operator for a mistake the client can see (an unknown profile or option, a value out of
range): when the profile cannot be read (no rights on profiles, an operator too old to know
them, the network), it is skipped, never a reason to refuse.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .. import kube
from ..contract.api_resources import DASKCLUSTERPROFILES
from ..errors import APIRequestError, CRDsNotInstalled, ProfileNotFound
from ..profile_spec import ClusterProfile

__all__ = ["RBAC_HINT", "check_early", "read_profile", "read_profiles"]

log = logging.getLogger(__name__)

#: What a user who may not read profiles lacks: they are cluster-scoped, so a namespaced
#: Role cannot grant it.
RBAC_HINT = ("reading profiles needs get and list on daskclusterprofiles "
             "(kubernetes.dask.org), cluster-scoped: a ClusterRole bound with a "
             "ClusterRoleBinding; ask your administrator for it (the Helm chart grants it to "
             "every authenticated user unless userRoles.readProfiles is false)")


def _explained(exc: kube.APIError, what: str) -> APIRequestError:
    if isinstance(exc, kube.NotFound):
        return CRDsNotInstalled(exc.code, exc.reason, f"{what}: the cluster has no "
                                "DaskClusterProfile resource (the operator's CRDs are older than "
                                "profiles, or not installed)", status=exc.body)
    error = APIRequestError(exc.code, exc.reason, f"{what}: {exc.message}", status=exc.body)
    if isinstance(exc, kube.Forbidden):
        error.hint = RBAC_HINT
    return error


async def read_profiles(client: kube.Client) -> list[ClusterProfile]:
    """Every DaskClusterProfile, by name."""
    try:
        items, _ = await client.list(DASKCLUSTERPROFILES)
    except kube.APIError as exc:
        raise _explained(exc, "cannot list DaskClusterProfiles") from exc
    return sorted((ClusterProfile.from_object(o) for o in items), key=lambda p: p.name)


async def read_profile(client: kube.Client, name: str) -> ClusterProfile:
    """One DaskClusterProfile; :class:`ProfileNotFound` (naming those there are, when they
    can be listed) if there is none of that name."""
    try:
        obj = await client.request("GET", DASKCLUSTERPROFILES.path(None, name))
    except kube.NotFound as exc:
        details = (exc.body or {}).get("details") if isinstance(exc.body, dict) else None
        if not (isinstance(details, dict) and details.get("name") == name):
            raise _explained(exc, f"cannot read DaskClusterProfile {name}") from exc
        try:
            available: list[str] | None = [p.name for p in await read_profiles(client)]
        except APIRequestError:
            available = None
        raise ProfileNotFound(name, available) from exc
    except kube.APIError as exc:
        raise _explained(exc, f"cannot read DaskClusterProfile {name}") from exc
    return ClusterProfile.from_object(obj)


async def check_early(client: kube.Client, spec: Mapping[str, Any]) -> ClusterProfile | None:
    """Check the options of a DaskCluster's or DaskJob's ``spec.profile`` against the profile,
    if it names one and the profile can be read; the profile read, or None.

    Raises :class:`ProfileNotFound` for a profile that does not exist and
    :class:`~dask_kube_jobs.errors.ProfileOptionError` for an option it does not offer or
    accept. Anything that keeps the profile from being read is logged and let through: the
    operator checks again, with the rights it has.
    """
    block = spec.get("profile")
    if not isinstance(block, Mapping) or not isinstance(block.get("name"), str):
        return None
    try:
        profile = await read_profile(client, block["name"])
    except ProfileNotFound:
        raise
    except (APIRequestError, kube.APIError, TimeoutError, *kube.NETWORK_ERRORS) as exc:
        log.debug("profile %s not checked before creating: %s", block["name"], exc)
        return None
    options = block.get("options")
    profile.check_options(options if isinstance(options, Mapping) else None)
    return profile
