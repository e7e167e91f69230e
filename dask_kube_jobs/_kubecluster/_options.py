"""Pure option handling for :class:`KubeCluster`: create modes, names, namespaces, specs, errors.

Everything here runs before any request is made, so a mistake in an argument fails at once with
a message naming the argument, not as a DaskCluster that the API server or the operator rejects
half a minute later. It is kept apart from the cluster manager so it can be unit-tested without
an event loop or an API server.

>>> parse_create_mode("connect_only")
<CreateMode.CONNECT_ONLY: 'CONNECT_ONLY'>
>>> format_name("dask-{user}", user="Jane.Doe")
'dask-jane-doe'
"""

from __future__ import annotations

import getpass
import os
import re
import uuid
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

__all__ = [
    "SA_NAMESPACE_FILE",
    "CreateMode",
    "format_name",
    "in_cluster_namespace",
    "parse_create_mode",
    "profile_choices",
]

#: Where Kubernetes mounts the Pod's ServiceAccount namespace (the in-cluster context).
SA_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

#: Upstream's default cluster name pattern (``kubernetes.name`` in dask-kubernetes' config).
DEFAULT_NAME = "dask-{user}-{uuid}"


class CreateMode(str, Enum):
    """What to do about an existing DaskCluster of the same name.

    * ``CREATE_OR_CONNECT`` (default): create it, or connect to it if it exists;
    * ``CREATE_ONLY``: create it, fail with :class:`ClusterExistsError` if it exists;
    * ``CONNECT_ONLY``: connect to it, fail with :class:`ClusterNotFoundError` if it does not.
    """

    CREATE_OR_CONNECT = "CREATE_OR_CONNECT"
    CREATE_ONLY = "CREATE_ONLY"
    CONNECT_ONLY = "CONNECT_ONLY"


def parse_create_mode(value: Any) -> CreateMode:
    """A :class:`CreateMode` from itself, its name or value, in any case.

    Upstream compares against its enum only, so ``create_mode="CONNECT_ONLY"`` silently behaves
    as CREATE_OR_CONNECT there; here a string works and a typo is an error.

    >>> parse_create_mode(None)
    <CreateMode.CREATE_OR_CONNECT: 'CREATE_OR_CONNECT'>
    """
    if value is None:
        return CreateMode.CREATE_OR_CONNECT
    if isinstance(value, Enum):  # also another library's CreateMode enum of the same names
        value = value.value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        key = key.removeprefix("CREATEMODE.")
        if key in CreateMode.__members__:
            return CreateMode[key]
    choices = ", ".join(m.value for m in CreateMode)
    raise ValueError(f"create_mode: {value!r} is not one of {choices} (any case)")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "user"


def format_name(pattern: str, *, user: str | None = None) -> str:
    """Expand ``{user}``, ``{uuid}`` and environment variables in a cluster name, as upstream
    does, then make the result a valid DNS label (lower case, ``-`` for anything else).

    >>> len(format_name("dask-{uuid}"))
    15
    """
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary uid in a container
            user = "user"
    values = {**os.environ, "user": _slug(user), "uuid": uuid.uuid4().hex[:10]}
    try:
        name = pattern.format(**values)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"name: cannot expand {pattern!r}: {exc!r}") from exc
    return _slug(name)[:57].rstrip("-")


def in_cluster_namespace() -> str | None:
    """The namespace of the Pod we run in, from its ServiceAccount mount; None outside a Pod.

    Upstream falls back to the kubeconfig's context (or ``default``) even inside a Pod, which
    creates clusters in the wrong namespace for notebooks run in-cluster.
    """
    try:
        text = SA_NAMESPACE_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return text or None


def profile_choices(profile: str | None, profile_options: Mapping[str, Any] | None,
                    keywords: Mapping[str, Any]) -> dict[str, Any] | None:
    """The profile options ``KubeCluster`` was given: ``profile_options`` with the keyword
    arguments it does not know on top. Without a profile those keywords are mistakes and
    raise the ``TypeError`` Python raises for an unknown keyword argument.

    >>> profile_choices("standard", {"workers": 2}, {"worker_memory": "8Gi"})
    {'workers': 2, 'worker_memory': '8Gi'}
    """
    if profile is None:
        if keywords:
            raise TypeError(f"KubeCluster.__init__() got an unexpected keyword argument "
                            f"{next(iter(keywords))!r} (keyword arguments it does not know are "
                            "profile options only when profile= is given)")
        if profile_options:
            raise ValueError("profile_options: are options of a profile; name it with "
                             "profile=...")
        return None
    if profile_options is not None and not isinstance(profile_options, Mapping):
        raise ValueError(f"profile_options: must be a dict, got {type(profile_options).__name__}")
    return {**(profile_options or {}), **keywords} or None
