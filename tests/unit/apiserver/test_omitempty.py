"""Empty metadata fields are dropped on every write, as Go's ``omitempty`` drops them on a real
server: clients test for a key's absence, not for an empty value."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.apiserver.core import APICore, DeleteOptions

CONFIGMAPS = ("", "configmaps")
EMPTY = {"labels": {}, "annotations": {}, "ownerReferences": [], "finalizers": [],
         "generateName": ""}


@pytest.fixture
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    return core


def configmaps(core: APICore):  # type: ignore[no-untyped-def]
    rtype = core.registry.get(*CONFIGMAPS)
    assert rtype is not None
    return rtype


def test_create_drops_empty_metadata_fields(core: APICore) -> None:
    created = core.create(configmaps(core), "v1", "default",
                          {"metadata": {"name": "a", **EMPTY, "labels": None}})
    stored = core.get(configmaps(core), "v1", "default", "a")
    for obj in (created, stored):
        assert not set(EMPTY) & set(obj["metadata"]), obj["metadata"]


def test_update_and_patch_drop_what_they_empty(core: APICore) -> None:
    rtype = configmaps(core)
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "u-1"}
    core.create(rtype, "v1", "default", {"metadata": {
        "name": "b", "labels": {"x": "y"}, "ownerReferences": [owner],
        "finalizers": ["example.com/f"]}})
    # What the garbage collector sends when it orphans a dependent, and a plain emptying merge.
    patched, _ = core.patch(rtype, "v1", "default", "b", "application/json-patch+json", json.dumps(
        [{"op": "replace", "path": "/metadata/ownerReferences", "value": []}]).encode())
    assert "ownerReferences" not in patched["metadata"]
    patched, _ = core.patch(rtype, "v1", "default", "b", "application/merge-patch+json",
                            b'{"metadata":{"finalizers":[],"labels":{"x":null}}}')
    assert "finalizers" not in patched["metadata"] and "labels" not in patched["metadata"]
    body = dict(core.get(rtype, "v1", "default", "b"))
    body["metadata"] = {**body["metadata"], "annotations": {}}
    updated = core.update(rtype, "v1", "default", "b", body)
    assert "annotations" not in updated["metadata"]
    assert "annotations" not in core.get(rtype, "v1", "default", "b")["metadata"]


def test_a_non_empty_field_and_a_zero_grace_period_stay(core: APICore) -> None:
    rtype = configmaps(core)
    core.create(rtype, "v1", "default", {"metadata": {"name": "c", "labels": {"k": ""},
                                                        "finalizers": ["example.com/f"]}})
    assert core.get(rtype, "v1", "default", "c")["metadata"]["labels"] == {"k": ""}
    deleted = core.delete(rtype, "v1", "default", "c", DeleteOptions())
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 0
    assert deleted["metadata"]["finalizers"] == ["example.com/f"]
