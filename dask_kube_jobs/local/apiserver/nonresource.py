"""The API server's non-resource endpoints: version, health, metrics, discovery and OpenAPI.

They are split from ``server.py`` because none of them touches objects: each answers from the
registry, the OpenAPI cache or the server's counters, so they share nothing with the resource
path but authentication (the server's middleware) and non-resource authorization
(``APIServer.authorize_path``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import discovery, errors
from .openapi import OpenAPICache

if TYPE_CHECKING:
    from .server import APIServer


def _proto_field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


#: A gnostic OpenAPIv2 ``Document`` with swagger "2.0", an ``Info`` and empty ``Paths``.
EMPTY_OPENAPI_V2_PROTOBUF = (
    _proto_field(1, b"2.0")
    + _proto_field(2, _proto_field(1, b"Kubernetes") + _proto_field(2, b"v1.32.0"))
    + _proto_field(8, b"")
)


def json_response(body: Any, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=status,
                        headers={"Content-Type": content_type})


class NonResourceEndpoints:
    """The handlers of every path that is not a resource, for one ``APIServer``."""

    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.core = server.core
        self.counters = server.counters
        self.openapi = OpenAPICache(server.core.registry)

    def add_routes(self, r: web.UrlDispatcher) -> None:
        r.add_get("/version", self._version)
        r.add_get("/version/", self._version)
        for probe in ("/healthz", "/livez", "/readyz"):
            r.add_get(probe, self._health)
            r.add_get(probe + "/{check:.*}", self._health)
        r.add_get("/metrics", self._metrics)
        r.add_get("/api", self._api)
        r.add_get("/api/", self._api)
        r.add_get("/apis", self._apis)
        r.add_get("/apis/", self._apis)
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/openapi/v3", self._openapi_v3_index)
        r.add_get("/openapi/v3/{path:.*}", self._openapi_v3)
        r.add_route("*", "/api/{version}", self._group_version_legacy)
        r.add_route("*", "/api/{version}/", self._group_version_legacy)
        r.add_get("/apis/{group}", self._group)
        r.add_get("/apis/{group}/", self._group)
        r.add_route("*", "/apis/{group}/{version}", self._group_version)
        r.add_route("*", "/apis/{group}/{version}/", self._group_version)

    async def _version(self, request: web.Request) -> web.Response:
        self.counters[("get", "", "/version")] += 1
        return json_response(discovery.version_info())

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _metrics(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        lines = ["# HELP apiserver_request_total Requests served, by verb and resource.",
                 "# TYPE apiserver_request_total counter"]
        for (verb, group, resource), n in sorted(self.counters.items()):
            lines.append(f'apiserver_request_total{{verb="{verb}",group="{group}",resource="{resource}"}} {n}')
        lines.append(f"apiserver_watchers {self.core.store.watcher_count()}")
        lines.append(f"apiserver_resource_version {self.core.store.resource_version}")
        return web.Response(text="\n".join(lines) + "\n")

    async def _api(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", "", "/api")] += 1
        fmt = discovery.negotiate_discovery(request.headers.get("Accept"))
        if fmt:
            return json_response(discovery.aggregated_discovery(self.core.registry, legacy=True, version=fmt),
                                 content_type=discovery.discovery_content_type(fmt))
        return json_response(discovery.api_versions(self.server.address))

    async def _apis(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", "", "/apis")] += 1
        fmt = discovery.negotiate_discovery(request.headers.get("Accept"))
        if fmt:
            return json_response(discovery.aggregated_discovery(self.core.registry, legacy=False, version=fmt),
                                 content_type=discovery.discovery_content_type(fmt))
        return json_response(discovery.api_group_list(self.core.registry))

    async def _group(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        doc = discovery.api_group(self.core.registry, request.match_info["group"])
        if doc is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def _group_version_legacy(self, request: web.Request) -> web.Response:
        return await self._serve_group_version(request, "", request.match_info["version"])

    async def _group_version(self, request: web.Request) -> web.Response:
        return await self._serve_group_version(request, request.match_info["group"], request.match_info["version"])

    async def _serve_group_version(self, request: web.Request, group: str, version: str) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", group, "discovery")] += 1
        if request.method != "GET":
            raise errors.method_not_allowed(request.method, request.path)
        doc = discovery.api_resource_list(self.core.registry, group, version)
        if doc is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        return json_response(doc)

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", "", "/openapi/v2")] += 1
        accept = request.headers.get("Accept", "")
        if "protobuf" in accept and "json" not in accept:
            # kubectl asks for v2, as protobuf only, when the v3 index lacks a manifest's group
            # version (a kind nobody serves). An empty v2 document lets it go on to report the
            # unknown kind itself ("no matches for kind"), as against a real cluster.
            return web.Response(body=EMPTY_OPENAPI_V2_PROTOBUF,
                                content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
        doc = self.openapi.v2()
        return self._cached(request, doc.body, doc.etag)

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", "", "/openapi/v3")] += 1
        doc = self.openapi.v3_index()
        return self._cached(request, doc.body, doc.etag)

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        self.server.authorize_path(request)
        self.counters[("get", "", "/openapi/v3")] += 1
        doc = self.openapi.v3(request.match_info["path"])
        if doc is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        return self._cached(request, doc.body, doc.etag)

    def _cached(self, request: web.Request, body: bytes, etag: str) -> web.Response:
        quoted = etag if etag.startswith('"') else f'"{etag}"'
        if request.headers.get("If-None-Match") == quoted:
            return web.Response(status=304, headers={"ETag": quoted})
        return web.Response(body=body, content_type="application/json",
                            headers={"ETag": quoted, "Cache-Control": "no-cache, private"})
