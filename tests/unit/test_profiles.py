"""The profile resolver (operator/profiles.py): a cluster spec plus a DaskClusterProfile gives
the spec the operator builds from, or refusals that name the field, the value, what is allowed,
the profile and the fix."""

from __future__ import annotations

import copy

import pytest

from dask_kube_jobs.contract.names import ANNOTATION_DEFAULT_PROFILE
from dask_kube_jobs.operator import profiles
from dask_kube_jobs.spec import make_cluster_spec

PROFILE = {
    "description": "batch",
    "image": "ghcr.io/dask/dask:2026.1",
    "serviceAccountName": "dask-batch",
    "nodeSelector": {"pool": "batch"},
    "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "low",
    "env": [{"name": "TEAM", "value": "data"}],
    "idleTimeout": 3600,
    "scheduler": {"resources": {"limits": {"memory": "1Gi"}}},
    "worker": {"replicas": 2, "minReplicas": 1, "maxReplicas": 10,
               "env": [{"name": "ROLE", "value": "worker"}],
               "resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "1"}}},
    "locked": ["nodeSelector", "serviceAccountName"],
    "options": [
        {"name": "worker_memory", "target": "worker.memory",
         "quantity": {"default": "4Gi", "min": "2Gi", "max": "16Gi"}},
        {"name": "image", "target": "image",
         "choice": {"default": "ghcr.io/dask/dask:2026.1",
                    "choices": ["ghcr.io/dask/dask:2026.1", "ghcr.io/dask/dask:2026.3"]}},
        {"name": "workers", "target": "worker.replicas", "integer": {"default": 2, "min": 1, "max": 8}},
    ],
}


def resolve(spec=None, options=None, profile=None, **kw):
    return profiles.resolve(spec or {}, "standard", profile or PROFILE, options, cluster="c", **kw)


def worker(r):
    return profiles.main_container(r.spec["worker"]["spec"], "worker")


def scheduler(r):
    return profiles.main_container(r.spec["scheduler"]["spec"], "scheduler")


def only(r):
    assert len(r.violations) == 1, r.violations
    return r.violations[0]


def test_an_empty_spec_gets_the_standard_containers_filled_by_the_profile():
    r = resolve()
    assert r.violations == []
    std = make_cluster_spec("c")["spec"]
    assert worker(r)["args"] == profiles.main_container(std["worker"]["spec"], "worker")["args"]
    assert r.spec["scheduler"]["service"] == std["scheduler"]["service"]
    assert worker(r)["image"] == scheduler(r)["image"] == "ghcr.io/dask/dask:2026.1"
    for comp in ("scheduler", "worker"):
        pod = r.spec[comp]["spec"]
        assert pod["serviceAccountName"] == "dask-batch"
        assert pod["nodeSelector"] == {"pool": "batch"}
        assert pod["tolerations"][0]["key"] == "batch"
        assert pod["priorityClassName"] == "low"
    assert {"name": "TEAM", "value": "data"} in worker(r)["env"]
    assert {"name": "ROLE", "value": "worker"} in worker(r)["env"]
    assert {"name": "ROLE", "value": "worker"} not in (scheduler(r).get("env") or [])
    assert scheduler(r)["resources"] == {"limits": {"memory": "1Gi"}}
    # the option defaults: 4Gi workers (requests and limits), 2 of them
    assert worker(r)["resources"] == {"requests": {"cpu": "1", "memory": "4Gi"},
                                      "limits": {"cpu": "1", "memory": "4Gi"}}
    assert r.spec["worker"]["replicas"] == 2
    assert r.spec["idleTimeout"] == 3600
    assert r.options == {"worker_memory": "4Gi", "image": "ghcr.io/dask/dask:2026.1", "workers": 2}


def test_options_within_bounds_are_applied_to_their_targets():
    r = resolve(options={"worker_memory": "8Gi", "image": "ghcr.io/dask/dask:2026.3", "workers": "5"})
    assert r.violations == []
    assert worker(r)["resources"]["limits"]["memory"] == "8Gi"
    assert worker(r)["resources"]["requests"]["memory"] == "8Gi"
    assert worker(r)["image"] == scheduler(r)["image"] == "ghcr.io/dask/dask:2026.3"
    assert r.spec["worker"]["replicas"] == 5
    assert r.options["workers"] == 5


@pytest.mark.parametrize("target,kind,bounds,value,check", [
    ("worker.cpu", "quantity", {"default": "1", "max": "4"}, "2",
     lambda r: worker(r)["resources"]["limits"]["cpu"] == "2"),
    ("worker.gpu", "quantity", {"default": "0", "max": "1"}, 1,
     lambda r: worker(r)["resources"]["limits"]["nvidia.com/gpu"] == "1"),
    ("scheduler.memory", "quantity", {"default": "1Gi"}, "2Gi",
     lambda r: scheduler(r)["resources"]["requests"]["memory"] == "2Gi"),
    ("scheduler.cpu", "quantity", {"default": "1"}, "500m",
     lambda r: scheduler(r)["resources"]["limits"]["cpu"] == "500m"),
    ("worker.image", "choice", {"default": "a", "choices": ["a", "b"]}, "b",
     lambda r: worker(r)["image"] == "b" and scheduler(r)["image"] != "b"),
    ("scheduler.image", "choice", {"default": "a", "choices": ["a", "b"]}, "b",
     lambda r: scheduler(r)["image"] == "b" and worker(r)["image"] != "b"),
    ("idleTimeout", "integer", {"default": 60, "max": 600}, 300,
     lambda r: r.spec["idleTimeout"] == 300),
    ("env.MODE", "choice", {"default": "fast", "choices": ["fast", "safe"]}, "safe",
     lambda r: {"name": "MODE", "value": "safe"} in worker(r)["env"]
     and {"name": "MODE", "value": "safe"} in scheduler(r)["env"]),
])
def test_each_target(target, kind, bounds, value, check):
    profile = {"options": [{"name": "o", "target": target, kind: bounds}]}
    r = resolve(options={"o": value}, profile=profile)
    assert r.violations == []
    assert check(r)


def test_an_out_of_range_option_is_refused_with_field_value_range_profile_and_fix():
    v = only(resolve(options={"worker_memory": "32Gi"}))
    assert v.field == "spec.profile.options.worker_memory"
    assert v.message == ("spec.profile.options.worker_memory: '32Gi' is outside the range 2Gi "
                         "to 16Gi of option worker_memory (worker.memory) of DaskClusterProfile "
                         "standard; give a value within it")
    assert "is outside the range 1 to 8" in only(resolve(options={"workers": 9})).message
    assert "is not a quantity" in only(resolve(options={"worker_memory": "lots"})).message
    assert "is not a whole number" in only(resolve(options={"workers": "two"})).message


def test_a_value_not_among_the_choices_and_an_unknown_option_are_refused():
    v = only(resolve(options={"image": "evil:1"}))
    assert "'evil:1' is not one of the choices of option image (image) of DaskClusterProfile " \
           "standard: ghcr.io/dask/dask:2026.1, ghcr.io/dask/dask:2026.3" in v.message
    v = only(resolve(options={"gpus": 1}))
    assert v.field == "spec.profile.options.gpus"
    assert "has no option 'gpus' (its options: image, worker_memory, workers)" in v.message


def test_the_spec_s_own_value_for_an_option_target_is_held_to_the_options_bounds():
    spec = make_cluster_spec("c", image="ghcr.io/dask/dask:2026.1", n_workers=20)["spec"]
    v = only(resolve(spec))
    assert v.field == "spec.worker.replicas"
    assert "20 is outside the range 1 to 8" in v.message
    spec["worker"]["replicas"] = 3
    assert resolve(spec).spec["worker"]["replicas"] == 3  # kept: within bounds
    # an option given explicitly wins over the spec's value
    assert resolve(spec, {"workers": 4}).spec["worker"]["replicas"] == 4


def test_a_locked_field_set_to_another_value_is_refused_and_an_equal_one_accepted():
    spec = make_cluster_spec("c", image="ghcr.io/dask/dask:2026.1")["spec"]
    spec["worker"]["spec"]["nodeSelector"] = {"pool": "gpu"}
    v = only(resolve(spec))
    assert v.field == "spec.worker.spec.nodeSelector"
    assert v.message == ('spec.worker.spec.nodeSelector: {"pool": "gpu"} differs from '
                         '{"pool": "batch"}, which DaskClusterProfile standard locks '
                         "(nodeSelector); leave it out to get the profile's value, or use "
                         "another profile")
    spec["worker"]["spec"]["nodeSelector"] = {"pool": "batch"}
    assert resolve(spec).violations == []
    # not locked: the user's value is kept
    spec["worker"]["spec"]["priorityClassName"] = "high"
    assert resolve(spec).spec["worker"]["spec"]["priorityClassName"] == "high"


@pytest.mark.parametrize("lock,edit,field", [
    ("image", lambda s: s["worker"]["spec"]["containers"][0].update(image="other:1"),
     "spec.worker.spec.containers[0].image"),
    ("resources", lambda s: s["scheduler"]["spec"]["containers"][0].update(
        resources={"limits": {"memory": "64Gi"}}), "spec.scheduler.spec.containers[0].resources"),
    ("env", lambda s: s["worker"]["spec"]["containers"][0].update(
        env=[{"name": "TEAM", "value": "ops"}]), "spec.worker.spec.containers[0].env[TEAM]"),
    ("idleTimeout", lambda s: s.update(idleTimeout=5), "spec.idleTimeout"),
    ("serviceAccountName", lambda s: s["scheduler"]["spec"].update(serviceAccountName="root"),
     "spec.scheduler.spec.serviceAccountName"),
])
def test_each_lock(lock, edit, field):
    profile = {**copy.deepcopy(PROFILE), "locked": [lock], "options": []}
    spec = make_cluster_spec("c", image="ghcr.io/dask/dask:2026.1")["spec"]
    assert resolve(spec, profile=profile).violations == []
    edit(spec)
    v = only(resolve(spec, profile=profile))
    assert v.field == field
    assert f"which DaskClusterProfile standard locks ({lock})" in v.message


def test_an_image_option_exempts_the_image_lock_for_its_choices():
    profile = {**copy.deepcopy(PROFILE), "locked": ["image"]}
    spec = make_cluster_spec("c", image="ghcr.io/dask/dask:2026.3")["spec"]
    r = resolve(spec, profile=profile)
    assert r.violations == [] and worker(r)["image"] == "ghcr.io/dask/dask:2026.3"


def test_worker_count_bounds_refuse_a_default_group_outside_them():
    profile = {"worker": {"minReplicas": 2, "maxReplicas": 4}}
    v = only(resolve({"worker": {"replicas": 1}}, profile=profile))
    assert v.field == "spec.worker.replicas"
    assert "1 workers is outside the range 2 to 4 that DaskClusterProfile standard allows" in v.message
    assert resolve({"worker": {"replicas": 3}}, profile=profile).violations == []
    assert profiles.bounds_message("p", None, 4, 5) is not None
    assert profiles.bounds_message("p", None, None, 500) is None


def test_the_namespace_selector_is_checked():
    profile = {**PROFILE, "namespaceSelector": {
        "matchLabels": {"team": "data"},
        "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}}
    ok = {"metadata": {"name": "a", "labels": {"team": "data"}}}
    assert resolve(profile=profile, namespace=ok).violations == []
    for labels in ({"team": "web"}, {"team": "data", "env": "prod"}, None):
        v = only(resolve(profile=profile, namespace={"metadata": {"name": "b", "labels": labels}}))
        assert v.field == "metadata.namespace"
        assert v.message.startswith("metadata.namespace: namespace b is not selected by "
                                    "DaskClusterProfile standard (namespaceSelector")
    assert profiles.selects({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, {"x": ""})
    assert not profiles.selects({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]},
                                {"x": "1"})
    assert not profiles.selects({"matchExpressions": [{"key": "x", "operator": "In",
                                                       "values": ["1"]}]}, {})


def test_a_daskjob_s_cluster_is_named_by_its_own_paths():
    v = only(resolve({"worker": {"replicas": 30}}, prefix="spec.cluster.spec."))
    assert v.field == "spec.cluster.spec.worker.replicas"


def test_an_invalid_profile_is_refused_as_the_administrator_s_to_fix():
    bad = {"options": [{"name": "m", "target": "worker.memory", "integer": {"default": 1}},
                       {"name": "q", "target": "worker.cpu",
                        "quantity": {"default": "1", "min": "4", "max": "2"}}]}
    found = resolve(profile=bad).violations
    assert len(found) == 2
    assert "takes a quantity option, not integer" in found[0].message
    assert "quantity bounds are out of order" in found[1].message
    assert all("ask the administrator" in v.message for v in found)


def test_resolving_again_against_the_pinned_copy_gives_the_same_spec():
    r = resolve({"worker": {"replicas": 3}}, {"worker_memory": "8Gi"})
    pin = profiles.pin("standard", {"metadata": {"resourceVersion": "7"}, "spec": PROFILE}, r)
    assert pin["resourceVersion"] == "7" and pin["options"]["worker_memory"] == "8Gi"
    edited = {**PROFILE, "image": "changed:1"}
    assert edited != pin["spec"]
    again = profiles.resolve({"worker": {"replicas": 3}}, "standard", pin["spec"],
                             {"worker_memory": "8Gi"}, cluster="c")
    assert again.spec == r.spec
    assert profiles.worker_bounds_of({"status": {"profile": pin}}) == ("standard", 1, 10)
    assert profiles.worker_bounds_of({"status": {}}) is None


def test_which_profile_an_object_uses():
    ns = {"metadata": {"name": "team", "annotations": {ANNOTATION_DEFAULT_PROFILE: "small"}}}
    assert profiles.chosen({"name": "big", "options": {"a": 1}}, ns, ANNOTATION_DEFAULT_PROFILE) == \
        profiles.Choice("big", {"a": 1}, "spec.profile")
    default = profiles.chosen(None, ns, ANNOTATION_DEFAULT_PROFILE)
    assert default is not None and default.name == "small" and default.options == {}
    assert "namespace team" in default.source
    assert profiles.chosen(None, {"metadata": {"name": "x"}}, ANNOTATION_DEFAULT_PROFILE) is None
    assert "does not exist" in profiles.not_found_message(default)


def test_a_locked_field_the_profile_leaves_unset_may_not_be_set():
    profile = {"locked": ["nodeSelector", "resources", "idleTimeout"]}
    assert resolve(profile=profile).violations == []
    spec = make_cluster_spec("c")["spec"]
    spec["worker"]["spec"]["nodeSelector"] = {"gpu": "yes"}
    spec["worker"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1Gi"}}
    spec["idleTimeout"] = 30
    fields = sorted(v.field for v in resolve(spec, profile=profile).violations)
    assert fields == ["spec.idleTimeout", "spec.worker.spec.containers[0].resources",
                      "spec.worker.spec.nodeSelector"]


def test_worker_groups_and_autoscalers_of_a_pinned_cluster_stay_within_its_worker_bounds():
    from dask_kube_jobs.operator.autoscaler import _outside_profile
    from dask_kube_jobs.operator.workergroup import _within_profile

    cluster = {"status": {"profile": {"name": "standard", "spec": {
        "worker": {"minReplicas": 2, "maxReplicas": 5}}}}}
    assert _within_profile(cluster, 4, 1) is None
    assert _within_profile({"status": {}}, 50, 1) is None  # no profile: no bounds
    allowed, why = _within_profile(cluster, 9, 1)
    assert allowed == 5  # grows to the bound, not past it
    assert why.startswith("spec.worker.replicas: 9 workers is outside the range 2 to 5 that "
                          "DaskClusterProfile standard allows")
    assert _within_profile(cluster, 9, 7)[0] == 7  # never removes running workers
    assert _within_profile(cluster, 0, 4)[0] == 2  # shrinks to the minimum, not below
    assert _within_profile(cluster, 0, 1)[0] == 1  # and does not grow to reach it
    assert _outside_profile(cluster, 2, 5) is None
    assert _outside_profile(cluster, 1, 5).startswith("spec.minimum: 1 workers is outside")
    assert _outside_profile(cluster, 2, 10).startswith("spec.maximum: 10 workers is outside")
    assert _outside_profile(None, 0, 100) is None
