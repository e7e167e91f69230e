"""A small client toolkit: a raw API client, informers, a work queue and an event recorder.

Shared by the local control plane's controllers and by the operator (which needs the same
label-selected Pod informer and event recorder).

The controllers are clients of the API server exactly as kube-controller-manager is: they list
and watch over HTTP and write through the same REST paths ``kubectl`` uses. This module is the
small part of client-go they need, built on kr8s's transport (``Api.call_api``: kubeconfig,
TLS, bearer token, ``Status`` errors):

* ``Client`` speaks raw JSON paths (``/api/v1/namespaces/ns/pods``) rather than kr8s objects,
  because controllers handle many kinds generically (the garbage collector and the namespace
  deleter touch every resource discovery lists) and need patch content types, preconditions
  and subresources (``binding``, ``status``, ``finalize``) that kr8s objects do not expose.
* ``Informer`` lists, then watches from the list's ``resourceVersion`` with bookmarks, and
  re-lists on ``410 Gone`` or a dropped stream. kr8s's own ``watch`` restarts at the same
  expired version after a 410 and so never recovers; a controller must re-list instead.
* ``WorkQueue`` is client-go's rate-limited queue: a key is queued at most once, never handled
  by two workers at a time, and retried with exponential back-off after an error.
* ``EventRecorder`` writes core/v1 Events and, like client-go's recorder, bumps ``count`` on a
  repeated event rather than writing a new one, so periodic retries do not flood the namespace.

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
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import httpx
import kr8s
import kr8s.asyncio

from .contract.api_resources import (  # noqa: F401  (the client's face: kube.PODS etc.)
    CLUSTERROLES,
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    ENDPOINTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)
from .contract.objects import Obj, key_of
from .contract.times import fmt_time

Handler = Callable[[str, Obj, "Obj | None"], None]
log = logging.getLogger("dask_kube_jobs.local.controllers")

REQUEST_TIMEOUT = 30.0
# kr8s builds its httpx client with httpx's default limits: 100 connections, 20 kept alive.
# Requests in flight stay within the kept-alive ones (no connection churn, a short pool
# queue); the other 80 connections are left to watch streams.
MAX_IN_FLIGHT = 20


# -- errors --------------------------------------------------------------------------------------
class APIError(Exception):
    """A request the API server answered with an error ``Status``."""

    def __init__(self, code: int, reason: str, message: str, body: Any = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.body = body


class RequestTimeout(kr8s.APITimeoutError, TimeoutError):
    """A request got no complete answer within ``REQUEST_TIMEOUT``: safe to retry.

    A ``kr8s.APITimeoutError`` (what a transport timeout raises) and a ``TimeoutError``, so
    callers that catch either keep working."""


# What a caller can retry: the server refused or was too slow, or the connection broke.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    kr8s.APITimeoutError, httpx.HTTPError, OSError, TimeoutError)


def namespace_terminating(exc: BaseException) -> bool:
    """A create refused because its namespace is being deleted: nothing more to do there."""
    if not isinstance(exc, APIError) or exc.code != 403:
        return False
    causes = ((exc.body or {}).get("details") or {}).get("causes") or [] \
        if isinstance(exc.body, dict) else []
    return "because it is being terminated" in exc.message or \
        any(isinstance(c, dict) and c.get("reason") == "NamespaceTerminating" for c in causes)


class Expired(Exception):
    """A watch's resourceVersion is too old (410): the informer must re-list."""


# -- client --------------------------------------------------------------------------------------
def _split(path: str) -> tuple[str, str, str]:
    """``/apis/apps/v1/namespaces/x/deployments`` -> base, version and url for kr8s's call_api."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        return "/api", parts[1], "/".join(parts[2:])
    return "/apis", f"{parts[1]}/{parts[2]}", "/".join(parts[3:])


class Client:
    """Raw JSON requests over one kr8s ``Api`` (its own connection pool)."""

    def __init__(self, api: kr8s.asyncio.Api, kubeconfig: str, *,
                 max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.api = api
        self.kubeconfig = kubeconfig
        self._permits = asyncio.Semaphore(max_in_flight)

    @classmethod
    async def connect(cls, kubeconfig: str) -> Client:
        api = await kr8s.asyncio.Api(bypass_factory=True, kubeconfig=kubeconfig)
        return cls(api, kubeconfig)

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
                raise APIError(response.status_code, status.get("reason", ""),
                               status.get("message", response.text[:200]), status)
            yield response

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
        except APIError as exc:
            if exc.code == 404:
                return None
            raise

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
        except APIError as exc:
            if exc.code == 404 or (exc.code == 409 and uid):
                return False
            raise
        return True

    @contextlib.asynccontextmanager
    async def watch_stream(self, res: Resource, namespace: str | None, params: dict[str, Any]) -> Any:
        async with self._call("GET", res.path(namespace), params=params, stream=True,
                              timeout=httpx.Timeout(None, connect=REQUEST_TIMEOUT)) as response:
            yield response

    async def discover(self) -> list[Resource]:
        """Every top-level resource of every group's preferred version, as discovery lists them."""
        lists = [await self.request("GET", "/api/v1")]
        groups = await self._get_groups()
        for group in groups.get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("groupVersion")
            if not preferred:
                continue
            try:
                lists.append(await self.request("GET", f"/apis/{preferred}"))
            except APIError as exc:
                if exc.code != 404:  # a CRD deleted between the two requests
                    raise
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


# -- informers -----------------------------------------------------------------------------------
class Informer:
    """A cache of one resource kept current by list + watch, calling handlers on every change.

    Handlers get ``(type, obj, old)`` with type ``ADDED``/``MODIFIED``/``DELETED``; they must not
    block (they usually put keys into a ``WorkQueue``). After a re-list, objects that vanished
    meanwhile are reported ``DELETED`` and changed ones ``MODIFIED``, so no change is missed.
    """

    def __init__(self, client: Client, res: Resource, *, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None) -> None:
        self.client = client
        self.res = res
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store: dict[tuple[str | None, str], Obj] = {}
        self.synced = asyncio.Event()
        self.handlers: list[Handler] = []

    def on_change(self, handler: Handler) -> None:
        self.handlers.append(handler)

    def get(self, namespace: str | None, name: str) -> Obj | None:
        return self.store.get((namespace if self.res.namespaced else None, name))

    def items(self, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            return list(self.store.values())
        return [o for (ns, _), o in self.store.items() if ns == namespace]

    def _dispatch(self, kind: str, obj: Obj, old: Obj | None) -> None:
        for handler in self.handlers:
            try:
                handler(kind, obj, old)
            except Exception:  # a handler bug must not kill the informer
                log.exception("%s informer handler failed", self.res)

    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                rv = await self._relist()
                delay = 0.2
                while True:
                    rv = await self._watch(rv)
            except Expired:
                continue
            except (APIError, httpx.HTTPError, kr8s.APITimeoutError, json.JSONDecodeError,
                    ValueError, KeyError) as exc:
                log.debug("%s informer: %s; re-listing in %.1fs", self.res, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _relist(self) -> str:
        items, rv = await self.client.list(self.res, self.namespace,
                                           label_selector=self.label_selector,
                                           field_selector=self.field_selector)
        fresh = {key_of(o) if self.res.namespaced else (None, o["metadata"]["name"]): o
                 for o in items}
        old_store, self.store = self.store, fresh
        for key, old in old_store.items():
            if key not in fresh:
                self._dispatch("DELETED", old, old)
        for key, obj in fresh.items():
            prev = old_store.get(key)
            if prev is None:
                self._dispatch("ADDED", obj, None)
            elif prev["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._dispatch("MODIFIED", obj, prev)
        self.synced.set()
        return rv

    async def _watch(self, rv: str) -> str:
        params: dict[str, Any] = {"watch": "true", "resourceVersion": rv,
                                  "allowWatchBookmarks": "true",
                                  "timeoutSeconds": random.randint(240, 300)}
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        async with self.client.watch_stream(self.res, self.namespace, params) as response:
            async for line in response.aiter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired(obj.get("message", ""))
                    raise APIError(int(obj.get("code") or 0), obj.get("reason", ""),
                                   obj.get("message", ""), obj)
                rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
                if kind == "BOOKMARK":
                    continue
                obj.setdefault("kind", self.res.kind)
                obj.setdefault("apiVersion", self.res.api_version)
                key = (obj["metadata"].get("namespace") if self.res.namespaced else None,
                       obj["metadata"]["name"])
                old = self.store.get(key)
                if kind == "DELETED":
                    self.store.pop(key, None)
                    self._dispatch("DELETED", obj, old)
                else:
                    self.store[key] = obj
                    self._dispatch("ADDED" if old is None else "MODIFIED", obj, old)
        return rv


# -- work queue ----------------------------------------------------------------------------------
class WorkQueue:
    """Keys to reconcile: de-duplicated, one worker per key at a time, retried with back-off.

    ``reconcile(key)`` returning a number asks to be called again after that many seconds.
    """

    def __init__(self, name: str, *, base_delay: float = 0.05, max_delay: float = 30.0) -> None:
        self.name = name
        self._queue: asyncio.Queue[Hashable] = asyncio.Queue()
        self._dirty: set[Hashable] = set()
        self._processing: set[Hashable] = set()
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}
        self._failures: dict[Hashable, int] = {}
        self.base_delay = base_delay
        self.max_delay = max_delay

    def add(self, key: Hashable) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_after(self, key: Hashable, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        timer = self._timers.get(key)
        if timer is not None and not timer.cancelled() and timer.when() <= when:
            return
        if timer is not None:
            timer.cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.add(key)

        self._timers[key] = loop.call_at(when, fire)

    def retry(self, key: Hashable) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        delay = min(self.base_delay * (2 ** n), self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    async def _get(self) -> Hashable:
        key = await self._queue.get()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def _done(self, key: Hashable) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.put_nowait(key)

    async def work(self, reconcile: Callable[[Any], Awaitable[float | None]], *,
                   workers: int = 1) -> None:
        """Run ``workers`` loops handling keys until cancelled."""
        async def worker() -> None:
            while True:
                key = await self._get()
                try:
                    again = await reconcile(key)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    delay = self.retry(key)
                    level = logging.INFO if isinstance(exc, APIError) and exc.code == 409 \
                        else logging.WARNING
                    log.log(level, "%s: %r failed (%s); retrying in %.2fs", self.name, key,
                            exc if isinstance(exc, APIError) else repr(exc), delay,
                            exc_info=not isinstance(exc, APIError | httpx.HTTPError | kr8s.APITimeoutError))
                else:
                    self.forget(key)
                    if again is not None:
                        self.add_after(key, again)
                finally:
                    self._done(key)

        try:
            async with asyncio.TaskGroup() as tg:
                for i in range(workers):
                    tg.create_task(worker(), name=f"{self.name}-worker-{i}")
        finally:
            self.close()


async def run_informers(*informers: Informer) -> None:
    """Run informers (forever) in a task group; use with ``wait_synced``."""
    async with asyncio.TaskGroup() as tg:
        for inf in informers:
            tg.create_task(inf.run(), name=f"informer-{inf.res}")


async def wait_synced(*informers: Informer) -> None:
    for inf in informers:
        await inf.synced.wait()


# -- events --------------------------------------------------------------------------------------
class EventRecorder:
    """Writes core/v1 Events for one component, counting repeats as client-go's recorder does."""

    def __init__(self, client: Client, component: str) -> None:
        self.client = client
        self.component = component
        self._seen: dict[tuple[str, ...], tuple[str, str, int]] = {}

    async def record(self, obj: Obj, type: str, reason: str, message: str, *,
                     action: str | None = None) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), type, reason, message)
        stamp = fmt_time()
        try:
            seen = self._seen.get(key)
            if seen is not None:
                ns, name, count = seen
                try:
                    await self.client.patch(EVENTS, ns, name, {"count": count + 1,
                                                               "lastTimestamp": stamp})
                    self._seen[key] = (ns, name, count + 1)
                    return
                except APIError as exc:
                    if exc.code != 404:
                        raise
            name = f"{meta.get('name', 'unknown')}.{secrets.token_hex(8)}"
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {k: v for k, v in {
                    "kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                    "namespace": meta.get("namespace"), "name": meta.get("name"),
                    "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
                }.items() if v},
                "reason": reason, "message": message, "type": type,
                "source": {"component": self.component},
                "reportingComponent": self.component, "reportingInstance": self.component,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            }
            if action:
                event["action"] = action
            await self.client.create(EVENTS, namespace, event)
            if len(self._seen) > 5000:
                self._seen.clear()
            self._seen[key] = (namespace, name, 1)
        except (APIError, httpx.HTTPError, kr8s.APITimeoutError) as exc:
            # Events are best effort, as in client-go: never fail a reconcile over one.
            log.debug("could not record event %s for %s: %s", reason, meta.get("name"), exc)
