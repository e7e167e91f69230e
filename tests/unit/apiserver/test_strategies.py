"""Per-resource strategies: the generic REST paths run a kind's hooks and know no kind themselves."""

from __future__ import annotations

import pytest

from dask_kube_jobs.local.apiserver import errors, strategies
from dask_kube_jobs.local.apiserver.core import APICore, DeleteOptions
from dask_kube_jobs.local.apiserver.strategy import CustomResourceStrategy, Strategy

CONFIGMAPS = ("", "configmaps")
PODS = ("", "pods")

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                "type": "object", "properties": {"size": {"type": "integer", "default": 1}}}}}}}],
    },
}


@pytest.fixture
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    # what the ServiceAccount controller gives every namespace (Pods need it to be admitted)
    core.create(rtype(core, ("", "serviceaccounts")), "v1", "default",
                {"metadata": {"name": "default"}})
    return core


def rtype(core: APICore, key: tuple[str, str]):
    found = core.registry.get(*key)
    assert found is not None
    return found


class Recording(Strategy):
    """A strategy that leaves a trace of every hook the generic paths call."""

    def __init__(self) -> None:
        super().__init__(counts_generation=True)
        self.calls: list[str] = []

    def before_create(self, core, obj):
        self.calls.append("before_create")
        if obj["metadata"]["name"] == "refused":
            raise errors.invalid("ConfigMap", "refused", [errors.Cause("metadata.name", "taken")])

    def validate_update(self, rtype, name, old, new):
        self.calls.append("validate_update")
        if (new.get("data") or {}).get("fixed") != (old.get("data") or {}).get("fixed"):
            raise errors.invalid(rtype.kind, name, [errors.Cause("data.fixed", "immutable")])

    def refresh_status(self, obj):
        obj["status"] = {"writes": int((obj.get("status") or {}).get("writes", 0)) + 1}

    def after_write(self, core, obj):
        self.calls.append("after_write")

    def deletion_finalizers(self):
        return ("example.com/cleanup",)

    def mark_terminating(self, obj):
        obj["metadata"].setdefault("annotations", {})["example.com/terminating"] = "yes"

    def after_delete(self, core, obj):
        self.calls.append("after_delete")


def test_strategy_for_picks_the_registered_strategy(core: APICore) -> None:
    assert isinstance(strategies.strategy_for(rtype(core, PODS)), strategies.PodStrategy)
    assert strategies.strategy_for(rtype(core, CONFIGMAPS)) is strategies.DEFAULT
    core.create(rtype(core, ("apiextensions.k8s.io", "customresourcedefinitions")), "v1", None,
                CRD)
    widgets = rtype(core, ("example.com", "widgets"))
    assert isinstance(strategies.strategy_for(widgets), CustomResourceStrategy)


def test_a_registered_strategy_runs_on_create_update_and_delete(
        core: APICore, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = Recording()
    monkeypatch.setitem(strategies.STRATEGIES, CONFIGMAPS, recording)
    cms = rtype(core, CONFIGMAPS)
    with pytest.raises(errors.APIError) as refused:
        core.create(cms, "v1", "default", {"metadata": {"name": "refused"}})
    assert refused.value.code == 422
    assert core.store.get(CONFIGMAPS, "default", "refused") is None

    created = core.create(cms, "v1", "default", {"metadata": {"name": "c"}, "data": {"fixed": "1"}})
    assert created["metadata"]["generation"] == 1  # counts_generation
    assert created["status"] == {"writes": 1}
    assert recording.calls == ["before_create", "before_create", "after_write"]

    with pytest.raises(errors.APIError) as immutable:
        core.update(cms, "v1", "default", "c", {**created, "data": {"fixed": "2"}})
    assert immutable.value.code == 422
    updated = core.update(cms, "v1", "default", "c", {**created, "data": {"fixed": "1", "x": "y"}})
    assert updated["metadata"]["generation"] == 2
    assert updated["status"] == {"writes": 2}

    deleted = core.delete(cms, "v1", "default", "c", DeleteOptions())
    assert deleted["metadata"]["finalizers"] == ["example.com/cleanup"]
    assert deleted["metadata"]["annotations"] == {"example.com/terminating": "yes"}
    assert "after_delete" not in recording.calls
    released = {**deleted, "metadata": {**deleted["metadata"], "finalizers": []}}
    core.update(cms, "v1", "default", "c", released)
    assert recording.calls[-1] == "after_delete"
    assert core.store.get(CONFIGMAPS, "default", "c") is None


def _bound_pod(core: APICore) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    core.create(rtype(core, PODS), "v1", "default", pod)
    core.bind("default", "p", {"target": {"name": "node-1"}})


def test_pod_behaviour_comes_from_its_strategy(core: APICore,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pods = rtype(core, PODS)
    _bound_pod(core)
    stored = core.get(pods, "v1", "default", "p")
    update = {**stored, "spec": {**stored["spec"]}}
    del update["spec"]["nodeName"]
    assert core.update(pods, "v1", "default", "p", update)["spec"]["nodeName"] == "node-1"
    deleted = core.delete(pods, "v1", "default", "p", DeleteOptions())
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 30
    assert core.store.get(PODS, "default", "p") is not None  # the kubelet has to confirm

    # Without the Pod strategy the generic path treats a Pod like any other object: nothing
    # carries spec.nodeName over (so the Pod validation sees it removed) and a delete removes
    # a running Pod at once.
    monkeypatch.setitem(strategies.STRATEGIES, PODS, strategies.DEFAULT)
    core.delete(pods, "v1", "default", "p", DeleteOptions(grace_period_seconds=0))
    _bound_pod(core)
    stored = core.get(pods, "v1", "default", "p")
    update = {**stored, "spec": {**stored["spec"]}}
    del update["spec"]["nodeName"]
    with pytest.raises(errors.APIError) as changed:
        core.update(pods, "v1", "default", "p", update)
    assert changed.value.code == 422
    core.delete(pods, "v1", "default", "p", DeleteOptions())
    assert core.store.get(PODS, "default", "p") is None


def test_namespace_deletion_is_the_namespace_strategy_s(core: APICore,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    namespaces = rtype(core, ("", "namespaces"))
    core.create(namespaces, "v1", None, {"metadata": {"name": "a"}})
    out = core.delete(namespaces, "v1", None, "a", DeleteOptions())
    assert out["status"]["phase"] == "Terminating"
    assert core.store.get(("", "namespaces"), None, "a") is not None  # spec.finalizers hold it

    monkeypatch.setitem(strategies.STRATEGIES, ("", "namespaces"), strategies.DEFAULT)
    core.create(namespaces, "v1", None, {"metadata": {"name": "b"}})
    core.delete(namespaces, "v1", None, "b", DeleteOptions())
    assert core.store.get(("", "namespaces"), None, "b") is None
