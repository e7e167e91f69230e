"""Watch streams: newline-delimited JSON events over a chunked HTTP response.

A watch subscribes to the store before it reads anything, and both happen without awaiting, so
no event can fall between the initial state and the live stream. Selector-filtered watches see
an object leave their view as ``DELETED`` and enter it as ``ADDED``, as on a real apiserver,
which is what informers expect. Bookmarks carry only the current resourceVersion.

An event line wraps the object's stored JSON as it is (``stored.Stored``): nothing is encoded
per watcher or per event, unless the watch asks for another version than the object was
written at, or for Table rows.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import errors, tables
from .fieldselectors import FieldSelector, parse_field_selector
from .registry import ResourceType
from .selectors import LabelSelector, parse_label_selector
from .store import Event, Obj, Store
from .stored import Stored

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

    @classmethod
    def from_query(cls, rtype: ResourceType, version: str, namespace: str | None,
                   q: Mapping[str, str], *, accept: str | None,
                   bookmark_interval: float) -> WatchRequest:
        """A watch as its query string asks for it (and its Accept header: Table rows)."""
        try:
            timeout = float(q.get("timeoutSeconds") or 1800)
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
        table_version = tables.wants_table(accept)
        return cls(
            rtype=rtype, version=version, namespace=namespace,
            labels=parse_label_selector(q.get("labelSelector", "")),
            fields=parse_field_selector(q.get("fieldSelector", ""), group=rtype.group,
                                        plural=rtype.plural),
            resource_version=q.get("resourceVersion", ""), timeout=timeout,
            bookmarks=q.get("allowWatchBookmarks") in ("true", "1"),
            send_initial_events=q.get("sendInitialEvents") == "true",
            bookmark_interval=bookmark_interval,
            encode=table_encoder(rtype, version, table_version) if table_version else None,
        )


#: The start of an event line, before the object's stored JSON.
_PREFIXES = {t: b'{"type":"' + t.encode() + b'","object":' for t in ("ADDED", "MODIFIED", "DELETED")}


def _line(etype: str, obj: Obj) -> bytes:
    return json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _matches(req: WatchRequest, entry: Stored | None) -> bool:
    return entry is not None and entry.matches(req.labels, req.fields)


def _visible_type(req: WatchRequest, event: Event) -> str | None:
    """How an event looks through the watch's selectors, or None if it is invisible."""
    if req.labels.empty and req.fields.empty:
        return event.type
    new_match = _matches(req, event.new)
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
        initial: list[Stored] = []
        replay: list[Event] = []
        rv = req.resource_version
        if rv in ("", "0") or req.send_initial_events:
            initial = [e for e in store.entries(key, namespace) if e.matches(req.labels, req.fields)]
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
            replay = [e for e in events if namespace is None or e.new.namespace == namespace]
        start_rv = store.resource_version
        kind = req.rtype.kind

        async def emit(etype: str, entry: Stored) -> None:
            if req.encode is not None:
                obj = entry.decode()
                obj["apiVersion"] = api_version
                await write(req.encode(etype, obj))
            else:
                await write(b"".join((_PREFIXES[etype], entry.json_as(api_version, kind), b"}\n")))

        for entry in initial:
            await emit("ADDED", entry)
        for event in replay:
            visible = _visible_type(req, event)
            if visible:
                await emit(visible, event.new)
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
                await emit(visible, event.new)
    finally:
        store.unsubscribe(watcher)


def table_encoder(rtype: ResourceType, version: str, table_version: str) -> Callable[[str, Obj], bytes]:
    """Watch events whose objects are one-row Tables, for ``kubectl get -w``."""
    first = True

    def encode(etype: str, obj: Obj) -> bytes:
        nonlocal first
        event: dict[str, Any] = tables.table_watch_event(rtype, etype, obj, version,
                                                  table_version=table_version, headers=first)
        first = False  # the apiserver sends column definitions with the first event only
        return json.dumps(event, separators=(",", ":")).encode() + b"\n"

    return encode
