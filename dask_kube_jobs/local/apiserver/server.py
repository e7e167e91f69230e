"""The HTTP face of the local API server: routing, content negotiation, authn/authz, counters.

Requests are parsed into Kubernetes request attributes (verb, group, version, resource,
subresource, namespace, name) exactly as kube-apiserver's request-info resolver does, checked
against RBAC, and handed to ``APICore``. Errors leave as ``Status`` bodies. Every request is
counted by verb and resource so benchmarks can read what a client costs the server.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml
from aiohttp import web

from . import errors, fieldcheck, kubernetes_service, noderestriction, protobuf, tables
from .admission import create_admitted
from .auth import ANONYMOUS, TokenAuthenticator
from .core import APICore, DeleteOptions
from .listing import ListOptions
from .nodeauthz import NodeAuthorizer
from .nonresource import NonResourceEndpoints, json_response
from .rbac import Attributes, Authorizer, UserInfo, user_from_review_spec
from .registry import VIRTUAL_RESOURCES, ResourceType
from .tokenrequest import token_request
from .watch import WatchRequest, serve_watch

log = logging.getLogger(__name__)

USER_KEY = web.RequestKey("user", UserInfo)

PUBLIC_PATHS = {"/healthz", "/livez", "/readyz", "/version"}
MAX_BODY = 3 * 1024 * 1024  # kube-apiserver's default request body limit
RBAC_GROUP = "rbac.authorization.k8s.io"

#: Hooks for subresources served by another component (the kubelet): (request, pod) -> response.
ProxyHook = Callable[[web.Request, dict[str, Any], str], Awaitable[web.StreamResponse]]


@dataclass
class RequestInfo:
    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str | None
    name: str | None


def _status_response(exc: errors.APIError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    resp = json_response(exc.status(), exc.code)
    if headers:
        resp.headers.update(headers)
    return resp


def parse_resource_path(segments: list[str]) -> tuple[str | None, str, str | None, str]:
    """(namespace, resource, name, subresource) from the path after ``/api/v1`` or ``/apis/g/v``."""
    if not segments:
        raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
    if segments[0] == "namespaces" and len(segments) >= 3 and segments[2] not in ("status", "finalize"):
        namespace, rest = segments[1], segments[2:]
    else:
        namespace, rest = None, segments
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    sub = "/".join(rest[2:]) if len(rest) > 2 else ""
    return namespace, resource, name, sub


class APIServer:
    """An aiohttp application serving the Kubernetes API from an ``APICore``."""

    def __init__(self, core: APICore, authenticator: TokenAuthenticator, *,
                 bookmark_interval: float = 15.0) -> None:
        self.core = core
        self.authn = authenticator
        self.authz = Authorizer(core.store)
        self.node_authz = NodeAuthorizer(core.store)
        self.counters: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self.proxies: dict[str, ProxyHook] = {}
        self.bookmark_interval = bookmark_interval
        self.address = "127.0.0.1:6443"
        self.app = web.Application(middlewares=[self._middleware], client_max_size=MAX_BODY)
        r = self.app.router
        NonResourceEndpoints(self).add_routes(r)
        r.add_route("*", "/api/{version}/{tail:.+}", self._resource_legacy)
        r.add_route("*", "/apis/{group}/{version}/{tail:.+}", self._resource)

    # -- middleware -------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        warnings: list[str] = []
        token = fieldcheck.request_warnings.set(warnings)
        try:
            request[USER_KEY] = self._impersonate(request, self._authenticate(request))
            response = await handler(request)
            if warnings and not response.prepared:
                for w in dict.fromkeys(warnings):
                    response.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
            return response
        except errors.APIError as exc:
            return _status_response(exc)
        except web.HTTPException as exc:
            if exc.status == 404:
                return _status_response(errors.APIError(404, "NotFound", "the server could not find the requested resource"))
            if exc.status == 413:
                return _status_response(errors.APIError(413, "RequestEntityTooLarge", "the request body is too large"))
            raise
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:  # a bug here must still answer like Kubernetes, and be logged
            log.exception("internal error serving %s %s", request.method, request.path)
            return _status_response(errors.internal(str(exc)))
        finally:
            fieldcheck.request_warnings.reset(token)

    def _authenticate(self, request: web.Request) -> UserInfo:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            user = self.authn.authenticate(header[7:].strip())
            if user is None:
                raise errors.unauthorized()
            return user
        if request.path.rstrip("/") in PUBLIC_PATHS or request.path.startswith(("/healthz", "/livez", "/readyz")):
            return ANONYMOUS
        raise errors.unauthorized()

    def _impersonate(self, request: web.Request, user: UserInfo) -> UserInfo:
        """Honour ``Impersonate-User`` / ``Impersonate-Group`` (``kubectl --as``) when RBAC lets
        the caller ``impersonate`` those users and groups, as kube-apiserver does."""
        target = request.headers.get("Impersonate-User")
        groups = tuple(request.headers.getall("Impersonate-Group", ()))
        if not target:
            if groups:
                raise errors.bad_request("requested impersonation of groups without a user")
            return user
        checks = [("users", target)] + [("groups", g) for g in groups]
        if target.startswith("system:serviceaccount:"):
            _, _, sa_ns, sa_name = target.split(":", 3)
            checks[0] = ("serviceaccounts", sa_name)
        for resource, name in checks:
            namespace = target.split(":")[2] if resource == "serviceaccounts" else None
            allowed, _ = self.authz.authorize(user, Attributes(
                verb="impersonate", group="", resource=resource, namespace=namespace, name=name,
                resource_request=True))
            if not allowed:
                raise errors.APIError(403, "Forbidden", f'{resource} "{name}" is forbidden: User "{user.name}" cannot impersonate resource "{resource}" in API group "" at the cluster scope')
        if target.startswith("system:serviceaccount:"):
            sa_ns = target.split(":")[2]
            groups = groups or ("system:serviceaccounts", f"system:serviceaccounts:{sa_ns}")
        return UserInfo(name=target, groups=tuple(dict.fromkeys([*groups, "system:authenticated"])))

    def authorize_path(self, request: web.Request) -> None:
        user: UserInfo = request[USER_KEY]
        attrs = Attributes(verb=request.method.lower(), group="", resource="",
                           path=request.path, resource_request=False)
        allowed, reason = self.authz.authorize(user, attrs)
        if not allowed:
            raise errors.APIError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {attrs.verb} path "{request.path}"' + (f": {reason}" if reason else ""))

    def _authorize(self, request: web.Request, info: RequestInfo) -> None:
        user: UserInfo = request[USER_KEY]
        namespace, name = info.namespace, info.name
        if info.resource == "namespaces" and info.group == "" and name:
            namespace = name  # kube-apiserver authorizes a namespace request in that namespace
        if name is None and info.verb in ("list", "watch"):
            name = _single_name(request.query.get("fieldSelector", ""))
        attrs = Attributes(verb=info.verb, group=info.group, resource=info.resource,
                           subresource=info.subresource, namespace=namespace,
                           name=name, resource_request=True)
        # --authorization-mode=Node,RBAC: the Node authorizer decides first for nodes; what it
        # has no opinion on (or denies) goes to RBAC, and a denial carries both reasons.
        node_decision = self.node_authz.authorize(user, attrs)
        if node_decision is not None and node_decision[0]:
            return
        allowed, reason = self.authz.authorize(user, attrs)
        if not allowed and node_decision is not None and node_decision[1]:
            reason = node_decision[1] + (f", {reason}" if reason else "")
        if not allowed:
            raise errors.forbidden(user.name, info.verb, info.resource, info.group, info.namespace,
                                   info.name, reason, subresource=info.subresource)

    # -- resources --------------------------------------------------------------------------
    async def _resource_legacy(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_resource(request, "", request.match_info["version"],
                                          request.match_info["tail"])

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        return await self._serve_resource(request, request.match_info["group"],
                                          request.match_info["version"], request.match_info["tail"])

    def _request_info(self, request: web.Request, group: str, version: str,
                      tail: str) -> tuple[RequestInfo, ResourceType]:
        segments = [s for s in tail.split("/") if s]
        namespace, resource, name, sub = parse_resource_path(segments)
        rtype = self.core.resolve(group, version, resource)
        if namespace is None and rtype.namespaced and resource != "namespaces":
            namespace = None  # all namespaces
        method = request.method
        query = request.query
        if method == "GET":
            if name is None:
                verb = "watch" if query.get("watch") in ("true", "1") else "list"
            else:
                verb = "get"
        elif method == "POST":
            verb = "create"
        elif method == "PUT":
            verb = "update"
        elif method == "PATCH":
            verb = "patch"
        elif method == "DELETE":
            verb = "delete" if name is not None else "deletecollection"
        else:
            raise errors.method_not_allowed(method, resource)
        if sub and sub not in rtype.subresources(version):
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        if sub == "" and verb not in rtype.verbs:
            raise errors.method_not_allowed(verb, resource)
        if rtype.namespaced and name is not None and namespace is None and resource != "namespaces":
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource")
        if resource == "namespaces" and name is None and segments and len(segments) > 1:
            name = segments[1]
        return RequestInfo(verb, group, version, resource, sub, namespace, name), rtype

    async def _read_body(self, request: web.Request, *, yaml_ok: bool = True) -> Any:
        raw = await request.read()
        if not raw:
            return None
        ctype = request.content_type or "application/json"
        if ctype == protobuf.CONTENT_TYPE:
            return protobuf.decode(raw)
        if "protobuf" in ctype:
            raise errors.APIError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got "{ctype}"')
        try:
            if "yaml" in ctype and yaml_ok:
                return yaml.safe_load(raw)
            return json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f"error decoding the request body as {'YAML' if 'yaml' in ctype else 'JSON'}: {exc}") from exc

    async def _serve_resource(self, request: web.Request, group: str, version: str,
                              tail: str) -> web.StreamResponse:
        info, rtype = self._request_info(request, group, version, tail)
        self.counters[(info.verb, group, info.resource + (f"/{info.subresource}" if info.subresource else ""))] += 1
        self._authorize(request, info)
        if info.subresource == "exec" and info.verb == "get":
            # kubectl's WebSocket exec is a GET; as kube-apiserver with
            # AuthorizePodWebsocketUpgradeCreatePermission, running a command also needs create.
            self._authorize(request, dataclasses.replace(info, verb="create"))
        core, q = self.core, request.query
        if info.verb != "create":
            self._admit_node(request, info, None)
        dry_run = q.get("dryRun") == "All"
        validation = fieldcheck.check_mode(q.get("fieldValidation"))
        manager = q.get("fieldManager") or _manager_from_agent(request.headers.get("User-Agent", ""))
        ns = info.namespace

        if info.subresource in self.proxies and info.name is not None:
            pod = core.get(rtype, version, ns, info.name)
            return await self.proxies[info.subresource](request, pod, info.verb)
        if rtype.key in VIRTUAL_RESOURCES:
            return await self._virtual(request, info, rtype)

        if info.verb == "watch":
            return await self._watch(request, rtype, version, ns)
        if info.verb == "list":
            return self._respond_list(request, rtype, version, ns, ListOptions.from_query(q))
        if info.verb == "get":
            assert info.name is not None
            if info.subresource == "scale":
                return json_response(core.get_scale(rtype, version, ns, info.name))
            obj = core.get(rtype, version, ns, info.name)
            return self._respond_object(request, rtype, version, obj)
        if info.verb == "create":
            body = await self._read_body(request)
            self._admit_node(request, info, body)
            if info.subresource == "binding" and info.name is not None:
                return json_response(core.bind(ns or "", info.name, body), 201)
            if info.subresource == "eviction" and info.name is not None:
                return json_response(core.delete(rtype, version, ns, info.name,
                                                 DeleteOptions.parse((body or {}).get("deleteOptions"), {})))
            if info.subresource == "token" and info.name is not None:
                return json_response(token_request(core, self.authn, ns or "", info.name, body), 201)
            if info.name is not None:
                raise errors.method_not_allowed("create", f"{info.resource}/{info.name}")
            obj = await create_admitted(core, rtype, version, ns, body, dry_run=dry_run,
                                        manager=manager, field_validation=validation)
            self._after_write(rtype)
            return json_response(obj, 201)
        assert info.name is not None or info.verb == "deletecollection"
        if info.verb == "update":
            body = await self._read_body(request)
            if info.subresource == "scale":
                return json_response(core.update_scale(rtype, version, ns, info.name, body, dry_run=dry_run))  # type: ignore[arg-type]
            if info.subresource == "finalize":
                return json_response(core.finalize_namespace(info.name, body))  # type: ignore[arg-type]
            obj = core.update(rtype, version, ns, info.name, body,  # type: ignore[arg-type]
                              subresource=info.subresource, dry_run=dry_run, manager=manager,
                              field_validation=validation)
            self._after_write(rtype)
            return json_response(obj)
        if info.verb == "patch":
            raw = await request.read()
            ctype = request.headers.get("Content-Type", "").split(";")[0].strip()
            if info.subresource == "scale":
                return json_response(core.patch_scale(rtype, version, ns, info.name, ctype, raw, dry_run=dry_run))  # type: ignore[arg-type]
            force = q.get("force") == "true"
            obj, created = core.patch(rtype, version, ns, info.name, ctype, raw,  # type: ignore[arg-type]
                                      subresource=info.subresource, dry_run=dry_run,
                                      manager=q.get("fieldManager") if ctype.startswith("application/apply-patch") else manager,
                                      force=force, field_validation=validation)
            self._after_write(rtype)
            return json_response(obj, 201 if created else 200)
        if info.verb == "delete":
            body = await self._read_body(request)
            opts = DeleteOptions.parse(body if isinstance(body, dict) else None, dict(q))
            opts.dry_run = opts.dry_run or dry_run
            obj = core.delete(rtype, version, ns, info.name, opts)  # type: ignore[arg-type]
            self._after_write(rtype)
            return json_response(obj)
        if info.verb == "deletecollection":
            body = await self._read_body(request)
            opts = DeleteOptions.parse(body if isinstance(body, dict) else None, dict(q))
            opts.dry_run = opts.dry_run or dry_run
            result = core.delete_collection(rtype, version, ns, ListOptions.from_query(q), opts)
            self._after_write(rtype)
            return json_response(result)
        raise errors.method_not_allowed(info.verb, info.resource)

    def _admit_node(self, request: web.Request, info: RequestInfo, body: Any) -> None:
        """NodeRestriction admission (a no-op for callers that are not nodes)."""
        store = self.core.store
        noderestriction.admit(request[USER_KEY], info.verb, info.group, info.resource,
                              info.subresource, info.namespace, info.name, body,
                              lambda plural, ns, name: store.get(("", plural), ns, name))

    def _after_write(self, rtype: ResourceType) -> None:
        if rtype.group == RBAC_GROUP:
            self.authz.invalidate()

    def _respond_object(self, request: web.Request, rtype: ResourceType, version: str,
                        obj: dict[str, Any]) -> web.Response:
        table_version = tables.wants_table(request.headers.get("Accept"))
        if table_version:
            return json_response(tables.to_table(rtype, [obj], version=version, table_version=table_version,
                                                 include_object=request.query.get("includeObject", "Metadata"),
                                                 list_meta={"resourceVersion": obj["metadata"].get("resourceVersion", "")}))
        return json_response(obj)

    def _respond_list(self, request: web.Request, rtype: ResourceType, version: str,
                      namespace: str | None, opts: ListOptions) -> web.Response:
        table_version = tables.wants_table(request.headers.get("Accept"))
        if table_version:
            result = self.core.list(rtype, version, namespace, opts)
            return json_response(tables.to_table(rtype, result["items"], version=version,
                                                 table_version=table_version,
                                                 include_object=request.query.get("includeObject", "Metadata"),
                                                 list_meta=result["metadata"]))
        return web.Response(body=self.core.list_json(rtype, version, namespace, opts),
                            headers={"Content-Type": "application/json"})

    async def _watch(self, request: web.Request, rtype: ResourceType, version: str,
                     namespace: str | None) -> web.StreamResponse:
        req = WatchRequest.from_query(rtype, version, namespace, request.query,
                                      accept=request.headers.get("Accept"),
                                      bookmark_interval=self.bookmark_interval)
        resp = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache, private"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def write(data: bytes) -> None:
            await resp.write(data)

        try:
            await serve_watch(self.core.store, req, write)
        except (ConnectionResetError, ConnectionError):
            return resp
        with contextlib.suppress(ConnectionResetError, ConnectionError):
            await resp.write_eof()
        return resp

    # -- computed resources -----------------------------------------------------------------
    async def _virtual(self, request: web.Request, info: RequestInfo, rtype: ResourceType) -> web.Response:
        if info.verb != "create":
            raise errors.method_not_allowed(info.verb, info.resource)
        body = await self._read_body(request) or {}
        user: UserInfo = request[USER_KEY]
        if info.resource == "bindings":
            name = (body.get("metadata") or {}).get("name")
            if not name:
                raise errors.invalid("Binding", "", [errors.Cause("metadata.name", "Required value", "FieldValueRequired")])
            return json_response(self.core.bind(info.namespace or "", name, body), 201)
        spec = body.get("spec") or {}
        out = {"kind": rtype.kind, "apiVersion": rtype.api_version(info.version),
               "metadata": {"creationTimestamp": None}, "spec": spec}
        if info.resource == "selfsubjectaccessreviews":
            out["status"] = self.authz.review(user, spec, kind=rtype.kind)
        elif info.resource == "subjectaccessreviews":
            out["status"] = self.authz.review(user_from_review_spec(spec), spec, kind=rtype.kind)
        elif info.resource == "selfsubjectrulesreviews":
            out["status"] = self.authz.rules_review(user, spec.get("namespace"))
        elif info.resource == "selfsubjectreviews":
            out["status"] = {"userInfo": {"username": user.name, "groups": list(user.groups)}}
        return json_response(out, 201)

    # -- running ----------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0,
                    ssl_context: ssl.SSLContext | None = None, *,
                    or_any_port: bool = False) -> tuple[web.AppRunner, int]:
        """Serve on ``port`` (0: any free one); with ``or_any_port``, a port already taken
        falls back to a free one instead of failing. Returns the runner and the bound port."""
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            if not (or_any_port and port and exc.errno == errno.EADDRINUSE):
                await runner.cleanup()
                raise
            site = web.TCPSite(runner, host, 0, ssl_context=ssl_context, reuse_address=True)
            await site.start()
        sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
        bound = sockets[0].getsockname()[1] if sockets else port
        self.address = f"{host}:{bound}"
        kubernetes_service.publish(self.core, host, bound)
        return runner, bound


def _single_name(field_selector: str) -> str | None:
    """The name a ``metadata.name=X`` field selector pins a list or watch to, as RBAC sees it."""
    for term in field_selector.split(","):
        key, sep, value = term.partition("=")
        if sep and key.strip() == "metadata.name":
            return value.lstrip("=").strip() or None
    return None


def _manager_from_agent(agent: str) -> str | None:
    """kube-apiserver names the field manager after the client binary (``kubectl``, ``kopf``)."""
    if not agent:
        return None
    return agent.split("/", 1)[0][:128] or None
