"""The operator's view of its custom objects: what kopf's watch delivered, plus its own writes.

kopf already watches every DaskCluster, DaskWorkerGroup, DaskJob and DaskAutoscaler and hands
each event to the operator (``handlers.py`` feeds them in here), so a reconcile pass can read an
object -- its own or another kind's -- from memory instead of asking the API server each time.
Two gaps separate that view from the server's, and this module closes both without a request:

* **Its own writes.** A status patch or a create answers with the object as written, but the
  watch brings it back a little later; a pass that ran meanwhile on the older copy would redo
  the write (and say its Event twice). So the written copy is kept until the watch shows an
  object at least as new (resourceVersions are compared as numbers, which etcd and the local
  API server both issue; when either is not a number the answer is "unknown" and the caller
  reads the server, as before).
* **Absence.** An object missing from the view may be one the watch has not delivered yet
  (just made, or the operator has just started). Only an object the watch reported deleted is
  *known* to be gone; any other miss is ``UNKNOWN`` and the caller asks the server. So a
  decision that destroys something is never taken on a miss alone.

Objects handed out are the cache's own: callers read them and do not change them (``_loop``
copies its pass's object first).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (namespace, kind, name)

#: A lookup whose answer the cache does not know: read the server.
UNKNOWN: Final = object()

#: How long an own write with no watched copy beside it is trusted (the watch is late or lost).
WRITTEN_TTL = 30.0
#: How long a deletion seen through the watch is remembered (a name reused later is ADDED again).
GONE_TTL = 600.0


def _rv(obj: Mapping[str, Any] | None) -> int | None:
    value = ((obj or {}).get("metadata") or {}).get("resourceVersion")
    return int(value) if isinstance(value, str) and value.isdigit() else None


def at_least_as_new(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool | None:
    """Whether ``a`` is the same version as ``b`` or a later one; None when that cannot be told
    (a resourceVersion that is not a number, as the API allows)."""
    ra, rb = _rv(a), _rv(b)
    if ra is None or rb is None:
        same = (a.get("metadata") or {}).get("resourceVersion") == \
            (b.get("metadata") or {}).get("resourceVersion")
        return True if same else None
    return ra >= rb


def key_of(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", str(obj.get("kind") or ""), meta.get("name") or "")


class ObjectCache:
    """The latest copy of each custom object the operator watches, by (namespace, kind, name)."""

    def __init__(self, *, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._watched: dict[Key, Obj] = {}
        self._written: dict[Key, tuple[Obj, float]] = {}
        self._gone: dict[Key, tuple[Obj, float]] = {}  # -> (its last metadata, when)
        self._next_prune = 0.0

    def __len__(self) -> int:
        return len(self._watched)

    # -- feeding ----------------------------------------------------------------------------
    def observe(self, kind: str, event_type: str | None, obj: Obj) -> None:
        """A watch event (``event_type`` None: kopf's initial listing)."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", kind, meta.get("name") or "")
        if event_type == "DELETED":
            self._watched.pop(key, None)
            written = self._written.get(key)
            if written is not None and at_least_as_new(obj, written[0]) is False:
                return  # written after this deletion: a new object of that name
            self._written.pop(key, None)
            self._gone[key] = ({"metadata": {"resourceVersion": meta.get("resourceVersion")}},
                               self._clock())
            self._prune()
            return
        self._watched[key] = obj
        self._gone.pop(key, None)
        written = self._written.get(key)
        if written is not None and at_least_as_new(obj, written[0]):
            del self._written[key]

    def wrote(self, obj: Obj | None) -> None:
        """An object as the API server answered a write of it (create, patch)."""
        if not obj or not obj.get("kind") or not (obj.get("metadata") or {}).get("name"):
            return
        key = key_of(obj)
        watched = self._watched.get(key)
        if watched is not None and at_least_as_new(watched, obj):
            return  # the watch is already there
        self._written[key] = (obj, self._clock())
        self._prune()

    # -- reading ----------------------------------------------------------------------------
    def lookup(self, kind: str, namespace: str, name: str) -> Any:
        """The object (read-only), None if the watch saw it deleted, or ``UNKNOWN``."""
        key = (namespace, kind, name)
        watched = self._watched.get(key)
        written = self._written.get(key)
        if written is not None:
            obj, when = written
            if watched is not None:
                newer = at_least_as_new(watched, obj)
                if newer is None:
                    return UNKNOWN
                return watched if newer else obj
            gone = self._gone.get(key)
            if gone is not None:
                after = at_least_as_new(gone[0], obj)
                if after is None:
                    return UNKNOWN
                if after:
                    return None  # written before the deletion the watch reported
                return obj  # a new object of that name, made after the deletion
            if self._clock() - when <= WRITTEN_TTL:
                return obj
            del self._written[key]
        if watched is not None:
            return watched
        if key in self._gone:
            return None
        return UNKNOWN

    def items(self, kind: str, namespace: str) -> list[Obj]:
        """Every watched object of ``kind`` in ``namespace`` (own writes not yet seen aside)."""
        return [o for (ns, k, _), o in self._watched.items() if ns == namespace and k == kind]

    def forget_written(self, key: Key) -> None:
        self._written.pop(key, None)

    def _prune(self) -> None:
        """Drop old deletions and stale own writes, at most once a minute."""
        now = self._clock()
        if now < self._next_prune:
            return
        self._next_prune = now + 60.0
        self._gone = {k: v for k, v in self._gone.items() if now - v[1] <= GONE_TTL}
        self._written = {k: v for k, v in self._written.items() if now - v[1] <= WRITTEN_TTL}
