"""ObjectMeta validation: names, labels, annotations, owner references and finalizers.

Every create and update goes through ``validate_object_meta``, for built-in kinds and custom
resources alike, with the name rule of its kind (DNS-1123 subdomain by default; DNS labels for
Namespaces, DNS-1035 labels for Services, path segments for RBAC objects: each kind's
``Strategy.name_check`` in ``strategies``).
The regular expressions, length limits and messages are apimachinery's
(``k8s.io/apimachinery/pkg/util/validation``), so ``kubectl apply`` prints what it would print
against a real cluster. Every function is pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .errors import Cause
from .fielderrors import forbidden, invalid, required, too_long

NameCheck = Callable[[str, bool], list[str]]


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + r"(\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
_QUALIFIED_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                  "end with an alphanumeric character")
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    # Kubernetes glues examples as "'a', " + " or " + "'b', " (hence the double space).
    return msg + " (e.g. " + " or ".join(f"'{e}', " for e in examples) + (
        f"regex used for validation is '{fmt}')")


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _check_fmt(value: str, fmt: str, limit: int, msg: str, *examples: str) -> list[str]:
    errs = [_max_len(limit)] if len(value) > limit else []
    if not re.fullmatch(fmt, value):
        errs.append(regex_error(msg, fmt, *examples))
    return errs


def is_dns1123_label(value: str) -> list[str]:
    return _check_fmt(value, DNS1123_LABEL_FMT, 63, "a lowercase RFC 1123 label must consist of "
                      "lower case alphanumeric characters or '-', and must start and end with an "
                      "alphanumeric character", "my-name", "123-abc")


def is_dns1123_subdomain(value: str) -> list[str]:
    return _check_fmt(value, DNS1123_SUBDOMAIN_FMT, 253, "a lowercase RFC 1123 subdomain must "
                      "consist of lower case alphanumeric characters, '-' or '.', and must start "
                      "and end with an alphanumeric character", "example.com")


def is_dns1035_label(value: str) -> list[str]:
    return _check_fmt(value, DNS1035_LABEL_FMT, 63, "a DNS-1035 label must consist of lower case "
                      "alphanumeric characters or '-', start with an alphabetic character, and "
                      "end with an alphanumeric character", "my-name", "abc-123")


def is_qualified_name(value: str) -> list[str]:
    """Label keys, annotation keys, finalizers: ``[prefix/]name``."""
    parts = value.split("/")
    errs: list[str] = []
    if len(parts) > 2:
        return ["a qualified name " + regex_error(_QUALIFIED_MSG, QUALIFIED_NAME_FMT, "MyName",
                "my.name", "123-abc") + " with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        if not parts[0]:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(parts[0])]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len(63))
    if not re.fullmatch(QUALIFIED_NAME_FMT, name):
        errs.append("name part " + regex_error(_QUALIFIED_MSG, QUALIFIED_NAME_FMT, "MyName",
                                                "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    return _check_fmt(value, LABEL_VALUE_FMT, 63, "a valid label must be an empty string or "
                      "consist of alphanumeric characters, '-', '_' or '.', and must start and "
                      "end with an alphanumeric character", "MyValue", "my_value", "12345")


def _mask_trailing_dash(name: str) -> str:
    # generateName prefixes may end in '-'; Kubernetes swaps the last two characters for "a".
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def name_is_dns_subdomain(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_subdomain(_mask_trailing_dash(name) if prefix else name)


def name_is_dns_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1123_label(_mask_trailing_dash(name) if prefix else name)


def name_is_dns1035_label(name: str, prefix: bool = False) -> list[str]:
    return is_dns1035_label(_mask_trailing_dash(name) if prefix else name)


def path_segment_name(name: str, prefix: bool = False) -> list[str]:
    """Names that only have to be usable in a URL path (embedded resources)."""
    if not prefix and name in (".", ".."):
        return [f"may not be '{name}'"]
    return [f"may not contain '{c}'" for c in "/%" if c in name]


def validate_metadata_name(name: str, field: str = "metadata.name",
                           check: NameCheck = name_is_dns_subdomain) -> list[Cause]:
    if not name:
        return [required(field, "name or generateName is required")]
    return [invalid(field, name, m) for m in check(name, False)]


def validate_dns_label(name: str, field: str = "metadata.name") -> list[Cause]:
    """RFC 1123 label: namespaces (and most names that become DNS labels)."""
    return [invalid(field, name, m) for m in is_dns1123_label(name)]


def validate_dns1035_label(name: str, field: str = "metadata.name") -> list[Cause]:
    """RFC 1035 label (starts with a letter): Service names."""
    return [invalid(field, name, m) for m in is_dns1035_label(name)]


def validate_label_key(key: str, field: str = "metadata.labels") -> list[Cause]:
    return [invalid(field, key, m) for m in is_qualified_name(key)]


def validate_label_value(value: Any, field: str = "metadata.labels") -> list[Cause]:
    if not isinstance(value, str):
        return [invalid(field, value, "must be a string")]
    return [invalid(field, value, m) for m in is_valid_label_value(value)]


def validate_labels(labels: Any, field: str = "metadata.labels") -> list[Cause]:
    if labels is None:
        return []
    if not isinstance(labels, dict):
        return [invalid(field, labels, "must be a map of string keys to string values")]
    errs: list[Cause] = []
    for k, v in labels.items():
        errs += validate_label_key(k, field) + validate_label_value(v, field)
    return errs


def validate_annotations(annotations: Any, field: str = "metadata.annotations") -> list[Cause]:
    if annotations is None:
        return []
    if not isinstance(annotations, dict):
        return [invalid(field, annotations, "must be a map of string keys to string values")]
    errs = [invalid(field, k, m) for k in annotations for m in is_qualified_name(k.lower())]
    errs += [invalid(field, v, "must be a string") for v in annotations.values()
             if not isinstance(v, str)]
    size = sum(len(k.encode()) + len(str(v).encode()) for k, v in annotations.items())
    if size > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
    return errs


def _validate_owner_references(refs: Any, field: str) -> list[Cause]:
    errs: list[Cause] = []
    controller = ""
    for ref in refs or []:
        api_version = ref.get("apiVersion") or ""
        checks = (("apiVersion", api_version.rpartition("/")[2], "version must not be empty"),
                  ("kind", ref.get("kind"), "kind must not be empty"),
                  ("name", ref.get("name"), "name must not be empty"),
                  ("uid", ref.get("uid"), "uid must not be empty"))
        for key, value, msg in checks:
            if not value:
                errs.append(invalid(f"{field}.{key}", ref.get(key) or "", msg))
        if ref.get("controller"):
            current = f"{ref.get('kind')}/{ref.get('name')}"
            if controller:
                errs.append(invalid(field, refs, "Only one reference can have Controller set to "
                                    f'true. Found "true" in references for {controller} and '
                                    f"{current}"))
            else:
                controller = current
    return errs


def _validate_finalizers(finalizers: Any, field: str) -> list[Cause]:
    finalizers = finalizers or []
    errs = [invalid(field, f, m) for f in finalizers for m in is_qualified_name(f)]
    if "orphan" in finalizers and "foregroundDeletion" in finalizers:
        errs.append(invalid(field, finalizers,
                            "finalizer orphan and foregroundDeletion cannot be both set"))
    return errs


#: ObjectMeta fields that Go's ``omitempty`` drops when they hold their zero value. Every field
#: of ObjectMeta is ``omitempty``; ``deletionGracePeriodSeconds`` is a pointer, so 0 is kept.
_OMIT_EMPTY = ("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
               "generation", "labels", "annotations", "ownerReferences", "finalizers",
               "managedFields")


def drop_empty_fields(meta: dict[str, Any]) -> None:
    """Remove, in place, the metadata fields a real server would not store.

    kube-apiserver decodes a request into Go structs and encodes them again with ``omitempty``,
    so ``labels: {}``, ``ownerReferences: []``, ``finalizers: []`` (what ``kubectl delete
    --cascade=orphan`` and many patches leave behind) and explicit nulls never reach etcd nor
    come back to clients; clients test for the key's absence."""
    for key in _OMIT_EMPTY:
        if key in meta and meta[key] in (None, "", 0, {}, []):
            del meta[key]
    for key in ("deletionGracePeriodSeconds", "deletionTimestamp", "creationTimestamp"):
        if key in meta and meta[key] is None:
            del meta[key]


def validate_object_meta(meta: dict[str, Any] | None, *, namespaced: bool,
                         name_check: NameCheck = name_is_dns_subdomain,
                         field: str = "metadata") -> list[Cause]:
    """ObjectMeta checks of every create/update. Generate the name from generateName first:
    Kubernetes validates after naming, so an empty name is reported as required."""
    meta = meta or {}
    errs: list[Cause] = []
    generate = meta.get("generateName") or ""
    if generate:
        errs += [invalid(f"{field}.generateName", generate, m) for m in name_check(generate, True)]
    name = meta.get("name") or ""
    if not name:
        errs.append(required(f"{field}.name", "name or generateName is required"))
    else:
        errs += [invalid(f"{field}.name", name, m) for m in name_check(name, False)]
    namespace = meta.get("namespace") or ""
    if namespaced and not namespace:
        errs.append(required(f"{field}.namespace"))
    elif namespaced:
        errs += [invalid(f"{field}.namespace", namespace, m) for m in is_dns1123_label(namespace)]
    elif namespace:
        errs.append(forbidden(f"{field}.namespace", "not allowed on this type"))
    generation = meta.get("generation")
    if isinstance(generation, int) and generation < 0:
        errs.append(invalid(f"{field}.generation", generation,
                            "must be greater than or equal to 0"))
    errs += validate_labels(meta.get("labels"), f"{field}.labels")
    errs += validate_annotations(meta.get("annotations"), f"{field}.annotations")
    errs += _validate_owner_references(meta.get("ownerReferences"), f"{field}.ownerReferences")
    errs += _validate_finalizers(meta.get("finalizers"), f"{field}.finalizers")
    return errs
