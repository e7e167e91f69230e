"""OpenAPI documents (v3 per group-version, and a Swagger 2.0 whole), built from the registry.

kubectl reads them for three things: ``kubectl explain`` walks the v3 schemas; client-side
``kubectl apply`` of a built-in kind reads ``x-kubernetes-patch-merge-key`` and friends from them
to build a strategic-merge patch; and before any ``apply``/``create`` kubectl looks in the v3
``paths`` for a PATCH operation of the object's kind (``x-kubernetes-group-version-kind``) that
takes a ``fieldValidation`` query parameter. When it finds one it leaves validation to the
server (``?fieldValidation=Strict``); when the operation is missing it errors out, and when the
parameter is missing it falls back to client-side validation against ``/openapi/v2``.

Built-in schemas come from :mod:`k8s_schemas` (JSON-schema 2020-12 ``$defs``), converted into
OpenAPI dialects the way kube-apiserver publishes them: references point into
``components/schemas`` (v3) or ``definitions`` (v2), nullable type lists collapse to one type,
a reference with siblings becomes ``allOf: [{$ref}]`` in v3, and the ``enum`` pins on
``apiVersion``/``kind`` that kubernetes-validate adds are dropped. Custom resources publish their
CRD's ``openAPIV3Schema`` plus the standard ``apiVersion``/``kind``/``metadata`` properties, under
the name kube-apiserver gives them (reversed group, e.g. ``org.dask.kubernetes.v1.DaskJob``).

Documents are pure functions of the registry; :class:`OpenAPICache` memoizes them (and their
serialized bytes, since the core document is several megabytes) until the registry changes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from ...crds import k8s_schemas
from ...crds.k8s_schemas import KUBERNETES_VERSION
from .discovery import subresource_kind
from .registry import Registry, ResourceType

Schema = dict[str, Any]

_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = _META + "ObjectMeta"
LIST_META = _META + "ListMeta"
#: Definitions every group-version document references from its operations.
_COMMON = (_META + "DeleteOptions", _META + "Status", _META + "Patch", _META + "WatchEvent")

#: Whether PATCH operations advertise ``fieldValidation``. True as on kube-apiserver 1.32:
#: kubectl then skips client-side validation and sends ``fieldValidation=Strict``.
ADVERTISE_FIELD_VALIDATION = True

_PATCH_TYPES_CR = ("application/apply-patch+yaml", "application/json-patch+json",
                   "application/merge-patch+json")
_PATCH_TYPES_BUILTIN = _PATCH_TYPES_CR + ("application/strategic-merge-patch+json",)
_PRODUCES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")


# -- schema conversion ---------------------------------------------------------------------


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def convert_schema(node: Any, *, v3: bool = True) -> Any:
    """One ``$defs``-style schema in the OpenAPI dialect (3.0 if ``v3``, else Swagger 2.0)."""
    if isinstance(node, list):
        return [convert_schema(x, v3=v3) for x in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key == "$ref":
            continue
        if key == "type" and isinstance(value, list):
            types = [t for t in value if t != "null"]
            if len(types) == 1:
                out["type"] = types[0]
            continue
        if key == "oneOf" and _is_scalar_union(value):
            types = {t for alt in value for t in _types(alt)}
            out["type"] = "string"
            if "integer" in types:
                out["format"] = "int-or-string"
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _strip_pins(name, convert_schema(prop, v3=v3))
                        for name, prop in value.items()}
            continue
        if not v3 and key == "nullable":
            continue
        out[key] = convert_schema(value, v3=v3)
    if "$ref" in node:
        target = ("#/components/schemas/" if v3 else "#/definitions/") + _ref_name(node["$ref"])
        if v3 and out:
            return {"allOf": [{"$ref": target}], **out}
        return {"$ref": target, **out}
    return out


def _types(schema: Any) -> list[str]:
    t = schema.get("type") if isinstance(schema, dict) else None
    return [t] if isinstance(t, str) else list(t or [])


def _is_scalar_union(alternatives: Any) -> bool:
    """IntOrString and Quantity: a oneOf of plain scalar types, published as a string."""
    return isinstance(alternatives, list) and all(
        isinstance(a, dict) and set(a) == {"type"}
        and set(_types(a)) <= {"string", "integer", "number", "null"}
        for a in alternatives)


def _strip_pins(name: str, prop: Any) -> Any:
    if name in ("apiVersion", "kind") and isinstance(prop, dict) and "enum" in prop:
        prop = {k: v for k, v in prop.items() if k != "enum"}
    return prop


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.add(_ref_name(ref))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _closure(roots: dict[str, Schema]) -> dict[str, Schema]:
    """``roots`` plus every built-in definition they reference, transitively."""
    defs = k8s_schemas.definitions()
    out = dict(roots)
    pending: set[str] = set()
    for schema in roots.values():
        _refs(schema, pending)
    while pending:
        name = pending.pop()
        if name in out or name not in defs:
            continue
        out[name] = defs[name]
        _refs(defs[name], pending)
    return out


# -- custom resources ------------------------------------------------------------------------


def crd_schema_name(group: str, version: str, kind: str) -> str:
    """kube-apiserver's definition name for a custom kind: the group reversed, then v and kind."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _gvk_list(group: str, version: str, kind: str) -> list[dict[str, str]]:
    return [{"group": group, "kind": kind, "version": version}]


_API_VERSION_DOC = ("APIVersion defines the versioned schema of this representation of an "
                    "object. Servers should convert recognized schemas to the latest internal "
                    "value, and may reject unrecognized values.")
_KIND_DOC = ("Kind is a string value representing the REST resource this object represents. "
             "Servers may infer this from the endpoint the client submits requests to.")


def _custom_schemas(rtype: ResourceType, version: str) -> dict[str, Schema]:
    """The kind and list definitions of a custom resource version, in ``$defs`` style."""
    info = rtype.version(version)
    body: Schema = copy.deepcopy(info.schema) if info and info.schema else {}
    if not body:
        body = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    props = body.setdefault("properties", {})
    props["apiVersion"] = {"type": "string", "description": _API_VERSION_DOC}
    props["kind"] = {"type": "string", "description": _KIND_DOC}
    props["metadata"] = {"$ref": "#/$defs/" + OBJECT_META,
                         "description": "Standard object's metadata."}
    body.setdefault("type", "object")
    body["x-kubernetes-group-version-kind"] = _gvk_list(rtype.group, version, rtype.kind)
    name = crd_schema_name(rtype.group, version, rtype.kind)
    list_kind = rtype.list_kind
    list_schema: Schema = {
        "description": f"{list_kind} is a list of {rtype.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _API_VERSION_DOC},
            "items": {"type": "array", "description": f"List of {rtype.plural}.",
                      "items": {"$ref": "#/$defs/" + name}},
            "kind": {"type": "string", "description": _KIND_DOC},
            "metadata": {"$ref": "#/$defs/" + LIST_META,
                         "description": "Standard list metadata."},
        },
        "x-kubernetes-group-version-kind": _gvk_list(rtype.group, version, list_kind),
    }
    return {name: body, crd_schema_name(rtype.group, version, list_kind): list_schema}


# -- per group-version assembly --------------------------------------------------------------


def _kind_names(rtype: ResourceType, version: str) -> tuple[str | None, str | None]:
    """Definition names of the kind and its list, or None where the release lacks them."""
    if rtype.builtin:
        return (k8s_schemas.definition_name(rtype.group, version, rtype.kind),
                k8s_schemas.definition_name(rtype.group, version, rtype.list_kind))
    return (crd_schema_name(rtype.group, version, rtype.kind),
            crd_schema_name(rtype.group, version, rtype.list_kind))


def _definitions(registry: Registry, group: str, version: str) -> dict[str, Schema]:
    defs = k8s_schemas.definitions()
    roots: dict[str, Schema] = {name: defs[name] for name in _COMMON}
    for rtype in registry.in_group_version(group, version):
        if rtype.builtin:
            roots.update((n, defs[n]) for n in _kind_names(rtype, version) if n)
        else:
            roots.update(_custom_schemas(rtype, version))
        for sub in rtype.subresources(version):
            sub_name = k8s_schemas.definition_name(*subresource_kind(rtype, sub, version))
            if sub_name:
                roots[sub_name] = defs[sub_name]
    return dict(sorted(_closure(roots).items()))


def _camel(group: str, version: str) -> str:
    words = group.replace("k8s.io", "").replace("-", ".").split(".") if group else ["core"]
    return "".join(w[:1].upper() + w[1:] for w in words if w) + version[:1].upper() + version[1:]


class _PathBuilder:
    """Collects the REST paths of one group-version in one OpenAPI dialect."""

    def __init__(self, group: str, version: str, *, v3: bool) -> None:
        self.group, self.version, self.v3 = group, version, v3
        self.prefix = f"/apis/{group}/{version}" if group else f"/api/{version}"
        self.tag = _camel(group, version).lower()
        self.paths: dict[str, dict[str, Any]] = {}

    def ref(self, name: str) -> Schema:
        return {"$ref": ("#/components/schemas/" if self.v3 else "#/definitions/") + name}

    def param(self, name: str, where: str, type_: str = "string", desc: str = "") -> Schema:
        p: Schema = {"name": name, "in": where, "description": desc or name}
        if where == "path":
            p["required"] = True
        if self.v3:
            p["schema"] = {"type": type_, "uniqueItems": True}
        else:
            p.update({"type": type_, "uniqueItems": True})
        return p

    def write_params(self, patch: bool = False) -> list[Schema]:
        params = [self.param("dryRun", "query", desc="When present, do not persist changes."),
                  self.param("fieldManager", "query", desc="Name of the actor making changes.")]
        if ADVERTISE_FIELD_VALIDATION:
            params.append(self.param(
                "fieldValidation", "query",
                desc="Ignore, Warn or Strict: how to treat unknown or duplicate fields."))
        if patch:
            params.append(self.param("force", "query", "boolean",
                                     "Force apply requests, taking conflicting fields."))
        return params

    def list_params(self) -> list[Schema]:
        return [self.param(n, "query", t) for n, t in (
            ("allowWatchBookmarks", "boolean"), ("continue", "string"),
            ("fieldSelector", "string"), ("labelSelector", "string"), ("limit", "integer"),
            ("resourceVersion", "string"), ("resourceVersionMatch", "string"),
            ("sendInitialEvents", "boolean"), ("timeoutSeconds", "integer"),
            ("watch", "boolean"))]

    def delete_params(self) -> list[Schema]:
        return [self.param("dryRun", "query"),
                self.param("gracePeriodSeconds", "query", "integer"),
                self.param("propagationPolicy", "query")]

    def operation(self, op_id: str, action: str, gvk: tuple[str, str, str], response: str,
                  *, params: list[Schema] | None = None, body: str | None = None,
                  patch_types: tuple[str, ...] = (), created: bool = False) -> Schema:
        group, version, kind = gvk
        op: Schema = {"tags": [self.tag], "description": f"{action} {kind}", "operationId": op_id}
        if params or (body and not self.v3):
            op["parameters"] = list(params or ())
        ok: Schema = {"description": "OK"}
        if self.v3:
            if body:
                content = {t: {"schema": self.ref(body)} for t in (patch_types or ("*/*",))}
                op["requestBody"] = {"content": content, "required": True}
            ok["content"] = {t: {"schema": self.ref(response)} for t in _PRODUCES}
        else:
            if body:
                op["parameters"].insert(0, {"name": "body", "in": "body", "required": True,
                                            "schema": self.ref(body)})
            op["consumes"] = list(patch_types or ("*/*",))
            op["produces"] = list(_PRODUCES)
            ok["schema"] = self.ref(response)
        op["responses"] = {"200": ok, "401": {"description": "Unauthorized"}}
        if created:
            op["responses"]["201"] = dict(ok, description="Created")
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = {"group": group, "kind": kind,
                                                 "version": version}
        return op

    def add(self, path: str, method: str, op: Schema, params: list[Schema]) -> None:
        item = self.paths.setdefault(path, {})
        item[method] = op
        item["parameters"] = params

    def resource(self, rtype: ResourceType, kind_def: str, list_def: str | None) -> None:
        v = self.version
        gvk = (rtype.group, v, rtype.kind)
        verbs = set(rtype.verbs)
        patch_types = _PATCH_TYPES_BUILTIN if rtype.builtin else _PATCH_TYPES_CR
        scoped = "Namespaced" if rtype.namespaced else ""
        name = f"{_camel(rtype.group, v)}{scoped}{rtype.kind}"
        ns_part = "/namespaces/{namespace}" if rtype.namespaced else ""
        collection = f"{self.prefix}{ns_part}/{rtype.plural}"
        item = collection + "/{name}"
        pretty = self.param("pretty", "query", desc="If 'true', the output is pretty printed.")
        ns_params = [self.param("namespace", "path")] if rtype.namespaced else []
        coll_params = [*ns_params, pretty]
        item_params = [self.param("name", "path"), *ns_params, pretty]
        status = _META + "Status"
        if "list" in verbs and list_def:
            self.add(collection, "get", self.operation(
                "list" + name, "list", gvk, list_def, params=self.list_params()), coll_params)
            if rtype.namespaced:
                all_ns = f"{self.prefix}/{rtype.plural}"
                op = self.operation(f"list{_camel(rtype.group, v)}{rtype.kind}ForAllNamespaces",
                                    "list", gvk, list_def, params=self.list_params())
                self.add(all_ns, "get", op, [pretty])
        if "create" in verbs:
            self.add(collection, "post", self.operation(
                "create" + name, "post", gvk, kind_def, params=self.write_params(),
                body=kind_def, created=True), coll_params)
        if "deletecollection" in verbs:
            self.add(collection, "delete", self.operation(
                "deleteCollection" + name, "deletecollection", gvk, status,
                params=self.delete_params() + self.list_params(), body=_COMMON[0]),
                coll_params)
        if "get" in verbs:
            self.add(item, "get", self.operation("read" + name, "get", gvk, kind_def),
                     item_params)
        if "update" in verbs:
            self.add(item, "put", self.operation(
                "replace" + name, "put", gvk, kind_def, params=self.write_params(),
                body=kind_def, created=True), item_params)
        if "patch" in verbs:
            self.add(item, "patch", self.operation(
                "patch" + name, "patch", gvk, kind_def, params=self.write_params(True),
                body=_META + "Patch", patch_types=patch_types, created=True), item_params)
        if "delete" in verbs:
            self.add(item, "delete", self.operation(
                "delete" + name, "delete", gvk, status, params=self.delete_params(),
                body=_COMMON[0]), item_params)
        for sub, sub_verbs in sorted(rtype.subresources(v).items()):
            self.subresource(rtype, sub, set(sub_verbs), kind_def, item, item_params, name,
                             patch_types)

    def subresource(self, rtype: ResourceType, sub: str, verbs: set[str], kind_def: str,
                    item: str, item_params: list[Schema], name: str,
                    patch_types: tuple[str, ...]) -> None:
        sub_gvk = subresource_kind(rtype, sub, self.version)
        if sub_gvk[2] == rtype.kind:
            sub_def: str | None = kind_def
        else:
            sub_def = k8s_schemas.definition_name(*sub_gvk)
        if sub_def is None:
            return  # connect-style subresources (log, exec, proxy) have no object schema
        path = f"{item}/{sub}"
        suffix = sub[:1].upper() + sub[1:]
        gvk = sub_gvk if sub_def != kind_def else (rtype.group, self.version, rtype.kind)
        if "get" in verbs:
            self.add(path, "get", self.operation(
                f"read{name}{suffix}", "get", gvk, sub_def), item_params)
        if "update" in verbs:
            self.add(path, "put", self.operation(
                f"replace{name}{suffix}", "put", gvk, sub_def, params=self.write_params(),
                body=sub_def, created=True), item_params)
        if "patch" in verbs:
            self.add(path, "patch", self.operation(
                f"patch{name}{suffix}", "patch", gvk, sub_def,
                params=self.write_params(True), body=_META + "Patch",
                patch_types=patch_types), item_params)
        if "create" in verbs:
            self.add(path, "post", self.operation(
                f"create{name}{suffix}", "post", gvk, sub_def, params=self.write_params(),
                body=sub_def, created=True), item_params)


def _paths(registry: Registry, group: str, version: str, *, v3: bool) -> dict[str, Any]:
    builder = _PathBuilder(group, version, v3=v3)
    for rtype in registry.in_group_version(group, version):
        kind_def, list_def = _kind_names(rtype, version)
        if kind_def is None:
            continue
        builder.resource(rtype, kind_def, list_def)
    return dict(sorted(builder.paths.items()))


def _parse_gv_path(path: str) -> tuple[str, str] | None:
    """``api/v1`` -> ("", "v1"); ``apis/apps/v1`` -> ("apps", "v1"); anything else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return ("", parts[1])
    if len(parts) == 3 and parts[0] == "apis" and parts[1]:
        return (parts[1], parts[2])
    return None


def _served_group_versions(registry: Registry) -> list[tuple[str, str]]:
    out = [("", v) for v in registry.group_versions("")]
    for group in registry.groups():
        out.extend((group, v) for v in registry.group_versions(group))
    return out


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _info() -> Schema:
    return {"title": "Kubernetes", "version": f"v{KUBERNETES_VERSION}"}


def v3_document(registry: Registry, path: str) -> Schema | None:
    """``GET /openapi/v3/<path>`` for ``api/v1`` or ``apis/<g>/<v>``; None if not served."""
    gv = _parse_gv_path(path)
    if gv is None or not registry.in_group_version(*gv):
        return None
    schemas = {name: convert_schema(s, v3=True)
               for name, s in _definitions(registry, *gv).items()}
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": _paths(registry, *gv, v3=True),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                "in": "header",
                                                "description": "Bearer Token authentication"}},
        },
        "security": [{"BearerToken": []}],
    }


def render(document: Schema) -> bytes:
    """The bytes served for a document (compact JSON)."""
    return json.dumps(document, separators=(",", ":")).encode()


def content_hash(body: bytes) -> str:
    """The ``?hash=`` of a v3 document: a digest of its bytes, as kube-apiserver publishes."""
    return hashlib.sha512(body).hexdigest().upper()


def v3_index(registry: Registry, *, hashes: dict[str, str] | None = None) -> Schema:
    """``GET /openapi/v3``: where each group-version document lives, with its content hash.

    ``hashes`` (path -> hash) saves rendering documents whose hash is already known.
    """
    paths = {}
    for group, version in _served_group_versions(registry):
        path = _gv_path(group, version)
        digest = (hashes or {}).get(path)
        if digest is None:
            digest = content_hash(render(v3_document(registry, path) or {}))
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def v2_document(registry: Registry) -> Schema:
    """``GET /openapi/v2``: one Swagger 2.0 document for every served group-version."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Schema] = {}
    for group, version in _served_group_versions(registry):
        paths.update(_paths(registry, group, version, v3=False))
        definitions.update(_definitions(registry, group, version))
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": dict(sorted(paths.items())),
        "definitions": {name: convert_schema(s, v3=False)
                        for name, s in sorted(definitions.items())},
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization",
                                                "in": "header"}},
        "security": [{"BearerToken": []}],
    }


# -- caching ---------------------------------------------------------------------------------


class CachedDocument:
    """A rendered document: the JSON bytes to send, their content hash and a strong ETag."""

    __slots__ = ("body", "hash", "etag")

    def __init__(self, document: Schema) -> None:
        self.body = render(document)
        self.hash = content_hash(self.body)
        self.etag = f'"{self.hash[:32]}"'


class OpenAPICache:
    """Memoized OpenAPI documents, dropped whenever the registry changes (a CRD comes or goes).

    Keys are ``"v2"``, ``"v3"`` (the index) and v3 paths like ``"apis/apps/v1"``.
    """

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._docs: dict[str, CachedDocument | None] = {}
        registry.on_change(self.invalidate)

    def invalidate(self) -> None:
        self._docs.clear()

    def _get(self, key: str) -> CachedDocument | None:
        if key not in self._docs:
            if key == "v2":
                doc: Schema | None = v2_document(self.registry)
            elif key == "v3":
                paths = [_gv_path(*gv) for gv in _served_group_versions(self.registry)]
                hashes = {}
                for path in paths:
                    rendered = self._get(path)
                    if rendered is not None:
                        hashes[path] = rendered.hash
                doc = v3_index(self.registry, hashes=hashes)
            else:
                doc = v3_document(self.registry, key)
            self._docs[key] = CachedDocument(doc) if doc is not None else None
        return self._docs[key]

    def v3_index(self) -> CachedDocument:
        doc = self._get("v3")
        assert doc is not None
        return doc

    def v3(self, path: str) -> CachedDocument | None:
        """The document for ``api/v1`` or ``apis/<g>/<v>`` (leading slash optional)."""
        return self._get(path.strip("/"))

    def v3_hash(self, path: str) -> str | None:
        """The hash the index advertises for ``path`` (compare with a request's ``?hash=``)."""
        doc = self.v3(path)
        return doc.hash if doc is not None else None

    def v2(self) -> CachedDocument:
        doc = self._get("v2")
        assert doc is not None
        return doc
