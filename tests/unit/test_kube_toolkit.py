"""The client toolkit's pure parts: errors by status, the watch decoder, list-then-watch and the
retry helper (the HTTP parts are in test_kube_client.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dask_kube_jobs import kube
from dask_kube_jobs.kube import (
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
    api_error,
)

# -- errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("code,reason,cls", [
    (400, "BadRequest", BadRequest), (401, "Unauthorized", Unauthorized),
    (403, "Forbidden", Forbidden), (404, "NotFound", NotFound),
    (405, "MethodNotAllowed", MethodNotAllowed), (409, "Conflict", Conflict),
    (409, "AlreadyExists", AlreadyExists), (410, "Expired", Gone), (422, "Invalid", Invalid),
    (429, "TooManyRequests", TooManyRequests), (500, "InternalError", ServerError),
    (503, "ServiceUnavailable", ServerError), (504, "Timeout", ServerError),
    (418, "Teapot", APIError),
])
def test_each_status_has_its_class(code: int, reason: str, cls: type[APIError]) -> None:
    status = {"kind": "Status", "code": code, "reason": reason, "message": f"said {code}"}
    exc = api_error(code, status)
    assert type(exc) is cls
    assert (exc.code, exc.reason, exc.message, exc.body) == (code, reason, f"said {code}", status)
    assert str(exc) == f"{code} {reason}: said {code}"


def test_already_exists_is_a_conflict_and_a_conflict_is_not_already_exists() -> None:
    assert isinstance(api_error(409, {"reason": "AlreadyExists"}), Conflict)
    assert not isinstance(api_error(409, {"reason": "Conflict"}), AlreadyExists)


def test_an_answer_without_a_status_keeps_the_code_and_the_text() -> None:
    exc = api_error(502, "<html>bad gateway</html>", "<html>bad gateway</html>")
    assert isinstance(exc, ServerError)
    assert (exc.reason, exc.message, exc.body) == ("", "<html>bad gateway</html>", {})


def test_namespace_terminating_is_a_forbidden_create() -> None:
    refused = api_error(403, {"reason": "Forbidden", "message": 'pods "x" is forbidden: unable to '
                              "create new content in namespace n because it is being terminated"})
    assert kube.namespace_terminating(refused)
    assert not kube.namespace_terminating(api_error(409, {"message": "being terminated"}))


# -- the watch decoder -----------------------------------------------------------------------

def line(kind: str, obj: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "object": obj})


def test_decoding_changes_and_bookmarks() -> None:
    event = kube.decode_event(line("ADDED", {"metadata": {"name": "a", "resourceVersion": "7"}}))
    assert event == kube.WatchEvent("ADDED", {"metadata": {"name": "a", "resourceVersion": "7"}}, "7")
    bookmark = kube.decode_event(line("BOOKMARK", {"metadata": {"resourceVersion": "9"}}).encode())
    assert bookmark is not None and (bookmark.type, bookmark.resource_version) == ("BOOKMARK", "9")
    assert kube.decode_event("  \n") is None  # a keep-alive


@pytest.mark.parametrize("code,cls", [(410, Gone), (500, ServerError), (403, Forbidden)])
def test_an_error_event_is_raised_as_its_status(code: int, cls: type[APIError]) -> None:
    with pytest.raises(cls) as caught:
        kube.decode_event(line("ERROR", {"kind": "Status", "code": code, "reason": "R",
                                         "message": "too old resource version"}))
    assert caught.value.message == "too old resource version"


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"object": {}}', '{"type": "ADDED", "object": 3}'])
def test_what_is_not_a_watch_event(text: str) -> None:
    with pytest.raises(ValueError):
        kube.decode_event(text)


# -- list then watch -------------------------------------------------------------------------

class Script:
    """A list answer and scripted watch streams; records each request's resourceVersion."""

    def __init__(self, streams: list[list[str]]) -> None:
        self.streams = streams
        self.requests: list[str | None] = []
        self.lists = 0

    async def list(self) -> tuple[list[dict[str, Any]], str]:
        self.lists += 1
        self.requests.append(None)
        return [{"metadata": {"name": f"listed{self.lists}"}}], str(10 * self.lists)

    @contextlib.asynccontextmanager
    async def watch(self, rv: str) -> AsyncIterator[AsyncIterator[str]]:
        self.requests.append(rv)
        lines = self.streams.pop(0) if self.streams else None

        async def gen() -> AsyncIterator[str]:
            if lines is None:
                await asyncio.sleep(3600)
            for item in lines or []:
                yield item
        yield gen()


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv}}


async def take(stream: kube.ListThenWatch, n: int) -> list[Any]:
    out: list[Any] = []
    async for event in stream:
        out.append(event)
        if len(out) == n:
            break
    return out


async def test_list_then_watch_resumes_follows_bookmarks_and_relists_on_gone() -> None:
    script = Script([
        [line("ADDED", obj("a", "11")), line("BOOKMARK", obj("", "12"))],  # the server ends it
        [line("MODIFIED", obj("a", "13")), line("ERROR", {"code": 410, "reason": "Expired"})],
        [line("DELETED", obj("a", "21"))],
    ])
    stream = kube.ListThenWatch(script.list, script.watch)
    events = await take(stream, 5)
    assert [type(e).__name__ for e in events] == ["Relisted", "WatchEvent", "WatchEvent",
                                                  "Relisted", "WatchEvent"]
    assert [e.type for e in events if isinstance(e, kube.WatchEvent)] == ["ADDED", "MODIFIED",
                                                                          "DELETED"]
    # resumed after the bookmark from its version, listed again after the 410
    assert script.requests == [None, "10", "12", None, "20"]
    assert stream.resource_version == "21"


async def test_other_errors_reach_the_caller_who_may_resume() -> None:
    script = Script([[line("ADDED", obj("a", "11")), line("ERROR", {"code": 500})]])
    stream = kube.ListThenWatch(script.list, script.watch)
    with pytest.raises(ServerError):
        await take(stream, 10)
    assert stream.resource_version == "11"
    again = kube.ListThenWatch(script.list, script.watch, resource_version="11")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.2):
            await take(again, 1)
    assert script.requests[-1] == "11"  # watched from there, without a list
    relisting = kube.ListThenWatch(script.list, script.watch, relist_on=(APIError,))
    script.streams = [[line("ERROR", {"code": 500})], []]
    assert [type(e).__name__ for e in await take(relisting, 2)] == ["Relisted", "Relisted"]


# -- retries ---------------------------------------------------------------------------------

def test_exponential_delay_doubles_up_to_the_bound() -> None:
    assert [kube.exponential_delay(n, first=0.2, most=5.0) for n in range(7)] == \
        [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    spread = {kube.exponential_delay(3, first=1.0, most=60.0, jitter=0.25) for _ in range(200)}
    assert min(spread) >= 6.0 and max(spread) <= 10.0 and len(spread) > 1


@pytest.mark.parametrize("exc,transient", [
    (api_error(429), True), (api_error(503), True), (api_error(408), True),
    (api_error(404), False), (api_error(409), False), (api_error(422), False),
    (api_error(403), False), (ConnectionResetError(), True), (ValueError(), False),
])
def test_only_transient_errors_are_retried(exc: BaseException, transient: bool) -> None:
    assert kube.is_transient(exc) is transient


async def test_retrying_retries_transient_errors_and_raises_the_others() -> None:
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise api_error(503, {"reason": "ServiceUnavailable"})
        return "ok"

    assert await kube.retrying(flaky, kube.Backoff(first=0.001, most=0.002)) == "ok"
    assert len(calls) == 3

    async def missing() -> str:
        calls.append(1)
        raise api_error(404)

    calls.clear()
    with pytest.raises(NotFound):
        await kube.retrying(missing, kube.Backoff(first=0.001, most=0.002))
    assert len(calls) == 1


async def test_a_backoff_gives_up_after_its_time() -> None:
    backoff = kube.Backoff(first=0.01, most=0.01, give_up_after=0.05)
    failure = api_error(503)
    with pytest.raises(ServerError):
        for _ in range(100):
            await backoff.pause(failure)
    backoff.reset()
    assert backoff.next_delay() == 0.01
