"""Unknown-field detection for ``fieldValidation=Strict|Warn``.

kubectl 1.32 leaves field validation to any server whose OpenAPI advertises the
``fieldValidation`` parameter, and then sends ``fieldValidation=Strict`` with every create,
apply and patch. A typo such as ``spec.replica`` must then fail with kube-apiserver's
``strict decoding error: unknown field "spec.replica"`` instead of being silently dropped.
Built-in kinds are checked against the Kubernetes schemas, custom resources against their
CRD's structural schema (everything that pruning would remove is unknown).
"""

from __future__ import annotations

import contextvars
from typing import Any

from . import errors
from .patchmeta import child_schema, item_schema

Schema = dict[str, Any]

#: Warnings for the current request; the HTTP layer turns them into ``Warning`` headers.
request_warnings: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "request_warnings", default=None)

_ALWAYS_KNOWN = {"apiVersion", "kind", "metadata"}


def _open(schema: Schema | None) -> bool:
    """A subtree whose content is not described: anything goes there."""
    if schema is None:
        return True
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string"):
        return True
    extra = schema.get("additionalProperties")
    if extra is True or isinstance(extra, dict):
        return False  # a map: keys are free, values are checked by the caller
    types = schema.get("type")
    return ("properties" not in schema and types in (None, "object", ["object", "null"])
            and "items" not in schema)


def unknown_builtin_fields(obj: Any, schema: Schema | None, path: str = "") -> list[str]:
    """Dotted paths of fields in ``obj`` that ``schema`` (a Kubernetes definition) lacks."""
    out: list[str] = []
    if schema is None or not isinstance(obj, (dict, list)):
        return out
    if isinstance(obj, list):
        inner = item_schema(schema)
        for i, item in enumerate(obj):
            out += unknown_builtin_fields(item, inner, f"{path}[{i}]")
        return out
    if _open(schema):
        return out
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, value in obj.items():
        here = f"{path}.{key}" if path else key
        if not path and key in _ALWAYS_KNOWN and key != "metadata":
            continue
        if key in props or isinstance(extra, dict):
            out += unknown_builtin_fields(value, child_schema(schema, key), here)
        elif key.startswith("$"):
            continue  # patch directives never reach storage
        else:
            out.append(here)
    return out


def pruned_paths(before: Any, after: Any, path: str = "") -> list[str]:
    """Paths present in ``before`` but removed by pruning in ``after`` (custom resources)."""
    out: list[str] = []
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in before.items():
            here = f"{path}.{key}" if path else key
            if key not in after:
                out.append(here)
            else:
                out += pruned_paths(value, after[key], here)
    elif isinstance(before, list) and isinstance(after, list):
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            out += pruned_paths(b, a, f"{path}[{i}]")
    return out


def enforce(mode: str, unknown: list[str]) -> None:
    """Apply a ``fieldValidation`` mode (Strict, Warn, Ignore) to the unknown fields found."""
    if not unknown or mode == "Ignore":
        return
    messages = [f'unknown field "{p}"' for p in unknown]
    if mode == "Strict":
        raise errors.APIError(400, "BadRequest", "strict decoding error: " + ", ".join(messages))
    sink = request_warnings.get()
    if sink is not None:
        sink.extend(messages)


def check_mode(mode: str | None) -> str:
    if mode in (None, ""):
        return "Warn"
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f'fieldValidation must be one of "Strict", "Warn", "Ignore", got "{mode}"')
    return mode
