"""``WorkQueue``: client-go's rate-limited queue of keys to reconcile.

A key is queued at most once, never handled by two workers at a time, and retried with
exponential back-off after an error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import httpx
import kr8s

from .errors import APIError, Conflict
from .retry import exponential_delay

log = logging.getLogger("dask_kube_jobs.local.controllers")


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
        delay = exponential_delay(n, first=self.base_delay, most=self.max_delay)
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
                    level = logging.INFO if isinstance(exc, Conflict) else logging.WARNING
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
