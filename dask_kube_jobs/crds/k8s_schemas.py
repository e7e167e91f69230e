"""The Kubernetes object schemas: what the local API server obeys and what the CRDs embed.

We do not hand-write Pod or Service schemas: ``kubernetes-validate`` ships the definitions of each
Kubernetes release (the OpenAPI ``definitions`` turned into JSON-schema ``$defs``), including the
``x-kubernetes-patch-merge-key`` / ``x-kubernetes-list-map-keys`` extensions that strategic-merge
patch needs and the ``x-kubernetes-group-version-kind`` that kubectl's OpenAPI client looks for.
The release matches the version ``/version`` reports, so kubectl sees one consistent server.

It lives beside the CRDs, below the local control plane, because both read it: the CRD generator
derives the embedded PodSpec/ServiceSpec from it (``_k8s``) and the API server validates, patches
and publishes built-in kinds with it. Reading the definitions needs ``kubernetes-validate`` (the
``local`` extra); importing this module does not.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

KUBERNETES_VERSION = "1.32.0"

Schema = dict[str, Any]


@functools.cache
def definitions() -> dict[str, Schema]:
    """All definitions of the release, keyed by their OpenAPI name (``io.k8s.api.core.v1.Pod``)."""
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    path = root.joinpath(f"v{KUBERNETES_VERSION}-local", "_definitions.json")
    with path.open("r", encoding="utf-8") as fh:
        doc = json.load(fh)
    return doc["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
            # Several definitions can claim one GVK (e.g. DeleteOptions); the first, shortest wins.
            if key not in index or len(name) < len(index[key]):
                index[key] = name
    return index


def definition_name(group: str, version: str, kind: str) -> str | None:
    """The definition name for a kind, or None when the release does not define it."""
    return _gvk_index().get((group, version, kind))


def schema_for(group: str, version: str, kind: str) -> Schema | None:
    name = definition_name(group, version, kind)
    return definitions()[name] if name else None


def resolve(schema: Schema | None) -> Schema | None:
    """Follow ``$ref`` (``#/$defs/<name>``) until a concrete schema is reached."""
    seen = 0
    while schema is not None and "$ref" in schema:
        ref = schema["$ref"]
        name = ref.rsplit("/", 1)[-1]
        schema = definitions().get(name)
        seen += 1
        if seen > 32:
            raise ValueError(f"reference loop at {ref}")
    return schema


def property_schema(schema: Schema | None, key: str) -> Schema | None:
    """The (resolved) schema of ``key`` inside an object schema, or None if unknown."""
    schema = resolve(schema)
    if not schema:
        return None
    prop = schema.get("properties", {}).get(key)
    if prop is None:
        extra = schema.get("additionalProperties")
        prop = extra if isinstance(extra, dict) else None
    return resolve(prop)


def items_schema(schema: Schema | None) -> Schema | None:
    schema = resolve(schema)
    if not schema:
        return None
    items = schema.get("items")
    return resolve(items) if isinstance(items, dict) else None
