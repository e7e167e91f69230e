"""Which API errors the operator may retry, and which end the object that caused them.

The promise of a DaskJob is that it ends, or says why it waits. A child object the API server
refuses for what it *is* (invalid: 400/413/422; forbidden: 403) is refused again on every
retry, so retrying it hides the cause in the operator's log while the job waits for ever.
Those errors are terminal for the object whose spec produced the child: a DaskJob fails, a
DaskCluster or DaskWorkerGroup records a ``Failed``/``ReplicaFailure`` condition, each with
the API server's own words and a Warning Event. Everything else (409 conflicts, 429
throttling, 5xx, timeouts, a broken connection, 401 while credentials rotate) stays transient
and is retried with a bounded back-off by the daemon loop.

A 403 from a namespace being deleted is not a refusal of the object: the namespace takes the
object with it (``kube.namespace_terminating``), so it is left to the loop.
"""

from __future__ import annotations

from typing import Any

from ..kube import APIError, BadRequest, Forbidden, Invalid, namespace_terminating

REASON_INVALID = "InvalidSpec"
REASON_FORBIDDEN = "Forbidden"
REASON_TOO_LARGE = "TooLarge"
#: The operator's own Pod policy (pod_policy.py) refuses the spec: terminal, like InvalidSpec,
#: but decided before any request, so nothing at all was created.
REASON_POLICY = "PolicyViolation"
_REQUEST_ENTITY_TOO_LARGE = 413  # no class of its own in kube.errors: rare, and only here


def refusal_reason(exc: BaseException) -> str | None:
    """The reason an API error can never succeed on retry, or None when it may."""
    if not isinstance(exc, APIError) or namespace_terminating(exc):
        return None
    if isinstance(exc, (Invalid, BadRequest)):
        return REASON_INVALID
    if isinstance(exc, Forbidden):
        return REASON_FORBIDDEN
    if exc.code == _REQUEST_ENTITY_TOO_LARGE:
        return REASON_TOO_LARGE
    return None


class ChildRefused(Exception):
    """The API server refused to create a child object for good (see ``refusal_reason``)."""

    def __init__(self, kind: str, name: str, reason: str, server_message: str) -> None:
        self.kind, self.name, self.reason = kind, name, reason
        self.server_message = server_message
        super().__init__(self.message)

    @property
    def message(self) -> str:
        fix = {REASON_INVALID: "fix the spec it was built from and create the object again",
               REASON_FORBIDDEN: "grant the operator's ServiceAccount that right, or change "
                                 "the spec so it is not needed",
               REASON_TOO_LARGE: "make the spec smaller"}[self.reason]
        return (f"the API server refused to create {self.kind} {self.name}: "
                f"{self.server_message} ({fix})")

    @classmethod
    def from_error(cls, exc: APIError, body: dict[str, Any]) -> ChildRefused | None:
        reason = refusal_reason(exc)
        if reason is None:
            return None
        return cls(body.get("kind") or "object", (body.get("metadata") or {}).get("name") or "?",
                   reason, exc.message)
