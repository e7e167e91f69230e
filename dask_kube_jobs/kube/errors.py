"""The API server's refusals as exceptions, one class per status, built from its ``Status``.

Callers say what they expect by catching it (``except NotFound:``, ``except AlreadyExists:``)
rather than comparing numbers, as with kopf's ``APIError`` family and client-go's
``apierrors.IsNotFound``. Every class keeps what the server said: ``code``, ``reason``,
``message`` and the whole ``Status`` as ``body``. :func:`api_error` picks the class, for an
HTTP answer and for a watch's ``ERROR`` event alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import httpx
import kr8s


class APIError(Exception):
    """A request the API server answered with an error ``Status``."""

    def __init__(self, code: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.body = body


class BadRequest(APIError):
    """400: the request itself is malformed (a bad selector, a patch that does not apply)."""


class Unauthorized(APIError):
    """401: the credentials are missing or no longer valid."""


class Forbidden(APIError):
    """403: RBAC (or an admission plugin, or a terminating namespace) says no."""


class NotFound(APIError):
    """404: no such object, or no such resource type (its CRD is not installed)."""


class MethodNotAllowed(APIError):
    """405: the resource does not support the verb (a ``finalize`` on the wrong kind...)."""


class Conflict(APIError):
    """409: the object changed meanwhile (resourceVersion or uid precondition)."""


class AlreadyExists(Conflict):
    """409 with reason ``AlreadyExists``: a create found an object of that name."""


class Gone(APIError):
    """410: a watch's or list's resourceVersion is too old; list again."""


class Invalid(APIError):
    """422: the object fails validation; ``body['details']['causes']`` name the fields."""


class TooManyRequests(APIError):
    """429: throttled (API priority and fairness); worth retrying after a pause."""


class ServerError(APIError):
    """5xx: the server failed or is unavailable; worth retrying after a pause."""


_BY_CODE: dict[int, type[APIError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    409: Conflict, 410: Gone, 422: Invalid, 429: TooManyRequests,
}


def api_error(code: int, status: Any = None, fallback_message: str = "") -> APIError:
    """The exception for an error answer: ``code`` (the HTTP status, or a watch ``ERROR``
    event's ``code``) and the ``Status`` body the server sent (anything else counts as none)."""
    body = status if isinstance(status, dict) else {}
    reason = str(body.get("reason") or "")
    message = str(body["message"]) if "message" in body else fallback_message
    if code == 409 and reason == "AlreadyExists":
        cls: type[APIError] = AlreadyExists
    elif code >= 500:
        cls = ServerError
    else:
        cls = _BY_CODE.get(code, APIError)
    return cls(code, reason, message, body)


class RequestTimeout(kr8s.APITimeoutError, TimeoutError):
    """A request got no complete answer within the client's deadline: safe to retry.

    A ``kr8s.APITimeoutError`` (what a transport timeout raises) and a ``TimeoutError``, so
    callers that catch either keep working."""


#: What a caller can retry: the server refused or was too slow, or the connection broke.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    kr8s.APITimeoutError, httpx.HTTPError, OSError, TimeoutError)


def namespace_terminating(exc: BaseException) -> bool:
    """A create refused because its namespace is being deleted: nothing more to do there."""
    if not isinstance(exc, Forbidden):
        return False
    causes = ((exc.body or {}).get("details") or {}).get("causes") or [] \
        if isinstance(exc.body, dict) else []
    return "because it is being terminated" in exc.message or \
        any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


@dataclass(frozen=True)
class Origin:
    """Where a request went and as whom: what a person needs to see to fix a refused or
    unreachable connection (the kubeconfig and context they did not mean, an expired user).

    ``kubeconfig`` is the file's path, ``"(inline)"`` for a kubeconfig given as a mapping, or
    ``"(in-cluster)"``; empty strings are unknown."""

    server: str = ""
    kubeconfig: str = ""
    context: str = ""
    user: str = ""

    def describe(self, *, user: bool = False) -> str:
        """``kubeconfig ~/.kube/config, context prod`` (and ``, user alice`` with ``user``)."""
        parts = [f"kubeconfig {self.kubeconfig}" if self.kubeconfig else "",
                 f"context {self.context}" if self.context else "",
                 f"user {self.user}" if user and self.user else ""]
        return ", ".join(p for p in parts if p)


def mark_origin(exc: BaseException, origin: Origin) -> None:
    """Record on ``exc`` where the failed request went, unless a closer layer already did."""
    if getattr(exc, "kube_origin", None) is None:
        with contextlib.suppress(AttributeError):  # a few C exception types take none
            exc.kube_origin = origin  # type: ignore[attr-defined]


def origin_of(exc: BaseException) -> Origin | None:
    """The :class:`Origin` :meth:`Client <dask_kube_jobs.kube.Client>` recorded on ``exc`` or on
    one of its causes; None for errors that did not come from a request."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        origin = getattr(cause, "kube_origin", None)
        if isinstance(origin, Origin):
            return origin
        cause = cause.__cause__ or cause.__context__
    return None

