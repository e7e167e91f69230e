"""The store written through to SQLite: what a restarted API server finds, on real files."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dask_kube_jobs.local.apiserver.core import APICore, DeleteOptions
from dask_kube_jobs.local.apiserver.registry import ResourceType
from dask_kube_jobs.local.apiserver.sqlite_backend import SQLiteBackend, StoreUnavailable
from dask_kube_jobs.local.apiserver.store import Store

from .test_strategies import CRD

CONFIGMAPS = ("", "configmaps")
SERVICES = ("", "services")
CRDS = ("apiextensions.k8s.io", "customresourcedefinitions")
WIDGETS = ("example.com", "widgets")


class Server:
    """Starts and stops an APICore over one SQLite file, as the daemon does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.core: APICore | None = None

    def start(self) -> APICore:
        self.core = APICore(Store(backend=SQLiteBackend(self.path)))
        self.core.bootstrap()
        return self.core

    def restart(self) -> APICore:
        self.stop()
        return self.start()

    def stop(self) -> None:
        if self.core is not None:
            self.core.store.close()
            self.core = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "objects.db")
    s.start()
    yield s
    s.stop()


def rtype(core: APICore, key: tuple[str, str]) -> ResourceType:
    found = core.registry.get(*key)
    assert found is not None
    return found


def test_objects_and_the_version_counter_survive_a_restart(server: Server) -> None:
    core = server.core
    assert core is not None
    cms = rtype(core, CONFIGMAPS)
    kept = core.create(cms, "v1", "default", {"metadata": {"name": "kept"}, "data": {"a": "1"}})
    core.update(cms, "v1", "default", "kept", {**kept, "data": {"a": "2"}})
    core.create(cms, "v1", "default", {"metadata": {"name": "gone"}})
    core.delete(cms, "v1", "default", "gone", DeleteOptions())
    last = core.store.resource_version  # the deletion's version: no object carries it

    core = server.restart()
    found = core.store.get(CONFIGMAPS, "default", "kept")
    assert found is not None and found["data"] == {"a": "2"}
    assert found["metadata"]["uid"] == kept["metadata"]["uid"]
    assert core.store.get(CONFIGMAPS, "default", "gone") is None
    assert core.store.resource_version == last
    again = core.create(cms, "v1", "default", {"metadata": {"name": "after"}})
    assert int(again["metadata"]["resourceVersion"]) == last + 1


def test_a_watch_from_before_the_restart_is_gone_and_one_from_after_replays(server: Server) -> None:
    core = server.core
    assert core is not None
    cms = rtype(core, CONFIGMAPS)
    before = core.create(cms, "v1", "default", {"metadata": {"name": "a"}})
    old_rv = int(before["metadata"]["resourceVersion"])
    core.create(cms, "v1", "default", {"metadata": {"name": "b"}})
    assert core.store.events_since(CONFIGMAPS, old_rv) is not None

    core = server.restart()
    assert core.store.events_since(CONFIGMAPS, old_rv) is None  # 410: list again
    listed = core.store.resource_version
    assert core.store.events_since(CONFIGMAPS, listed) == []
    core.create(cms, "v1", "default", {"metadata": {"name": "c"}})
    events = core.store.events_since(CONFIGMAPS, listed)
    assert events is not None and [e.obj["metadata"]["name"] for e in events] == ["c"]


def test_custom_resources_are_served_again_and_their_crd_deletion_persists(server: Server) -> None:
    core = server.core
    assert core is not None
    core.create(rtype(core, CRDS), "v1", None, CRD)
    core.create(rtype(core, WIDGETS), "v1", "default", {"metadata": {"name": "w"}, "spec": {}})

    core = server.restart()
    widget = core.get(rtype(core, WIDGETS), "v1", "default", "w")
    assert widget["spec"] == {"size": 1}
    core.delete(rtype(core, CRDS), "v1", None, CRD["metadata"]["name"], DeleteOptions())
    crd = core.store.get(CRDS, None, CRD["metadata"]["name"])
    assert crd is not None and crd["metadata"]["deletionTimestamp"]

    core = server.restart()  # terminating: still served, so the clean-up can finish
    assert core.registry.get(*WIDGETS) is not None
    crd = core.store.get(CRDS, None, CRD["metadata"]["name"])
    assert crd is not None
    core.update(rtype(core, CRDS), "v1", None, crd["metadata"]["name"],
                {**crd, "metadata": {**crd["metadata"], "finalizers": []}})
    assert core.registry.get(*WIDGETS) is None

    core = server.restart()
    assert core.registry.get(*WIDGETS) is None
    assert core.store.list(WIDGETS) == []
    assert core.store.get(CRDS, None, CRD["metadata"]["name"]) is None


def test_service_ips_in_use_are_not_handed_out_again(server: Server) -> None:
    core = server.core
    assert core is not None
    svc = {"metadata": {"name": "one"}, "spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    first = core.create(rtype(core, SERVICES), "v1", "default", svc)

    core = server.restart()
    second = core.create(rtype(core, SERVICES), "v1", "default",
                         {**svc, "metadata": {"name": "two"}})
    assert second["spec"]["clusterIP"] != first["spec"]["clusterIP"]


def test_one_file_serves_one_server_at_a_time(server: Server) -> None:
    with pytest.raises(StoreUnavailable, match="in use by another API server"):
        SQLiteBackend(server.path)


def test_a_file_of_another_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "objects.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE objects (x TEXT)")
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    with pytest.raises(StoreUnavailable, match="--purge"):
        SQLiteBackend(path)
