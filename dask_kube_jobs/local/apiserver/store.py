"""In-memory object storage with one global resourceVersion and a watch event log.

This plays etcd plus the apiserver's watch cache. Every write gets the next integer of a single
counter, shared across kinds as on a real cluster, so a list's ``resourceVersion`` can seed a
watch of any kind. Each resource keeps a bounded log of recent events: a watch from version N
replays what came after N, and a watch from a version older than the log answers 410 Expired,
which is what makes kr8s and kopf re-list.

Given a ``SQLiteBackend`` (the local control plane always gives one), the store is write-through:
every write reaches the file before memory changes or a watcher hears of it, and a new store
starts from what the file holds. Reads never touch the file. A restarted store keeps no events
from before its start (``started_rv``), so older watches get 410 Gone, as from a restarted
kube-apiserver. Without a backend (unit tests) everything lives and dies in memory.

Objects are plain dicts. The store owns what it holds: callers get the stored dict and must copy
it before changing it (``copy.deepcopy``); writers hand over a finished object.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .sqlite_backend import SQLiteBackend

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]


@dataclass
class Event:
    """One change: ``ADDED``, ``MODIFIED`` or ``DELETED``, with the object before it (if any)."""

    type: str
    rv: int
    obj: Obj
    old: Obj | None = None
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False)

    def encoded(self, api_version: str, event_type: str | None = None) -> bytes:
        """The watch line for this event, serialized once per api version and shared by watchers."""
        etype = event_type or self.type
        cache_key = f"{etype}|{api_version}"
        line = self._encoded.get(cache_key)
        if line is None:
            obj = self.obj if event_type != "DELETED" or self.type == "DELETED" else self.obj
            if obj.get("apiVersion") != api_version:
                obj = {**obj, "apiVersion": api_version}
            line = json.dumps({"type": etype, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self._encoded[cache_key] = line
        return line


class Watcher:
    """A subscriber to one resource's events, optionally limited to a namespace."""

    def __init__(self, key: Key, namespace: str | None, maxsize: int) -> None:
        self.key = key
        self.namespace = namespace
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.maxsize = maxsize
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.maxsize:
            # A watcher too slow to keep up is cut off, as kube-apiserver does; it re-lists.
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class ResourceLog:
    """Objects of one resource plus its recent events."""

    def __init__(self, window: int) -> None:
        self.objects: dict[tuple[str, str], Obj] = {}
        self.events: collections.deque[Event] = collections.deque(maxlen=window)
        #: the highest resourceVersion that fell out of the log; watches from below it get 410
        self.evicted_rv = 0

    def record(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.evicted_rv = self.events[0].rv
        self.events.append(event)


class Store:
    def __init__(self, *, event_window: int = 5000, watcher_queue: int = 100_000,
                 backend: SQLiteBackend | None = None) -> None:
        self._rv = 0
        self._logs: dict[Key, ResourceLog] = {}
        self._watchers: dict[Key, set[Watcher]] = collections.defaultdict(set)
        self._window = event_window
        self._watcher_queue = watcher_queue
        self._backend = backend
        #: the oldest version any log still knows about; a restart-free server starts at 0
        self.started_rv = 0
        if backend is not None:
            self._rv, stored = backend.load()
            for key, obj in stored:
                meta = obj["metadata"]
                self._log(key).objects[(meta.get("namespace") or "", meta["name"])] = obj
            self.started_rv = self._rv

    def close(self) -> None:
        """Let go of the backing file (the store must not be written to afterwards)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- versions ---------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def next_rv(self) -> int:
        self._rv += 1
        return self._rv

    # -- reads ------------------------------------------------------------------------------
    def _log(self, key: Key) -> ResourceLog:
        log = self._logs.get(key)
        if log is None:
            log = self._logs[key] = ResourceLog(self._window)
        return log

    def get(self, key: Key, namespace: str | None, name: str) -> Obj | None:
        return self._log(key).objects.get((namespace or "", name))

    def list(self, key: Key, namespace: str | None = None) -> list[Obj]:
        """Objects of a resource, in (namespace, name) order, optionally in one namespace."""
        objects = self._log(key).objects
        items = sorted(objects.items())
        if namespace:
            return [o for (ns, _), o in items if ns == namespace]
        return [o for _, o in items]

    def iter_all(self) -> Iterator[tuple[Key, Obj]]:
        for key, log in list(self._logs.items()):
            for obj in list(log.objects.values()):
                yield key, obj

    def last_event(self, key: Key) -> Event | None:
        """The newest event of a resource: a cheap change stamp for caches derived from it."""
        log = self._logs.get(key)
        return log.events[-1] if log and log.events else None

    def count(self, key: Key) -> int:
        return len(self._log(key).objects)

    def keys(self) -> list[Key]:
        return list(self._logs)

    # -- writes -----------------------------------------------------------------------------
    def put(self, key: Key, obj: Obj, *, old: Obj | None = None) -> Event:
        """Store ``obj`` (its resourceVersion already set) and tell watchers."""
        meta = obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        log = self._log(key)
        etype = "MODIFIED" if ident in log.objects else "ADDED"
        if self._backend is not None:
            self._backend.put(key, ident, obj, self._rv)
        log.objects[ident] = obj
        event = Event(etype, int(meta["resourceVersion"]), obj, old)
        self._publish(key, log, event)
        return event

    def remove(self, key: Key, obj: Obj) -> Event:
        """Delete ``obj``; the DELETED event carries it with a fresh resourceVersion."""
        meta = obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        log = self._log(key)
        final = {**obj, "metadata": {**meta, "resourceVersion": str(self.next_rv())}}
        if self._backend is not None:
            self._backend.delete(key, ident, self._rv)
        log.objects.pop(ident, None)
        event = Event("DELETED", int(final["metadata"]["resourceVersion"]), final, obj)
        self._publish(key, log, event)
        return event

    def drop_resource(self, key: Key) -> list[Obj]:
        """Forget a whole resource (its CRD went away); returns what it held."""
        if self._backend is not None:
            self._backend.drop_resource(key, self._rv)
        log = self._logs.pop(key, None)
        for w in list(self._watchers.get(key, ())):
            w.queue.put_nowait(None)
        self._watchers.pop(key, None)
        return list(log.objects.values()) if log else []

    def _publish(self, key: Key, log: ResourceLog, event: Event) -> None:
        log.record(event)
        ns = event.obj["metadata"].get("namespace") or ""
        for w in self._watchers.get(key, ()):
            if w.namespace is None or w.namespace == ns:
                w.offer(event)

    # -- watches ----------------------------------------------------------------------------
    def subscribe(self, key: Key, namespace: str | None) -> Watcher:
        w = Watcher(key, namespace, self._watcher_queue)
        self._watchers[key].add(w)
        return w

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.key, set()).discard(watcher)

    def watcher_count(self) -> int:
        return sum(len(ws) for ws in self._watchers.values())

    def events_since(self, key: Key, rv: int) -> list[Event] | None:
        """Events after ``rv``, or None when ``rv`` is older than the log keeps (410)."""
        log = self._log(key)
        if rv < log.evicted_rv or rv < self.started_rv:
            return None
        return [e for e in log.events if e.rv > rv]
