"""Watches: decoding the event stream, and list-then-watch as client-go's reflector does it.

A watch answers with one JSON object per line, ``{"type": ..., "object": ...}``. The decoder
(:func:`decode_event`) is pure; :class:`ListThenWatch` lists, then watches from the list's
``resourceVersion`` with bookmarks, resumes from the last version seen when the server ends a
watch (``timeoutSeconds``), and lists again on ``410 Gone``. The transport is the caller's (a
``kube.Client``, or the kubelet's own kr8s connection): two callables, one that lists and one
that opens a watch from a version. Errors other than the ones that mean "list again" reach the
caller, which chooses its back-off and starts a new iterator.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..contract.objects import Obj
from .errors import Gone, api_error

#: A watch's event types: three changes and a bookmark (a version to resume from, no change).
CHANGES = ("ADDED", "MODIFIED", "DELETED")


@dataclass(frozen=True)
class WatchEvent:
    """One change: ``type`` is ``ADDED``, ``MODIFIED``, ``DELETED`` or ``BOOKMARK``."""

    type: str
    object: Obj
    resource_version: str | None


@dataclass(frozen=True)
class Relisted:
    """A fresh list: every object there is now (the ones missing from it are gone)."""

    items: list[Obj]
    resource_version: str


def decode_event(line: str | bytes) -> WatchEvent | None:
    """One line of a watch stream as an event; None for a blank (keep-alive) line.

    An ``ERROR`` event is raised as the API error its ``Status`` describes (:class:`Gone` for
    an expired version); a line that is not a watch event raises ``ValueError``.
    """
    if not line.strip():
        return None
    event = json.loads(line)
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError(f"not a watch event: {line[:200]!r}")
    obj = event.get("object") or {}
    if not isinstance(obj, dict):
        raise ValueError(f"not a watch event: {line[:200]!r}")
    if event["type"] == "ERROR":
        raise api_error(int(obj.get("code") or 0), obj)
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return WatchEvent(event["type"], obj, str(rv) if rv else None)


ListFn = Callable[[], Awaitable[tuple[list[Obj], str]]]
WatchFn = Callable[[str], contextlib.AbstractAsyncContextManager[AsyncIterator[Any]]]


class ListThenWatch:
    """``async for event in ListThenWatch(list_, watch)``: a :class:`Relisted` first, then each
    :class:`WatchEvent` (bookmarks are followed, not yielded), for ever.

    ``list_()`` returns the items and the list's resourceVersion; ``watch(rv)`` is an async
    context manager yielding the stream's lines. With ``resource_version`` the first watch
    starts from it without a list. An ``ERROR`` event of a class in ``relist_on`` (by default
    :class:`Gone`) means list again; ``resource_version`` is always the last version seen, so
    a caller that starts again after an error may resume from it.
    """

    def __init__(self, list_: ListFn, watch: WatchFn, *, resource_version: str | None = None,
                 relist_on: tuple[type[BaseException], ...] = (Gone,)) -> None:
        self._list = list_
        self._watch = watch
        self.resource_version = resource_version
        self.relist_on = relist_on

    def __aiter__(self) -> AsyncIterator[Relisted | WatchEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[Relisted | WatchEvent]:
        while True:
            if self.resource_version is None:
                items, rv = await self._list()
                self.resource_version = rv
                yield Relisted(items, rv)
            try:
                async with self._watch(self.resource_version) as lines:
                    async for line in lines:
                        event = decode_event(line)
                        if event is None:
                            continue
                        self.resource_version = event.resource_version or self.resource_version
                        if event.type != "BOOKMARK":
                            yield event
            except self.relist_on:
                self.resource_version = None
            # else the server ended the watch (timeoutSeconds): resume from the version seen
