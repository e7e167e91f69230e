"""Object storage with one global resourceVersion and a watch event log.

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

Each object is kept once, as its JSON (``stored.Stored``): the file, the event log, lists and
watches all share those bytes. ``get`` and ``list`` decode them, so a caller owns the dicts it
gets and may change them; writers hand over a finished object, which the store encodes. A
resource's names are also kept in sorted order, so a list neither sorts nor re-encodes.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
from collections.abc import Iterator
from typing import Any

from .sqlite_backend import SQLiteBackend
from .stored import Stored

Key = tuple[str, str]  # (group, plural)
Ident = tuple[str, str]  # (namespace or "", name)
Obj = dict[str, Any]


class Event:
    """One change: ``ADDED``, ``MODIFIED`` or ``DELETED``, with the object before it (if any).

    ``new`` is the object the store now holds (the same ``Stored``, not a copy); for a
    deletion, the object as it went, with the deletion's resourceVersion."""

    __slots__ = ("type", "rv", "new", "old")

    def __init__(self, type: str, rv: int, new: Stored, old: Stored | None = None) -> None:
        self.type, self.rv, self.new, self.old = type, rv, new, old

    @property
    def obj(self) -> Obj:
        """The changed object, decoded (a fresh dict)."""
        return self.new.decode()


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
    """Objects of one resource, their names in order, and its recent events."""

    def __init__(self, window: int) -> None:
        self.objects: dict[Ident, Stored] = {}
        #: the keys of ``objects``, sorted: lists walk it instead of sorting every time
        self.order: list[Ident] = []
        self.events: collections.deque[Event] = collections.deque(maxlen=window)
        #: the highest resourceVersion that fell out of the log; watches from below it get 410
        self.evicted_rv = 0

    def set(self, ident: Ident, entry: Stored) -> None:
        if ident not in self.objects:
            bisect.insort(self.order, ident)
        self.objects[ident] = entry

    def pop(self, ident: Ident) -> None:
        if self.objects.pop(ident, None) is not None:
            i = bisect.bisect_left(self.order, ident)
            del self.order[i]

    def entries(self, namespace: str | None, after: Ident | None = None) -> Iterator[Stored]:
        """Objects in (namespace, name) order, optionally of one namespace, after ``after``."""
        order, lo, hi = self.order, 0, len(self.order)
        if namespace:
            lo = bisect.bisect_left(order, (namespace,))
            hi = bisect.bisect_left(order, (namespace + "\0",))
        if after is not None:
            lo = max(lo, bisect.bisect_right(order, after))
        objects = self.objects
        for i in range(lo, hi):
            yield objects[order[i]]

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
            for key, raw in stored:
                entry = Stored.from_raw(raw)
                log = self._log(key)
                log.objects[entry.ident] = entry
            for log in self._logs.values():
                log.order = sorted(log.objects)
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

    def entry(self, key: Key, namespace: str | None, name: str) -> Stored | None:
        """The stored form of one object (its JSON and labels), without decoding it."""
        log = self._logs.get(key)
        return log.objects.get((namespace or "", name)) if log else None

    def contains(self, key: Key, namespace: str | None, name: str) -> bool:
        return self.entry(key, namespace, name) is not None

    def get(self, key: Key, namespace: str | None, name: str) -> Obj | None:
        """One object, decoded: a fresh dict the caller may change."""
        entry = self.entry(key, namespace, name)
        return entry.decode() if entry is not None else None

    def entries(self, key: Key, namespace: str | None = None,
                after: Ident | None = None) -> Iterator[Stored]:
        """Stored objects of a resource in (namespace, name) order, optionally in one namespace
        and only those after ``after``. Iterate without awaiting: writes change the order."""
        log = self._logs.get(key)
        return log.entries(namespace, after) if log else iter(())

    def list(self, key: Key, namespace: str | None = None) -> list[Obj]:
        """Objects of a resource, decoded, in (namespace, name) order, optionally in one namespace."""
        return [entry.decode() for entry in self.entries(key, namespace)]

    def iter_all(self) -> Iterator[tuple[Key, Obj]]:
        for key, log in list(self._logs.items()):
            for entry in list(log.objects.values()):
                yield key, entry.decode()

    def last_event(self, key: Key) -> Event | None:
        """The newest event of a resource: a cheap change stamp for caches derived from it."""
        log = self._logs.get(key)
        return log.events[-1] if log and log.events else None

    def count(self, key: Key) -> int:
        log = self._logs.get(key)
        return len(log.objects) if log else 0

    def keys(self) -> list[Key]:
        return list(self._logs)

    # -- writes -----------------------------------------------------------------------------
    def put(self, key: Key, obj: Obj) -> Event:
        """Store ``obj`` (its resourceVersion already set) and tell watchers."""
        entry = Stored.of(obj)
        ident = entry.ident
        log = self._log(key)
        old = log.objects.get(ident)
        if self._backend is not None:
            self._backend.put(key, ident, entry.raw, self._rv)
        log.set(ident, entry)
        event = Event("MODIFIED" if old is not None else "ADDED",
                      int(obj["metadata"]["resourceVersion"]), entry, old)
        self._publish(key, log, event)
        return event

    def remove(self, key: Key, obj: Obj) -> Event:
        """Delete ``obj``; the DELETED event carries it with a fresh resourceVersion."""
        meta = obj["metadata"]
        ident = (meta.get("namespace") or "", meta["name"])
        log = self._log(key)
        old = log.objects.get(ident)
        rv = self.next_rv()
        final = Stored.of({**obj, "metadata": {**meta, "resourceVersion": str(rv)}})
        if self._backend is not None:
            self._backend.delete(key, ident, self._rv)
        log.pop(ident)
        event = Event("DELETED", rv, final, old if old is not None else Stored.of(obj))
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
        return [entry.decode() for entry in log.objects.values()] if log else []

    def _publish(self, key: Key, log: ResourceLog, event: Event) -> None:
        log.record(event)
        ns = event.new.namespace
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
