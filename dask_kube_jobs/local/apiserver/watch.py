"""Watch streams: newline-delimited JSON events over a chunked HTTP response.

A watch subscribes to the store before it reads anything, and both happen without awaiting, so
no event can fall between the initial state and the live stream. Selector-filtered watches see
an object leave their view as ``DELETED`` and enter it as ``ADDED``, as on a real apiserver,
which is what informers expect. Bookmarks carry only the current resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from . import errors
from .fieldselectors import FieldSelector
from .registry import ResourceType
from .selectors import LabelSelector
from .store import Event, Obj, Store

Writer = Callable[[bytes], Awaitable[None]]


@dataclass
class WatchRequest:
    rtype: ResourceType
    version: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    resource_version: str
    timeout: float
    bookmarks: bool
    send_initial_events: bool
    bookmark_interval: float = 15.0
    #: turns each event into bytes; the default writes plain JSON watch events
    encode: Callable[[str, Obj], bytes] | None = None


def _line(etype: str, obj: Obj) -> bytes:
    return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _matches(req: WatchRequest, obj: Obj | None) -> bool:
    if obj is None:
        return False
    return req.labels.matches(obj["metadata"].get("labels") or {}) and req.fields.matches(obj)


def _visible_type(req: WatchRequest, event: Event) -> str | None:
    """How an event looks through the watch's selectors, or None if it is invisible."""
    new_match = _matches(req, event.obj)
    if event.type == "DELETED":
        return "DELETED" if new_match or _matches(req, event.old) else None
    if event.type == "ADDED":
        return "ADDED" if new_match else None
    old_match = _matches(req, event.old)
    if new_match:
        return "MODIFIED" if old_match else "ADDED"
    return "DELETED" if old_match else None


async def serve_watch(store: Store, req: WatchRequest, write: Writer) -> None:
    """Stream events to ``write`` until the timeout, the client leaving or the store closing."""
    key = req.rtype.key
    api_version = req.rtype.api_version(req.version)
    namespace = req.namespace if req.rtype.namespaced else None
    watcher = store.subscribe(key, namespace)
    try:
        initial: list[tuple[str, Obj]] = []
        replay: list[Event] = []
        rv = req.resource_version
        if rv in ("", "0") or req.send_initial_events:
            for obj in store.list(key, namespace):
                if _matches(req, obj):
                    initial.append(("ADDED", obj))
        else:
            try:
                since = int(rv)
            except ValueError:
                raise errors.bad_request(f'invalid resourceVersion "{rv}"') from None
            events = store.events_since(key, since)
            if events is None:
                status = errors.gone(f"too old resource version: {since} ({store.resource_version})").status()
                await write(_line("ERROR", status))
                return
            replay = [e for e in events if namespace is None or
                      (e.obj["metadata"].get("namespace") or "") == namespace]
        start_rv = store.resource_version

        async def emit(etype: str, obj: Obj, event: Event | None = None) -> None:
            if req.encode is not None:
                out = obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}
                await write(req.encode(etype, out))
            elif event is not None:
                await write(event.encoded(api_version, etype))
            else:
                out = obj if obj.get("apiVersion") == api_version else {**obj, "apiVersion": api_version}
                await write(_line(etype, out))

        for etype, obj in initial:
            await emit(etype, obj)
        for event in replay:
            visible = _visible_type(req, event)
            if visible:
                await emit(visible, event.obj, event)
        if req.send_initial_events and req.bookmarks:
            await write(_line("BOOKMARK", {
                "kind": req.rtype.kind, "apiVersion": api_version,
                "metadata": {"resourceVersion": str(start_rv),
                             "annotations": {"k8s.io/initial-events-end": "true"}}}))
        deadline = time.monotonic() + req.timeout
        next_bookmark = time.monotonic() + req.bookmark_interval
        while True:
            now = time.monotonic()
            wait = deadline - now
            if req.bookmarks:
                wait = min(wait, next_bookmark - now)
            if wait <= 0:
                if now >= deadline:
                    return
                await write(_line("BOOKMARK", {
                    "kind": req.rtype.kind, "apiVersion": api_version,
                    "metadata": {"resourceVersion": str(store.resource_version)}}))
                next_bookmark = now + req.bookmark_interval
                continue
            try:
                event = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
            except TimeoutError:
                continue
            if event is None:
                if watcher.overflowed:
                    status = errors.gone("the watch fell too far behind; re-list").status()
                    await write(_line("ERROR", status))
                return
            if event.rv <= start_rv:
                continue
            visible = _visible_type(req, event)
            if visible:
                await emit(visible, event.obj, event)
    finally:
        store.unsubscribe(watcher)


def table_encoder(rtype: ResourceType, version: str, table_version: str) -> Callable[[str, Obj], bytes]:
    """Watch events whose objects are one-row Tables, for ``kubectl get -w``."""
    from .tables import table_watch_event

    first = True

    def encode(etype: str, obj: Obj) -> bytes:
        nonlocal first
        event: dict[str, Any] = table_watch_event(rtype, etype, obj, version,
                                                  table_version=table_version, headers=first)
        first = False  # the apiserver sends column definitions with the first event only
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"

    return encode
