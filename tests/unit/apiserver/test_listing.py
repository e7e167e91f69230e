"""Lists served from the objects' stored JSON, and the store keeping each object once."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dask_kube_jobs.local.apiserver import errors
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.listing import ListOptions
from dask_kube_jobs.local.apiserver.registry import Registry, ResourceType
from dask_kube_jobs.local.apiserver.sqlite_backend import SQLiteBackend
from dask_kube_jobs.local.apiserver.store import Store
from dask_kube_jobs.local.apiserver.stored import Stored

CONFIGMAPS = ("", "configmaps")


@pytest.fixture
def core() -> APICore:
    c = APICore(Store(), Registry())
    c.bootstrap()
    ns = c.registry.get("", "namespaces")
    assert ns is not None
    for name in ("a", "a-b", "b"):
        c.create(ns, "v1", None, {"metadata": {"name": name}})
    return c


def _cms(core: APICore) -> ResourceType:
    rtype = core.registry.get(*CONFIGMAPS)
    assert rtype is not None
    return rtype


def _fill(core: APICore) -> None:
    cms = _cms(core)
    for ns in ("a", "a-b", "b"):
        for name, tier in (("x", "web"), ("y", "db"), ("z", "web")):
            core.create(cms, "v1", ns, {"metadata": {"name": name, "labels": {"tier": tier}},
                                        "data": {"k": "ü"}})


def _names(listed: dict) -> list[str]:
    return [f'{o["metadata"]["namespace"]}/{o["metadata"]["name"]}' for o in listed["items"]]


@pytest.mark.parametrize("opts", [
    ListOptions(),
    ListOptions(label_selector="tier=web"),
    ListOptions(field_selector="metadata.name=y"),
    ListOptions(field_selector="metadata.namespace!=a,metadata.name!=x"),
    ListOptions(label_selector="tier", field_selector="metadata.name=z"),
    ListOptions(limit=4),
], ids=["all", "labels", "name", "not-name", "both", "page"])
@pytest.mark.parametrize("namespace", [None, "a", "a-b"])
def test_the_json_body_is_the_list_as_a_dict(core: APICore, opts: ListOptions,
                                             namespace: str | None) -> None:
    _fill(core)
    cms = _cms(core)
    body = core.list_json(cms, "v1", namespace, opts)
    assert json.loads(body) == core.list(cms, "v1", namespace, opts)
    assert json.loads(body)["kind"] == "ConfigMapList"


def test_pages_walk_every_namespace_in_order_once(core: APICore) -> None:
    """Namespaces ``a`` and ``a-b``: sorted as ``namespace/name`` strings they interleave
    ("a-b/x" < "a/z"), so a page boundary must compare (namespace, name), not the string."""
    _fill(core)
    cms = _cms(core)
    whole = _names(core.list(cms, "v1", None, ListOptions()))
    assert whole == [f"{ns}/{n}" for ns in ("a", "a-b", "b") for n in "xyz"]
    for limit in (1, 2, 4):
        seen: list[str] = []
        token, rvs = "", set()
        while True:
            page = json.loads(core.list_json(cms, "v1", None, ListOptions(limit=limit,
                                                                         continue_token=token)))
            assert len(page["items"]) <= limit
            seen += _names(page)
            rvs.add(page["metadata"]["resourceVersion"])
            token = page["metadata"].get("continue", "")
            if not token:
                break
        assert seen == whole and len(rvs) == 1  # every page carries the first page's version


def test_a_continue_token_that_is_not_one_is_refused(core: APICore) -> None:
    with pytest.raises(errors.APIError) as caught:
        core.list_json(_cms(core), "v1", None, ListOptions(continue_token="bm90IGpzb24="))
    assert caught.value.code == 400


def test_an_unsupported_field_is_refused_as_before(core: APICore) -> None:
    with pytest.raises(errors.APIError, match="field label not supported: data.k"):
        core.list_json(_cms(core), "v1", None, ListOptions(field_selector="data.k=1"))


def test_pods_are_selected_by_fields_read_from_their_json(core: APICore) -> None:
    pods, sas = core.registry.get("", "pods"), core.registry.get("", "serviceaccounts")
    assert pods is not None and sas is not None
    core.create(sas, "v1", "a", {"metadata": {"name": "default"}})
    for name in ("p1", "p2"):
        core.create(pods, "v1", "a", {"metadata": {"name": name},
                                      "spec": {"containers": [{"name": "c", "image": "i"}]}})
    core.bind("a", "p2", {"target": {"name": "node-1"}})
    listed = json.loads(core.list_json(pods, "v1", "a", ListOptions(field_selector="spec.nodeName=node-1")))
    assert [o["metadata"]["name"] for o in listed["items"]] == ["p2"]
    listed = json.loads(core.list_json(pods, "v1", "a", ListOptions(field_selector="spec.nodeName=")))
    assert [o["metadata"]["name"] for o in listed["items"]] == ["p1"]


def test_an_item_is_served_at_the_version_asked_for() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "n": 1}
    entry = Stored.of(obj)
    assert entry.json_as("example.com/v1", "Widget") is entry.raw
    assert json.loads(entry.json_as("example.com/v2", "Widget")) == {**obj, "apiVersion": "example.com/v2"}


def test_each_object_is_kept_once_and_readers_get_their_own_copy(core: APICore) -> None:
    _fill(core)
    store = core.store
    entry = store.entry(CONFIGMAPS, "a", "x")
    event = store.last_event(CONFIGMAPS)
    assert entry is not None and event is not None
    assert store.entry(CONFIGMAPS, "b", "z") is event.new  # the log shares the store's object
    got = store.get(CONFIGMAPS, "a", "x")
    assert got is not None
    got["data"]["k"] = "changed"
    got["metadata"]["labels"]["tier"] = "changed"
    assert store.get(CONFIGMAPS, "a", "x")["data"]["k"] == "ü"  # type: ignore[index]
    assert entry.labels == {"tier": "web"}
    # an update keeps the replaced object for selector-filtered watches, and only that
    cms = _cms(core)
    core.update(cms, "v1", "a", "x", {**got, "data": {"k": "new"}})
    event = store.last_event(CONFIGMAPS)
    assert event is not None and event.type == "MODIFIED" and event.old is entry
    assert event.new is store.entry(CONFIGMAPS, "a", "x")


def test_a_file_written_as_text_loads(tmp_path: Path) -> None:
    """State written before the store kept bytes holds each object as TEXT."""
    path = tmp_path / "objects.db"
    SQLiteBackend(path).close()
    db = sqlite3.connect(path)
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "ü"},
                       "metadata": {"name": "old", "namespace": "default", "resourceVersion": "3"}},
                      ensure_ascii=False)
    db.execute("INSERT INTO objects VALUES ('', 'configmaps', 'default', 'old', ?)", (body,))
    db.execute("UPDATE revision SET resource_version = 3")
    db.commit()
    db.close()
    store = Store(backend=SQLiteBackend(path))
    try:
        assert store.get(CONFIGMAPS, "default", "old") == json.loads(body)
        assert [o["metadata"]["name"] for o in store.list(CONFIGMAPS)] == ["old"]
    finally:
        store.close()
