"""Connecting the job API to a cluster, and translating what the cluster answers.

Every other part of the job API (reading and watching a job, its logs, the handles) and the
CLI need it: finding a kubeconfig the way kubectl does (plus the one ``dask-kube-jobs local up``
writes, so the commands work right after it), one client per event loop, the resources the job
API reads, turning API and network errors into the exceptions of ``dask_kube_jobs.errors`` by
meaning, and retrying the transient ones with a bounded back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import kr8s

from .. import kube
from ..errors import (
    APIRequestError,
    CRDsNotInstalled,
    JobAlreadyExists,
    JobNotFound,
    KubeconfigError,
    NamespaceNotFound,
)
from ..spec import SpecError

__all__ = ["NETWORK_ERRORS", "Backoff", "close_clients", "connect",
           "find_kubeconfig", "is_transient", "open_client", "retrying", "translate"]

T = TypeVar("T")

NETWORK_ERRORS = kube.NETWORK_ERRORS
RETRY_FIRST = 0.2  # seconds before the first retry of a transient error; doubled each time
RETRY_MOST = 5.0  # seconds: the longest pause between two retries
RETRY_FOR = 300.0  # seconds of transient errors in a row after which the last one is raised

#: Where ``dask-kube-jobs local up`` writes its kubeconfig (``local.kubeconfig.DEFAULT_KUBECONFIG``;
#: repeated, not imported, so the client library does not depend on the local control plane --
#: a unit test keeps the two equal).
LOCAL_KUBECONFIG = Path("~/.kube/dask-kube-jobs-local.yaml")

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, kube.Client]] = \
    weakref.WeakKeyDictionary()


def find_kubeconfig(kubeconfig: str | os.PathLike[str] | None = None) -> str | None:
    """The kubeconfig to use; None means in-cluster (the Pod's service account).

    Order: the argument, ``$KUBECONFIG``, ``~/.kube/config``, the in-cluster service account,
    then the kubeconfig ``dask-kube-jobs local up`` writes. Raises :class:`KubeconfigError`.

    >>> find_kubeconfig("/no/such/file")
    Traceback (most recent call last):
    ...
    dask_kube_jobs.errors.KubeconfigError: kubeconfig /no/such/file does not exist
    """
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeconfigError(f"kubeconfig {path} does not exist")
        return str(path.resolve())
    for entry in (os.environ.get("KUBECONFIG") or "").split(os.pathsep):
        if entry and Path(entry).expanduser().is_file():
            return str(Path(entry).expanduser().resolve())
    home = Path("~/.kube/config").expanduser()
    if home.is_file():
        return str(home)
    if os.environ.get("KUBERNETES_SERVICE_HOST") and \
            Path("/var/run/secrets/kubernetes.io/serviceaccount/token").is_file():
        return None
    if LOCAL_KUBECONFIG.expanduser().is_file():
        return str(LOCAL_KUBECONFIG.expanduser())
    raise KubeconfigError("no kubeconfig found (looked at --kubeconfig, $KUBECONFIG, "
                          "~/.kube/config and the in-cluster service account)")


async def open_client(kubeconfig: kube.Kubeconfig | None = None, *, context: str | None = None,
                      namespace: str | None = None, in_cluster: bool = False) -> kube.Client:
    """A new client of its own (the caller closes it: ``await client.close()``), for code that
    manages its clients' lives, such as a cluster manager or an Airflow task.

    ``kubeconfig`` is a path (found as :func:`find_kubeconfig` finds it) or a kubeconfig's
    content as a mapping; ``context``, ``namespace`` and ``in_cluster`` are those of
    :meth:`dask_kube_jobs.kube.Client.connect`. Raises :class:`KubeconfigError`.
    """
    if isinstance(kubeconfig, Mapping):
        source: kube.Kubeconfig | None = kubeconfig
    elif in_cluster and not kubeconfig:
        source = None
    else:
        source = find_kubeconfig(kubeconfig)
    try:
        return await kube.Client.connect(source, context=context, namespace=namespace,
                                         in_cluster=in_cluster or source is None)
    except kr8s.ServerError as exc:  # kr8s asks the server its version already
        raise translated(_from_kr8s(exc), None, "") from exc
    except NETWORK_ERRORS as exc:
        raise unreachable(exc) from exc
    except (KeyError, OSError, ValueError) as exc:
        where = "(inline)" if isinstance(source, Mapping) else source or "(in-cluster)"
        known = kube.kubeconfig_contexts(source) if source is not None else []
        if context and known and context not in known:
            error = KubeconfigError(f"kubeconfig {where} has no context {context!r} (it has: "
                                    f"{', '.join(known)})")
            error.hint = ("choose one of those (--context in the CLI, context= in Python), or "
                          "none for its current-context")
            raise error from exc
        raise KubeconfigError(f"cannot load kubeconfig {where}"
                              + (f" (context {context})" if context else "")
                              + f": {exc!r}") from exc


async def connect(kubeconfig: str | os.PathLike[str] | None = None, *,
                  context: str | None = None) -> kube.Client:
    """A client for ``kubeconfig`` (and ``context``), shared per event loop (a connection pool
    is per loop) and closed by :func:`close_clients`."""
    path = find_kubeconfig(kubeconfig)
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = f"{path or ''}#{context or ''}"
    client = per_loop.get(key)
    if client is None:
        client = per_loop.setdefault(key, await open_client(path, context=context,
                                                            in_cluster=path is None))
    return client


async def close_clients() -> None:
    """Close the clients this event loop opened (before the loop ends, e.g. in the CLI)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


@contextlib.contextmanager
def translate(name: str | None, namespace: str, *, creating: bool = False) -> Generator[None]:
    """Turn the API's and the network's errors into our exceptions, by meaning."""
    try:
        yield
    except kr8s.ServerError as exc:  # kr8s's own requests (its version check at connect)
        raise translated(_from_kr8s(exc), name, namespace, creating=creating) from exc
    except kube.APIError as exc:
        raise translated(exc, name, namespace, creating=creating) from exc
    except NETWORK_ERRORS as exc:
        raise unreachable(exc) from exc


def _from_kr8s(exc: kr8s.ServerError) -> kube.APIError:
    response = getattr(exc, "response", None)
    body: Any = None
    if response is not None:
        with contextlib.suppress(ValueError):
            body = response.json()
    error = kube.api_error(response.status_code if response is not None else 0, body, str(exc))
    origin = kube.origin_of(exc)
    if origin is not None:
        kube.errors.mark_origin(error, origin)
    return error


def translated(exc: kube.APIError, name: str | None, namespace: str, *,
               creating: bool = False) -> Exception:
    """Our exception for an API error answer, by what it means for a DaskJob."""
    details = (exc.body or {}).get("details") or {} if isinstance(exc.body, dict) else {}
    if isinstance(exc, kube.NotFound) and details.get("kind") == "namespaces":
        return NamespaceNotFound(details.get("name") or namespace, exc.code, exc.reason,
                                 status=exc.body)
    if isinstance(exc, kube.NotFound) and (creating or not details.get("name")):
        return CRDsNotInstalled(exc.code, exc.reason, "the cluster has no DaskJob resource "
                                "(the dask-kube-jobs CRDs are not installed)", status=exc.body)
    if isinstance(exc, kube.NotFound) and name:
        return JobNotFound(name, namespace)
    if isinstance(exc, kube.Conflict) and creating and name:
        return JobAlreadyExists(name, namespace)
    if isinstance(exc, kube.Invalid):
        causes = details.get("causes") or [{}]
        field = causes[0].get("field") or "manifest"
        return SpecError(field, f"rejected by the API server: {exc.message}")
    message = exc.message
    origin = kube.origin_of(exc) or kube.Origin()
    if isinstance(exc, kube.Unauthorized):
        message = (f"the Kubernetes API server{_at(origin.server)} refused the credentials of "
                   f"{_user(origin)}{_paren(origin.describe())}: {exc.message or 'Unauthorized'}")
    error = APIRequestError(exc.code, exc.reason, message, status=exc.body)
    if isinstance(exc, kube.Unauthorized):
        error.hint = ("the credentials may have expired (refresh them, e.g. your cloud CLI's "
                      "get-credentials) or be for another cluster (check --context, "
                      "--kubeconfig, $KUBECONFIG)")
    elif isinstance(exc, kube.Forbidden):
        error.hint = "check the kubeconfig's user has rights on daskjobs in this namespace"
    return error


def _server_of(exc: BaseException) -> str:
    """The URL a failed request went to (httpx keeps it on the error), or ''."""
    try:
        request = getattr(exc, "request", None)
    except RuntimeError:  # httpx raises when the error carries no request
        request = None
    if request is None:
        return ""
    url = request.url
    return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")


def _at(server: str) -> str:
    return f" at {server}" if server else ""


def _paren(text: str) -> str:
    return f" ({text})" if text else ""


def _user(origin: kube.Origin) -> str:
    return f"user {origin.user}" if origin.user else "the kubeconfig's user"


def _network_words(exc: BaseException) -> str:
    """What went wrong on the network, in words (httpx's own, such as "All connection attempts
    failed", say nothing a person can act on; the operating system's error under it does)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused (nothing listens there)"
        if isinstance(cause, socket.gaierror):
            return f"the host name does not resolve ({cause.strerror or cause})"
        if isinstance(cause, (TimeoutError, httpx.TimeoutException)):
            return "no answer in time"
        if isinstance(cause, OSError) and cause.errno is not None and cause.strerror:
            return cause.strerror[0].lower() + cause.strerror[1:]
        cause = cause.__cause__ or cause.__context__
    return f"{type(exc).__name__}: {exc}"


def unreachable(exc: BaseException) -> KubeconfigError:
    """A network failure in words that name the server, the kubeconfig and context the client
    was made from, and, for TLS, what to check."""
    origin = kube.origin_of(exc) or kube.Origin()
    where = _at(_server_of(exc) or origin.server) + _paren(origin.describe())
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        error = KubeconfigError(f"TLS with the Kubernetes API server{where} failed: "
                                f"{getattr(cause, 'verify_message', None) or cause}")
        error.hint = ("check the kubeconfig's certificate-authority(-data) for this cluster, "
                      "or that the server is the one the kubeconfig means")
        return error
    error = KubeconfigError(f"cannot reach the Kubernetes API server{where}: "
                            f"{_network_words(exc)}")
    error.hint = ("is the cluster running, and is that the kubeconfig and context you meant "
                  "($KUBECONFIG, --kubeconfig, --context)? for the local one: "
                  "`dask-kube-jobs local status`")
    return error


def is_transient(exc: BaseException) -> bool:
    """Whether an error is worth retrying: the network, a timeout, throttling or a 5xx.

    Works on the raw errors (``kube.APIError``, httpx's) and on the ones :func:`translate`
    made of them, whose cause it looks at (a :class:`KubeconfigError` is transient only when
    the network caused it, not when the kubeconfig is wrong).
    """
    cause: BaseException | None = exc
    if isinstance(exc, (APIRequestError, KubeconfigError)):
        cause = exc.__cause__
    return cause is not None and kube.is_transient(cause)


class Backoff(kube.Backoff):
    """``kube.Backoff`` with the job API's bounds: from 0.2 s up to 5 s, spread by a quarter,
    and the error raised after 5 minutes of failures in a row."""

    def __init__(self, *, first: float = RETRY_FIRST, most: float = RETRY_MOST,
                 give_up_after: float = RETRY_FOR) -> None:
        super().__init__(first=first, most=most, jitter=0.25, give_up_after=give_up_after)


async def retrying(call: Callable[[], Awaitable[T]], backoff: Backoff | None = None) -> T:
    """``await call()``, retried after transient errors (see :func:`is_transient`)."""
    return await kube.retrying(call, backoff or Backoff(), transient=is_transient)
