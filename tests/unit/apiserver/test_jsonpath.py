"""The JSONPath subset of scale subresources and printer columns."""

from __future__ import annotations

from typing import Any

import pytest

from dask_kube_jobs.local.apiserver.jsonpath import evaluate_jsonpath, find_all, get_path, set_path

OBJ: dict[str, Any] = {
    "metadata": {"name": "demo", "creationTimestamp": "2024-01-02T03:04:05Z",
                 "labels": {"app.kubernetes.io/name": "dask", "tier": "gpu"}},
    "spec": {"worker": {"replicas": 3},
             "items": [{"name": "a", "port": 1}, {"name": "b", "port": 2}, {"name": "c"}]},
    "status": {"conditions": [{"type": "Scheduled", "status": "True"},
                              {"type": "Ready", "status": "False", "reason": "Pending"}]},
}


@pytest.mark.parametrize("path, expected", [
    (".spec.worker.replicas", 3),
    (".metadata.creationTimestamp", "2024-01-02T03:04:05Z"),
    ('.status.conditions[?(@.type=="Ready")].status', "False"),
    (".status.conditions[?(@.type=='Ready')].reason", "Pending"),
    ('.status.conditions[?(@.type!="Ready")].type', "Scheduled"),
    (".spec.items[0].name", "a"),
    (".spec.items[-1].name", "c"),
    (".spec.items[*].name", "a"),
    (".spec.items[?(@.port>1)].name", "b"),
    (".spec.items[?(@.port)].name", "a"),
    ("{.spec.worker.replicas}", 3),
    ("$.spec.worker.replicas", 3),
    (".metadata.labels['app.kubernetes.io/name']", "dask"),
    (r".metadata.labels.app\.kubernetes\.io/name", "dask"),
    (".spec.worker", {"replicas": 3}),
    (".spec.missing.deeper", None),
    (".spec.items[7].name", None),
    (".spec.worker.replicas.nope", None),
])
def test_evaluate_first_match(path: str, expected: Any) -> None:
    assert evaluate_jsonpath(OBJ, path) == expected


def test_find_all_lists_every_match() -> None:
    assert find_all(OBJ, ".spec.items[*].name") == ["a", "b", "c"]
    assert find_all(OBJ, ".spec.items[0:2].port") == [1, 2]
    assert find_all(OBJ, ".metadata.labels.*") == ["dask", "gpu"]
    assert find_all(OBJ, "..port") == [1, 2]
    assert find_all(OBJ, ".spec.items[?(@.name=='z')]") == []


def test_filters_compare_like_kinds_only() -> None:
    obj = {"l": [{"v": 1}, {"v": "1"}, {"v": True}, {"v": None}]}
    assert find_all(obj, ".l[?(@.v==1)].v") == [1]
    assert find_all(obj, '.l[?(@.v=="1")].v') == ["1"]
    assert find_all(obj, ".l[?(@.v==true)].v") == [True]
    assert find_all(obj, ".l[?(@.v==null)].v") == [None]
    assert find_all(obj, ".l[?(@.v>=1)].v") == [1]


@pytest.mark.parametrize("path", [".spec[", ".spec[?(@.x==)]", ".spec[foo bar]"])
def test_bad_syntax_raises(path: str) -> None:
    with pytest.raises(ValueError):
        find_all(OBJ, path)


def test_get_path() -> None:
    assert get_path(OBJ, ".spec.worker.replicas") == 3
    assert get_path(OBJ, ".status.replicas") is None
    assert get_path(OBJ, ".spec.worker.replicas.deeper") is None


def test_set_path_returns_a_new_object() -> None:
    out = set_path(OBJ, ".spec.worker.replicas", 5)
    assert out["spec"]["worker"]["replicas"] == 5
    assert OBJ["spec"]["worker"]["replicas"] == 3
    created = set_path({"spec": {}}, ".status.selector", "app=dask")
    assert created == {"spec": {}, "status": {"selector": "app=dask"}}
    replaced = set_path({"status": "odd"}, ".status.replicas", 1)
    assert replaced == {"status": {"replicas": 1}}
    with pytest.raises(ValueError):
        set_path({}, ".", 1)
