"""Kubernetes-shaped API errors.

Every failure the API server reports leaves as a ``Status`` body with the code and reason a real
kube-apiserver would use, because clients branch on them: kopf retries a 422 from a failed
JSON-patch ``test`` on its next cycle but loops on a 500, kr8s and kubectl re-list on a 410, and
kubectl prints ``message`` verbatim. Handlers raise these; the HTTP layer turns them into bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cause:
    """One reason an object is invalid, pointing at the offending field (``spec.replicas``)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"

    def to_dict(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


@dataclass
class APIError(Exception):
    """Base of every error the API server answers with; carries a ``Status`` body."""

    code: int
    reason: str
    message: str
    kind: str | None = None
    name: str | None = None
    group: str | None = None
    causes: list[Cause] = field(default_factory=list)
    retry_after: int | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        if self.name is not None:
            details["name"] = self.name
        if self.group is not None:
            details["group"] = self.group
        if self.kind is not None:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after is not None:
            details["retryAfterSeconds"] = self.retry_after
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if details:
            body["details"] = details
        return body


def _what(resource: str | None, group: str | None) -> str:
    if not resource:
        return "object"
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> APIError:
    return APIError(
        404, "NotFound", f'{_what(resource, group)} "{name}" not found',
        kind=resource, name=name, group=group or None,
    )


def already_exists(resource: str, name: str, group: str = "") -> APIError:
    return APIError(
        409, "AlreadyExists", f'{_what(resource, group)} "{name}" already exists',
        kind=resource, name=name, group=group or None,
    )


def conflict(resource: str, name: str, group: str = "", detail: str | None = None) -> APIError:
    detail = detail or (
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    return APIError(
        409, "Conflict",
        f'Operation cannot be fulfilled on {_what(resource, group)} "{name}": {detail}',
        kind=resource, name=name, group=group or None,
    )


def invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> APIError:
    """A 422 listing every cause, formatted the way kube-apiserver formats them."""
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    what = f"{kind}.{group}" if group else kind
    # apimachinery's aggregate error: one message alone, several in brackets.
    listed = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return APIError(
        422, "Invalid", f'{what} "{name}" is invalid: ' + listed,
        kind=kind, name=name, group=group or None, causes=causes,
    )


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def unsupported_media_type(content_type: str) -> APIError:
    return APIError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml; got "{content_type}"')


def method_not_allowed(verb: str, resource: str) -> APIError:
    return APIError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource ({verb} {resource})")


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def unauthorized() -> APIError:
    return APIError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, group: str, namespace: str | None,
              name: str | None = None, reason: str = "", subresource: str = "") -> APIError:
    """RBAC's refusal; a subresource is named in the sentence (``pods/exec``), not before it
    (``pods "p" is forbidden``), as kube-apiserver words it."""
    what = f'{resource}.{group}' if group else resource
    named = f' "{name}"' if name else ""
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    full = f"{resource}/{subresource}" if subresource else resource
    msg = f'{what}{named} is forbidden: User "{user}" cannot {verb} resource "{full}" in API group "{group}"{where}'
    if reason:
        msg += f": {reason}"
    return APIError(403, "Forbidden", msg, kind=resource, name=name, group=group or None)


def internal(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")


@dataclass
class AdmissionRefused(APIError):
    """An admission plugin's refusal that may be lifted by another component soon.

    kube-apiserver's ServiceAccount admission looks the default ServiceAccount up again for a
    second or two before refusing, because the controller manager creates it right after its
    namespace; ``attempts`` says how often the HTTP layer tries the request in all."""

    attempts: int = 1


def admission_forbidden(resource: str, name: str, reason: str, attempts: int = 1,
                        group: str = "") -> AdmissionRefused:
    """``admission.NewForbidden``: ``<resource> "<name>" is forbidden: <reason>``."""
    return AdmissionRefused(403, "Forbidden",
                            f'{_what(resource, group)} "{name}" is forbidden: {reason}',
                            kind=resource, name=name, group=group or None, attempts=attempts)
