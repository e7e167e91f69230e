"""``Client``: raw JSON requests to the API server over one kr8s ``Api`` (one connection pool).

It speaks paths (``/api/v1/namespaces/ns/pods``) rather than kr8s objects, because controllers
handle many kinds generically (the garbage collector and the namespace deleter touch every
resource discovery lists) and need patch content types, preconditions and subresources
(``binding``, ``status``, ``finalize``) that kr8s objects do not expose. Errors come back as
the classes of ``errors.py``, by status.

Every ``Client`` owns its own kr8s ``Api`` (and so its own connection pool): a watch holds a
connection for its lifetime, and the garbage collector alone watches every resource type.

A ``Client`` lets at most ``MAX_IN_FLIGHT`` ordinary requests into that pool at a time and
queues the rest itself. httpcore's pool re-scans every queued request each time a connection
frees up (encode/httpcore#1035: quadratic in the queue, which kept an operator with 500
DaskClusters at full CPU while the API server idled and every request timed out), and a request
queued there can miss a freed connection and hang until its read timeout (encode/httpcore#1110).
Waiting in an ``asyncio.Semaphore`` costs nothing of the sort. Watches take no permit (each
holds its connection for minutes, and would otherwise starve short requests); they have the
pool's remaining connections. Each request also has a total deadline (``REQUEST_TIMEOUT``,
counted from when it gets its permit): httpx's timeouts bound each read, not the whole request,
and a caller's retry loop can only retry a request that ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import kr8s
import kr8s.asyncio
import yaml

from ..contract.api_resources import PODS, Resource
from ..contract.objects import Obj
from .errors import APIError, Conflict, NotFound, Origin, RequestTimeout, api_error, mark_origin

REQUEST_TIMEOUT = 30.0
# kr8s builds its httpx client with httpx's default limits: 100 connections, 20 kept alive.
# Requests in flight stay within the kept-alive ones (no connection churn, a short pool
# queue); the other 80 connections are left to watch streams.
MAX_IN_FLIGHT = 20
#: Where a Pod's service account token and CA are mounted: the in-cluster credentials.
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

#: What a kubeconfig may be given as: a path (kr8s also takes ``a:b`` lists), or its content as
#: a mapping (an Airflow connection's inline kubeconfig, a test's generated one).
Kubeconfig = str | os.PathLike[str] | Mapping[str, Any]


def _split(path: str) -> tuple[str, str, str]:
    """``/apis/apps/v1/namespaces/x/deployments`` -> base, version and url for kr8s's call_api."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        return "/api", parts[1], "/".join(parts[2:])
    return "/apis", f"{parts[1]}/{parts[2]}", "/".join(parts[3:])


def _kubeconfig_files(kubeconfig: str | os.PathLike[str] | None) -> list[str]:
    if kubeconfig is not None:
        return [f for f in os.fspath(kubeconfig).split(os.pathsep) if f]
    listed = [f for f in os.environ.get("KUBECONFIG", "").split(os.pathsep) if f]
    return listed or [os.path.expanduser("~/.kube/config")]


def _load_kubeconfigs(kubeconfig: Kubeconfig | None) -> tuple[str, list[Mapping[str, Any]]]:
    """The kubeconfig's label (its path or paths, or ``(inline)``) and its readable files."""
    if isinstance(kubeconfig, Mapping):
        return "(inline)", [kubeconfig]
    configs: list[Mapping[str, Any]] = []
    files = _kubeconfig_files(kubeconfig)
    for file in files:
        with contextlib.suppress(OSError, yaml.YAMLError):
            with open(os.path.expanduser(file), encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh)
            if isinstance(loaded, Mapping):
                configs.append(loaded)
    return os.pathsep.join(files), configs


def kubeconfig_contexts(kubeconfig: Kubeconfig | None) -> list[str]:
    """The names of a kubeconfig's contexts (of every file of a ``$KUBECONFIG`` list)."""
    _, configs = _load_kubeconfigs(kubeconfig)
    return [str(c["name"]) for config in configs for c in config.get("contexts") or ()
            if isinstance(c, Mapping) and c.get("name")]


def kubeconfig_origin(kubeconfig: Kubeconfig | None, *, context: str | None = None,
                      in_cluster: bool = False) -> Origin:
    """Which server, context and user a kubeconfig means (merged as kubectl merges a
    ``$KUBECONFIG`` list: the first file that sets a name wins). Read before connecting, so a
    connection that fails can still say what it tried; unreadable parts stay unknown."""
    label, configs = _load_kubeconfigs(kubeconfig)
    if not configs and in_cluster:
        host = os.environ.get("KUBERNETES_SERVICE_HOST", "")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        return Origin(f"https://{host}:{port}" if host else "", "(in-cluster)", "",
                      "the Pod's service account")

    def named(section: str, name: str | None) -> Mapping[str, Any]:
        for config in configs:
            for entry in config.get(section) or ():
                if isinstance(entry, Mapping) and entry.get("name") == name:
                    return entry.get(section[:-1]) or {}
        return {}

    chosen = context or next((str(c["current-context"]) for c in configs
                              if c.get("current-context")), "")
    ctx = named("contexts", chosen)
    cluster = named("clusters", ctx.get("cluster"))
    return Origin(str(cluster.get("server") or ""), label, chosen, str(ctx.get("user") or ""))


class Client:
    """Raw JSON requests over one kr8s ``Api`` (its own connection pool).

    ``origin`` says where the requests go and as whom; every error a request raises carries it
    (:func:`~dask_kube_jobs.kube.errors.origin_of`), so messages can name the kubeconfig,
    context and user of the connection that failed."""

    def __init__(self, api: kr8s.asyncio.Api, kubeconfig: str, *,
                 max_in_flight: int = MAX_IN_FLIGHT, origin: Origin | None = None) -> None:
        self.api = api
        self.kubeconfig = kubeconfig
        self.origin = origin or Origin(kubeconfig=kubeconfig)
        self._permits = asyncio.Semaphore(max_in_flight)

    @classmethod
    async def connect(cls, kubeconfig: Kubeconfig | None = None, *, context: str | None = None,
                      namespace: str | None = None, in_cluster: bool = False,
                      max_in_flight: int = MAX_IN_FLIGHT) -> Client:
        """The one way a kubeconfig becomes a client, for every part of the package.

        ``kubeconfig`` is a path or the kubeconfig's content; None lets kr8s look where kubectl
        looks (``$KUBECONFIG``, ``~/.kube/config``) and then at the service account.
        ``context`` picks a context other than the current one, ``namespace`` overrides the
        context's (it is what :func:`default_namespace` answers), and ``in_cluster`` adds the
        Pod's service account credentials as the fallback. Errors are kr8s's and the file
        system's, raw: the library turns them into ``KubeconfigError``.
        """
        kwargs: dict[str, Any] = {"bypass_factory": True}
        if isinstance(kubeconfig, Mapping):
            kwargs["kubeconfig"] = dict(kubeconfig)
        elif kubeconfig is not None:
            kwargs["kubeconfig"] = os.fspath(kubeconfig)
        if in_cluster:
            kwargs["serviceaccount"] = SERVICE_ACCOUNT
        if context:
            kwargs["context"] = context
        if namespace:
            kwargs["namespace"] = namespace
        origin = kubeconfig_origin(kubeconfig, context=context, in_cluster=in_cluster)
        try:
            api = await kr8s.asyncio.Api(**kwargs)
        except Exception as exc:  # kr8s asks the server its version: say where it went
            mark_origin(exc, origin)
            raise
        if context and not namespace:
            # kr8s 0.20 takes the *current* context's namespace even when another context is
            # chosen; kubectl takes the chosen one's.
            with contextlib.suppress(AttributeError, KeyError, ValueError):
                chosen = api.auth.kubeconfig.get_context(context).get("namespace")
                if chosen:
                    api.namespace = chosen
        label = "" if kubeconfig is None or isinstance(kubeconfig, Mapping) \
            else os.fspath(kubeconfig)
        with contextlib.suppress(AttributeError, TypeError):
            origin = Origin(str(api.auth.server or origin.server), origin.kubeconfig,
                            str(api.auth.active_context or origin.context), origin.user)
        return cls(api, label, max_in_flight=max_in_flight, origin=origin)

    async def close(self) -> None:
        session = getattr(self.api, "_session", None)
        if session is not None:
            with contextlib.suppress(Exception):
                await session.aclose()

    @contextlib.asynccontextmanager
    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        # raise_for_status=False: kr8s answers any 401/403 by re-reading the kubeconfig and
        # replacing its HTTP session, which breaks every other request in flight on that
        # session (ReadError, "URL is missing a protocol"). A 403 such as "namespace is being
        # terminated" is an answer, not expired credentials, so errors are mapped here.
        base, version, url = _split(path)
        try:
            async with self.api.call_api(method, base=base, version=version, url=url,
                                         raise_for_status=False, **kwargs) as response:
                if response.is_error:
                    await response.aread()
                    try:
                        status = response.json()
                    except ValueError:
                        status = {}
                    if not isinstance(status, dict):
                        status = {}
                    raise api_error(response.status_code, status, response.text[:200])
                yield response
        except (APIError, httpx.HTTPError, kr8s.APITimeoutError, OSError) as exc:
            mark_origin(exc, self.origin)
            raise

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      body: Any = None, content_type: str | None = None) -> Obj:
        kwargs: dict[str, Any] = {"timeout": REQUEST_TIMEOUT}
        if params:
            kwargs["params"] = params
        if body is not None:
            kwargs["content"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": content_type or "application/json"}
        async with self._permits:
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    async with self._call(method, path, **kwargs) as response:
                        return response.json() if response.content else {}
            except (TimeoutError, kr8s.APITimeoutError) as exc:  # the deadline, or a read's
                raise RequestTimeout(f"{method} {path}: no complete answer within "
                                     f"{REQUEST_TIMEOUT:g}s") from exc

    async def get(self, res: Resource, namespace: str | None, name: str) -> Obj | None:
        """The object, or None if it does not exist."""
        try:
            return await self.request("GET", res.path(namespace, name))
        except NotFound:
            return None

    async def list(self, res: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None,
                   field_selector: str | None = None) -> tuple[list[Obj], str]:
        """All items (following ``continue``) and the list's resourceVersion."""
        params: dict[str, Any] = {"limit": 500}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        items: list[Obj] = []
        while True:
            page = await self.request("GET", res.path(namespace), params=params)
            for item in page.get("items") or []:
                item.setdefault("kind", res.kind)
                item.setdefault("apiVersion", res.api_version)
                items.append(item)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                return items, str(meta.get("resourceVersion", ""))
            params["continue"] = meta["continue"]

    async def create(self, res: Resource, namespace: str | None, body: Obj) -> Obj:
        return await self.request("POST", res.path(namespace), body=body)

    async def replace(self, res: Resource, namespace: str | None, name: str, body: Obj,
                      sub: str | None = None) -> Obj:
        return await self.request("PUT", res.path(namespace, name, sub), body=body)

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, *,
                    type: str = "merge", sub: str | None = None) -> Obj:
        content_type = {"merge": "application/merge-patch+json",
                        "json": "application/json-patch+json",
                        "strategic": "application/strategic-merge-patch+json"}[type]
        return await self.request("PATCH", res.path(namespace, name, sub), body=body,
                                  content_type=content_type)

    async def delete(self, res: Resource, namespace: str | None, name: str, *,
                     propagation: str | None = None, uid: str | None = None,
                     grace_period: int | None = None) -> bool:
        """Delete; False if it was already gone (or the uid precondition no longer holds)."""
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation:
            options["propagationPolicy"] = propagation
        if uid:
            options["preconditions"] = {"uid": uid}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        try:
            await self.request("DELETE", res.path(namespace, name), body=options)
        except NotFound:
            return False
        except Conflict:
            if uid:
                return False
            raise
        return True

    async def delete_and_wait(self, res: Resource, namespace: str | None, name: str, *,
                              uid: str | None = None, propagation: str = "Background",
                              timeout: float = 120.0, poll: float = 0.5) -> bool:
        """Delete, then read until the object (of ``uid``, when given) is gone; False if it was
        already gone. Raises ``TimeoutError`` if it is still there after ``timeout`` seconds
        (a finalizer or, with Foreground, a child that does not go)."""
        deleted = await self.delete(res, namespace, name, propagation=propagation, uid=uid)
        async with asyncio.timeout(timeout):
            while True:
                obj = await self.get(res, namespace, name)
                if obj is None or (uid and obj["metadata"].get("uid") != uid):
                    return deleted
                await asyncio.sleep(poll)

    @contextlib.asynccontextmanager
    async def watch_stream(self, res: Resource, namespace: str | None, params: dict[str, Any]) -> Any:
        async with self._call("GET", res.path(namespace), params=params, stream=True,
                              timeout=httpx.Timeout(None, connect=REQUEST_TIMEOUT)) as response:
            yield response

    @contextlib.asynccontextmanager
    async def watch_lines(self, res: Resource, namespace: str | None, resource_version: str, *,
                          timeout_seconds: int, label_selector: str | None = None,
                          field_selector: str | None = None) -> AsyncIterator[AsyncIterator[str]]:
        """The lines of a watch from ``resource_version``, with bookmarks (for ``ListThenWatch``)."""
        params: dict[str, Any] = {"watch": "true", "resourceVersion": resource_version,
                                  "allowWatchBookmarks": "true", "timeoutSeconds": timeout_seconds}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        async with self.watch_stream(res, namespace, params) as response:
            yield response.aiter_lines()

    # -- Pod logs (the ``pods/log`` subresource) ----------------------------------------------
    @staticmethod
    def _log_params(container: str | None, tail_lines: int | None, previous: bool,
                    follow: bool) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if container:
            params["container"] = container
        if tail_lines is not None:
            params["tailLines"] = str(tail_lines)
        if previous:
            params["previous"] = "true"
        if follow:
            params["follow"] = "true"
        return params

    async def read_log(self, namespace: str, pod: str, *, container: str | None = None,
                       tail_lines: int | None = None, previous: bool = False,
                       timeout: float = REQUEST_TIMEOUT) -> str:
        """A Pod's log as it is now, within the client's in-flight limit and a deadline of
        ``timeout`` seconds. A container that has not started answers ``BadRequest``."""
        params = self._log_params(container, tail_lines, previous, follow=False)
        path = PODS.path(namespace, pod, "log")
        async with self._permits:
            try:
                async with asyncio.timeout(timeout):
                    async with self._call("GET", path, params=params,
                                          timeout=timeout) as response:
                        await response.aread()
                        return response.text
            except (TimeoutError, kr8s.APITimeoutError) as exc:
                raise RequestTimeout(f"GET {path}: no complete answer within "
                                     f"{timeout:g}s") from exc

    async def log_lines(self, namespace: str, pod: str, *, container: str | None = None,
                        follow: bool = False) -> AsyncIterator[str]:
        """A Pod's log line by line; with ``follow``, until the container ends. A stream,
        like a watch: it takes no permit and has no total deadline (connecting has one)."""
        params = {"follow": "false", **self._log_params(container, None, False, follow)}
        timeout = httpx.Timeout(None, connect=REQUEST_TIMEOUT)
        async with self._call("GET", PODS.path(namespace, pod, "log"), params=params,
                              stream=True, timeout=timeout) as response:
            async for line in response.aiter_lines():
                yield line

    async def discover(self) -> list[Resource]:
        """Every top-level resource of every group's preferred version, as discovery lists them."""
        lists = [await self.request("GET", "/api/v1")]
        groups = await self._get_groups()
        for group in groups.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            if not preferred:
                continue
            with contextlib.suppress(NotFound):  # a CRD deleted between the two requests
                lists.append(await self.request("GET", f"/apis/{preferred}"))
        out: list[Resource] = []
        for rl in lists:
            group, _, version = rl.get("groupVersion", "v1").rpartition("/")
            for r in rl.get("resources") or []:
                if "/" in r["name"]:
                    continue
                out.append(Resource(group, version, r["name"], r["kind"], bool(r.get("namespaced")),
                                    frozenset(r.get("verbs") or ())))
        return out

    async def _get_groups(self) -> Obj:
        async with self._permits, asyncio.timeout(REQUEST_TIMEOUT), \
                self.api.call_api("GET", base="/apis", version="", url="",
                                  timeout=REQUEST_TIMEOUT) as response:
            return response.json()  # type: ignore[no-any-return]


def default_namespace(client: Client) -> str:
    """The kubeconfig context's namespace (or the in-cluster service account's), else
    ``default``: where a request that names no namespace goes, as with kubectl."""
    try:
        return str(client.api.namespace or "default")
    except (AttributeError, AssertionError):
        return "default"
