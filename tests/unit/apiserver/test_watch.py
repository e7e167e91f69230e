"""Watch semantics on the real store and stream code, with a tiny event window."""

from __future__ import annotations

import asyncio
import json

from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.fieldselectors import parse_field_selector
from dask_kube_jobs.local.apiserver.listing import ListOptions
from dask_kube_jobs.local.apiserver.registry import Registry
from dask_kube_jobs.local.apiserver.selectors import parse_label_selector
from dask_kube_jobs.local.apiserver.store import Store
from dask_kube_jobs.local.apiserver.watch import WatchRequest, serve_watch


def _core(window: int = 1000) -> APICore:
    core = APICore(Store(event_window=window), Registry())
    core.bootstrap()
    return core


def _cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}


async def _watch(core: APICore, rv: str, *, labels: str = "", timeout: float = 0.3,
                 bookmarks: bool = False, initial: bool = False) -> list[dict]:
    rtype = core.registry.get("", "configmaps")
    assert rtype is not None
    req = WatchRequest(rtype=rtype, version="v1", namespace="default",
                       labels=parse_label_selector(labels),
                       fields=parse_field_selector("", group="", plural="configmaps"),
                       resource_version=rv, timeout=timeout, bookmarks=bookmarks,
                       send_initial_events=initial, bookmark_interval=0.1)
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    await serve_watch(core.store, req, write)
    return [json.loads(line) for chunk in out for line in chunk.splitlines()]


async def test_a_version_older_than_the_window_answers_410_expired() -> None:
    core = _core(window=3)
    rtype = core.registry.get("", "configmaps")
    assert rtype is not None
    start = core.store.resource_version
    for i in range(6):
        core.create(rtype, "v1", "default", _cm(f"c{i}"))
    events = await _watch(core, str(start))
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410 and events[0]["object"]["reason"] == "Expired"
    # a version inside the window replays only what came after it
    recent = core.list(rtype, "v1", "default", ListOptions())["items"][-2]["metadata"]["resourceVersion"]
    replay = await _watch(core, recent)
    assert [e["object"]["metadata"]["name"] for e in replay] == ["c5"]


async def test_rv_zero_sends_the_current_state_then_live_events() -> None:
    core = _core()
    rtype = core.registry.get("", "configmaps")
    assert rtype is not None
    core.create(rtype, "v1", "default", _cm("before"))
    task = asyncio.create_task(_watch(core, "0", timeout=0.5))
    await asyncio.sleep(0.1)
    core.create(rtype, "v1", "default", _cm("after"))
    events = await task
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "before"), ("ADDED", "after")]
    assert all(e["object"]["kind"] == "ConfigMap" and e["object"]["apiVersion"] == "v1" for e in events)


async def test_selector_watch_sees_objects_enter_and_leave() -> None:
    core = _core()
    rtype = core.registry.get("", "configmaps")
    assert rtype is not None
    task = asyncio.create_task(_watch(core, "0", labels="app=x", timeout=0.5))
    await asyncio.sleep(0.05)
    core.create(rtype, "v1", "default", _cm("m"))
    core.patch(rtype, "v1", "default", "m", "application/merge-patch+json",
               b'{"metadata":{"labels":{"app":"x"}}}')
    core.patch(rtype, "v1", "default", "m", "application/merge-patch+json",
               b'{"metadata":{"labels":{"app":"y"}}}')
    events = await task
    assert [e["type"] for e in events] == ["ADDED", "DELETED"]


async def test_bookmarks_and_initial_events_end_marker() -> None:
    core = _core()
    rtype = core.registry.get("", "configmaps")
    assert rtype is not None
    core.create(rtype, "v1", "default", _cm("one"))
    events = await _watch(core, "", bookmarks=True, initial=True, timeout=0.35)
    assert events[0]["type"] == "ADDED"
    marker = events[1]
    assert marker["type"] == "BOOKMARK"
    assert marker["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert any(e["type"] == "BOOKMARK" and "annotations" not in e["object"]["metadata"]
               for e in events[2:])
