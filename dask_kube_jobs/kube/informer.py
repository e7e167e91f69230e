"""``Informer``: a cache of one resource kept current by list + watch, as client-go's.

It lists, then watches from the list's ``resourceVersion`` with bookmarks, and re-lists on
``410 Gone`` or a dropped stream (``watch.ListThenWatch``). kr8s's own ``watch`` restarts at
the same expired version after a 410 and so never recovers; a controller must re-list instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable

import httpx
import kr8s

from ..contract.api_resources import Resource
from ..contract.objects import Obj, key_of
from .client import Client
from .errors import APIError
from .retry import Backoff
from .watch import ListThenWatch, Relisted, WatchEvent

Handler = Callable[[str, Obj, "Obj | None"], None]
log = logging.getLogger("dask_kube_jobs.local.controllers")


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
        # Re-list after an error, pausing 0.2 s, then twice as long each time up to 10 s; a
        # 410 Gone re-lists at once (ListThenWatch), a successful list resets the pause.
        backoff = Backoff(first=0.2, most=10.0)
        while True:
            try:
                async for event in ListThenWatch(self._list, self._watch):
                    if isinstance(event, Relisted):
                        self._replace(event.items)
                        backoff.reset()
                    else:
                        self._apply(event)
            except (APIError, httpx.HTTPError, kr8s.APITimeoutError, ValueError, KeyError) as exc:
                delay = backoff.next_delay()
                log.debug("%s informer: %s; re-listing in %.1fs", self.res, exc, delay)
                await asyncio.sleep(delay)

    async def _list(self) -> tuple[list[Obj], str]:
        return await self.client.list(self.res, self.namespace,
                                      label_selector=self.label_selector,
                                      field_selector=self.field_selector)

    def _watch(self, rv: str) -> contextlib.AbstractAsyncContextManager[AsyncIterator[str]]:
        return self.client.watch_lines(self.res, self.namespace, rv,
                                       timeout_seconds=random.randint(240, 300),
                                       label_selector=self.label_selector,
                                       field_selector=self.field_selector)

    def _replace(self, items: list[Obj]) -> None:
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

    def _apply(self, event: WatchEvent) -> None:
        obj = event.object
        obj.setdefault("kind", self.res.kind)
        obj.setdefault("apiVersion", self.res.api_version)
        key = (obj["metadata"].get("namespace") if self.res.namespaced else None,
               obj["metadata"]["name"])
        old = self.store.get(key)
        if event.type == "DELETED":
            self.store.pop(key, None)
            self._dispatch("DELETED", obj, old)
        else:
            self.store[key] = obj
            self._dispatch("ADDED" if old is None else "MODIFIED", obj, old)


async def run_informers(*informers: Informer) -> None:
    """Run informers (forever) in a task group; use with ``wait_synced``."""
    async with asyncio.TaskGroup() as tg:
        for inf in informers:
            tg.create_task(inf.run(), name=f"informer-{inf.res}")


async def wait_synced(*informers: Informer) -> None:
    for inf in informers:
        await inf.synced.wait()


