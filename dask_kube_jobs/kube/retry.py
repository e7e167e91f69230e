"""Retrying what failed for a passing reason: bounded exponential back-off with jitter.

One rule for every loop that waits before trying again (an informer re-listing, a work queue's
key, the operator's daemons, the job API's requests): the n-th pause is ``first * 2**n``, never
more than ``most``, spread by ``jitter`` (0.25: anywhere from 75 % to 125 %) so that many
clients that failed together do not come back together. Only transient errors are retried
(:func:`is_transient`): a refusal such as 404 or 422 is an answer, and retrying it only delays
the report.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import kr8s

from .errors import APIError, ServerError, TooManyRequests

T = TypeVar("T")

#: Errors of the connection rather than answers of the server.
NETWORK_ERRORS: tuple[type[BaseException], ...] = (httpx.HTTPError, kr8s.APITimeoutError, OSError)


def exponential_delay(failures: int, *, first: float, most: float,
                      jitter: float = 0.0) -> float:
    """The pause after ``failures`` failures in a row (0: the first pause is ``first``)."""
    delay = min(first * 2 ** max(0, failures), most)
    return delay * random.uniform(1 - jitter, 1 + jitter) if jitter else delay


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the network, a timeout, throttling (429), a request timeout (408) or a
    server error (5xx)."""
    if isinstance(exc, APIError):
        return isinstance(exc, TooManyRequests | ServerError) or exc.code == 408
    return isinstance(exc, NETWORK_ERRORS)


class Backoff:
    """The pauses of one retry loop, bounded twice: no pause longer than ``most`` seconds, and,
    with ``give_up_after``, after that many seconds of failures in a row the error is raised
    (a cluster gone for good is reported, not waited on for ever). :meth:`reset` after a
    success."""

    def __init__(self, *, first: float, most: float, jitter: float = 0.0,
                 give_up_after: float | None = None) -> None:
        self.first, self.most, self.jitter = first, most, jitter
        self.give_up_after = give_up_after
        self.reset()

    def reset(self) -> None:
        self.failures = 0
        self._since: float | None = None

    def next_delay(self) -> float:
        """The pause to make now; the next one will be twice as long (up to ``most``)."""
        delay = exponential_delay(self.failures, first=self.first, most=self.most,
                                  jitter=self.jitter)
        self.failures += 1
        return delay

    async def pause(self, exc: BaseException | None = None) -> None:
        """Sleep before the next try, or raise ``exc`` once failures have lasted too long."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        elif exc is not None and self.give_up_after is not None and \
                now - self._since >= self.give_up_after:
            raise exc
        await asyncio.sleep(self.next_delay())


async def retrying(call: Callable[[], Awaitable[T]], backoff: Backoff, *,
                   transient: Callable[[BaseException], bool] = is_transient) -> T:
    """``await call()``, again after each ``transient`` error, pausing as ``backoff`` says."""
    while True:
        try:
            return await call()
        except Exception as exc:
            if not transient(exc):
                raise
            await backoff.pause(exc)
