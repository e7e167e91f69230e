"""Small builders of structural-schema nodes, shared by the CRD generator's modules."""

from __future__ import annotations

from typing import Any

from ._k8s import object_meta_subset, structural_schema

Schema = dict[str, Any]


def _int(description: str, *, minimum: int | None = None, default: int | None = None,
         fmt: str = "int32", nullable: bool = False) -> Schema:
    out: Schema = {"type": "integer", "format": fmt, "description": description}
    if minimum is not None:
        out["minimum"] = minimum
    if default is not None:
        out["default"] = default
    if nullable:
        out["nullable"] = True
    return out


def _str(description: str, *, nullable: bool = False) -> Schema:
    out: Schema = {"type": "string", "description": description}
    if nullable:
        out["nullable"] = True
    return out


def _time(description: str) -> Schema:
    return {"type": "string", "format": "date-time", "nullable": True,
            "description": description}


def _seconds(description: str) -> Schema:
    return {"type": "number", "minimum": 0, "description": description}


def _bool(description: str, *, default: bool) -> Schema:
    return {"type": "boolean", "default": default, "description": description}


def _obj(description: str, properties: dict[str, Schema],
         required: list[str] | None = None) -> Schema:
    out: Schema = {"type": "object", "description": description, "properties": properties}
    if required:
        out["required"] = required
    return out


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description}


def _meta(what: str) -> Schema:
    return _described(object_meta_subset(), f"Labels and annotations added to {what}.")


def _pod_spec(what: str) -> Schema:
    return _described(structural_schema("io.k8s.api.core.v1.PodSpec"),
                      f"The Pod spec of {what} (a core/v1 PodSpec).")


def _conditions() -> Schema:
    item = structural_schema("io.k8s.apimachinery.pkg.apis.meta.v1.Condition")
    item["properties"]["status"]["enum"] = ["True", "False", "Unknown"]
    return {"type": "array", "items": item, "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
            "description": "The latest observations of the object's state (metav1.Condition)."}


def _status(description: str, fields: dict[str, Schema]) -> Schema:
    common = {
        "observedGeneration": _int("The metadata.generation this status was computed from.",
                                   fmt="int64", minimum=0),
        "conditions": _conditions(),
    }
    return _obj(description, {**fields, **common})


def _selector() -> Schema:
    return _str("Label selector of the worker Pods, in string form (the scale subresource's "
                "labelSelectorPath, used by HorizontalPodAutoscalers).")
