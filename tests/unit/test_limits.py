"""The operator's limits policy: parsing, quantities, image patterns, checks and their messages,
and the autoscaler's decisions under the workers-per-cluster cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dask_kube_jobs.contract.quantity import parse_quantity
from dask_kube_jobs.operator import autoscaler, limits
from dask_kube_jobs.operator.limits import LimitsConfigError, parse_policy

SOURCE = "ConfigMap dask-system/dask-operator-limits"


def policy(text: str) -> limits.Policy:
    return parse_policy(text, source=SOURCE)


def pod(image: str = "ghcr.io/dask/dask:2024.1", **resources: Any) -> dict[str, Any]:
    return {"containers": [{"name": "c", "image": image, "resources": resources}]}


def cluster_spec(replicas: int = 1, **worker_pod: Any) -> dict[str, Any]:
    return {"worker": {"replicas": replicas, "spec": pod(**worker_pod)}, "scheduler": {"spec": pod()}}


# -- quantities ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    pytest.param("500m", Decimal("0.5"), id="millicores"),
    pytest.param("2", Decimal(2), id="cores"),
    pytest.param(4, Decimal(4), id="a-number"),
    pytest.param("1.5", Decimal("1.5"), id="decimal"),
    pytest.param("16Gi", Decimal(16 * 2**30), id="gibibytes"),
    pytest.param("128Mi", Decimal(128 * 2**20), id="mebibytes"),
    pytest.param("1G", Decimal(10**9), id="gigabytes"),
    pytest.param("1e3", Decimal(1000), id="exponent"),
])
def test_quantities_read_as_kubernetes_reads_them(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["lots", "16GB", "", "1 Gi", True, None])
def test_a_bad_quantity_is_refused(text: Any) -> None:
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


# -- images ----------------------------------------------------------------------------------

@pytest.mark.parametrize("image,patterns,allowed", [
    pytest.param("ghcr.io/dask/dask:2024.1", ["ghcr.io/dask/"], True, id="registry-prefix"),
    pytest.param("ghcr.io/daskx/evil:1", ["ghcr.io/dask/"], False, id="prefix-is-a-path-not-a-string"),
    pytest.param("python:3.12", ["docker.io/library/python:3.*"], True, id="short-name-matches-qualified"),
    pytest.param("docker.io/library/python:3.12", ["python:3.*"], True, id="qualified-matches-short"),
    pytest.param("someone/tool:1", ["docker.io/someone/"], True, id="docker-hub-user"),
    pytest.param("python:2.7", ["python:3.*"], False, id="glob-refuses"),
    pytest.param("localhost:5000/x:1", ["localhost:5000/*"], True, id="local-registry"),
    pytest.param("anything", [], False, id="empty-list-allows-nothing"),
])
def test_image_patterns(image: str, patterns: list[str], allowed: bool) -> None:
    assert limits.image_allowed(image, patterns) is allowed


# -- parsing ---------------------------------------------------------------------------------

def test_an_empty_or_absent_file_leaves_only_the_default_worker_cap() -> None:
    for text in ("", None, "# nothing yet\n"):
        lim = parse_policy(text).for_namespace("a")
        assert lim.max_workers_per_cluster == limits.DEFAULT_MAX_WORKERS_PER_CLUSTER == 1000
        assert (lim.max_clusters_per_namespace, lim.max_jobs_per_namespace) == (None, None)
        assert not lim.resources and lim.allowed_images is None
        assert "--default-max-workers-per-cluster" in lim.where("maxWorkersPerCluster")
    # the administrator's file lifts it with null, as any other default
    assert not parse_policy("maxWorkersPerCluster: null").for_namespace("a").any


def test_the_default_cap_names_where_to_raise_it() -> None:
    [v] = limits.check_workers(parse_policy("").for_namespace("a"), field="spec.worker.replicas",
                               requested=1_000_000)
    assert "spec.worker.replicas=1000000" in v.message or "1000000" in v.message
    assert "the operator's default of 1000" in v.message and "maxWorkersPerCluster" in v.message


def test_an_operator_without_a_default_cap_has_no_limits() -> None:
    try:
        limits.set_default_max_workers(0)
        assert not parse_policy("").for_namespace("a").any
    finally:
        limits.set_default_max_workers(limits.DEFAULT_MAX_WORKERS_PER_CLUSTER)


def test_namespace_overrides_replace_defaults_and_null_lifts_them() -> None:
    p = policy("""
        maxWorkersPerCluster: 50
        maxJobsPerNamespace: 5
        resources: {cpu: {max: "4"}, memory: {max: 16Gi}}
        namespaces:
          big: {maxWorkersPerCluster: 200, resources: {cpu: {max: "16"}}}
          free: {maxJobsPerNamespace: null}
    """.replace("\n        ", "\n"))
    big, free, other = p.for_namespace("big"), p.for_namespace("free"), p.for_namespace("other")
    assert (big.max_workers_per_cluster, other.max_workers_per_cluster) == (200, 50)
    assert big.resources["cpu"].max == 16 and big.resources["memory"].max == 16 * 2**30
    assert free.max_jobs_per_namespace is None and other.max_jobs_per_namespace == 5
    assert big.where("maxWorkersPerCluster") == \
        f"{SOURCE}, key limits.yaml, field namespaces.big.maxWorkersPerCluster"
    assert big.where("resources.cpu.max") == f"{SOURCE}, key limits.yaml, field namespaces.big.resources.cpu.max"
    assert big.where("resources.memory.max") == f"{SOURCE}, key limits.yaml, field resources.memory.max"


@pytest.mark.parametrize("text,field", [
    pytest.param("maxWorkersPerCluster: -1", "maxWorkersPerCluster", id="negative"),
    pytest.param("maxWorkersPerCluster: '50'", "maxWorkersPerCluster", id="string-count"),
    pytest.param("maxWorkers: 5", "maxWorkers", id="misspelt-key"),
    pytest.param("resources: {cpu: {max: lots}}", "resources.cpu.max", id="bad-quantity"),
    pytest.param("resources: {memory: {min: 2Gi, max: 1Gi}}", "resources.memory", id="min-above-max"),
    pytest.param("resources: {cpu: 4}", "resources.cpu", id="range-not-a-mapping"),
    pytest.param("allowedImages: ghcr.io/dask/", "allowedImages", id="images-not-a-list"),
    pytest.param("namespaces: {a: {namespaces: {}}}", "namespaces.a.namespaces", id="nested-namespaces"),
    pytest.param("namespaces: {a: {maxJobsPerNamespace: x}}", "namespaces.a.maxJobsPerNamespace",
                 id="bad-override"),
    pytest.param("[1, 2]", "(top level)", id="not-a-mapping"),
    pytest.param("maxWorkersPerCluster: [", "limits.yaml", id="not-yaml"),
])
def test_a_malformed_file_is_refused_whole_with_the_entry_named(text: str, field: str) -> None:
    with pytest.raises(LimitsConfigError) as info:
        parse_policy(text)
    assert info.value.field == field


# -- checks and their messages ---------------------------------------------------------------

def test_too_many_workers_names_the_field_the_value_the_limit_and_the_fix() -> None:
    lim = policy("maxWorkersPerCluster: 50").for_namespace("a")
    (v,) = limits.check_cluster_spec(lim, cluster_spec(80))
    assert v.field == "spec.worker.replicas"
    assert v.message == (
        "spec.worker.replicas=80 exceeds the limit of 50 workers per cluster set by the operator's "
        f"administrator ({SOURCE}, key limits.yaml, field maxWorkersPerCluster); lower "
        "spec.worker.replicas or ask your administrator to raise the limit")
    assert limits.check_cluster_spec(lim, cluster_spec(50)) == []


def test_the_workers_of_other_groups_count_toward_the_cluster() -> None:
    lim = policy("maxWorkersPerCluster: 10").for_namespace("a")
    (v,) = limits.check_cluster_spec(lim, cluster_spec(6), others=5, cluster="c")
    assert "spec.worker.replicas=6 (with 5 more in other worker groups of DaskCluster c)" in v.message


def test_a_job_is_checked_in_its_runner_and_in_its_cluster() -> None:
    lim = policy("allowedImages: [ghcr.io/dask/]\nresources: {memory: {max: 1Gi}}").for_namespace("a")
    spec = {"job": {"spec": pod("evil.example/miner:1")},
            "cluster": {"spec": cluster_spec(1, limits={"memory": "2Gi"})}}
    found = limits.check_job_spec(lim, spec)
    assert [v.field for v in found] == ["spec.job.spec.containers[0].image",
                                        "spec.cluster.spec.worker.spec.containers[0].resources.limits.memory"]
    assert "'evil.example/miner:1' is not among the allowed images (ghcr.io/dask/)" in found[0].message
    assert "=2Gi exceeds the maximum of 1Gi memory per container" in found[1].message


def test_resource_ranges_apply_to_requests_limits_and_init_containers() -> None:
    lim = policy("resources: {cpu: {min: 100m, max: '4'}, nvidia.com/gpu: {max: 1}}").for_namespace("a")
    spec = {"initContainers": [{"name": "i", "image": "x", "resources": {"requests": {"cpu": "10m"}}}],
            "containers": [{"name": "c", "image": "x",
                            "resources": {"limits": {"cpu": "8", "nvidia.com/gpu": 2}}}]}
    found = limits.check_pod_spec(lim, spec, "spec")
    assert [v.field for v in found] == ["spec.initContainers[0].resources.requests.cpu",
                                        "spec.containers[0].resources.limits.cpu",
                                        "spec.containers[0].resources.limits.nvidia.com/gpu"]
    assert "is below the minimum of 100m cpu" in found[0].message
    assert "raise spec.initContainers[0].resources.requests.cpu" in found[0].message
    assert limits.check_pod_spec(lim, pod(requests={"cpu": "500m"}), "spec") == []


def test_a_config_error_refuses_with_its_reason() -> None:
    lim = limits.Policy(source=SOURCE, error="key limits.yaml: maxWorkersPerCluster: must be ...").for_namespace("a")
    assert lim.any
    problem = limits.config_problem(lim)
    assert problem is not None and "is invalid and no valid one has been read yet" in problem.message


# -- admission order -------------------------------------------------------------------------

def obj(name: str, created: str, admitted: bool | None = None) -> dict[str, Any]:
    conds = [] if admitted is None else [{"type": "Admitted", "status": str(admitted)}]
    return {"metadata": {"name": name, "uid": name, "creationTimestamp": created},
            "status": {"conditions": conds}}


def holds(o: dict[str, Any]) -> bool:
    return limits.is_admitted(o["status"], started=False)


def test_admitted_objects_keep_their_place_and_waiting_ones_go_oldest_first() -> None:
    running = obj("running", "2026-01-01T00:00:09Z", admitted=True)
    older = obj("older", "2026-01-01T00:00:01Z", admitted=False)
    newer = obj("newer", "2026-01-01T00:00:05Z")
    everyone = [running, older, newer]
    kw = {"holds_place": holds, "waits_in_line": lambda o: True}
    assert limits.has_place(older, everyone, 2, **kw) == (True, 1)
    assert limits.has_place(newer, everyone, 2, **kw) == (False, 1)
    assert limits.has_place(newer, everyone, 3, **kw) == (True, 1)
    # one that could never be admitted does not block the line
    assert limits.has_place(newer, everyone, 2, holds_place=holds,
                            waits_in_line=lambda o: o["metadata"]["name"] != "older") == (True, 1)
    assert limits.has_place(newer, everyone, None, **kw) == (True, 0)


def test_ties_in_age_are_broken_by_name() -> None:
    a, b = obj("a", "2026-01-01T00:00:00Z"), obj("b", "2026-01-01T00:00:00Z")
    kw = {"holds_place": holds, "waits_in_line": lambda o: True}
    assert limits.has_place(a, [a, b], 1, **kw)[0] and not limits.has_place(b, [a, b], 1, **kw)[0]


def test_objects_from_before_limits_are_admitted_by_what_they_already_did() -> None:
    assert limits.is_admitted({}, started=True)
    assert not limits.is_admitted({}, started=False)
    assert not limits.is_admitted({"conditions": [{"type": "Admitted", "status": "False"}]}, started=True)
    assert limits.refused_message({"conditions": [{"type": "Admitted", "status": "False",
                                                   "message": "why"}]}) == "why"


# -- the autoscaler under the workers-per-cluster cap ----------------------------------------

def group(name: str, replicas: int, cluster: str = "c") -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"cluster": cluster, "worker": {"replicas": replicas}}}


def worker(group_name: str, phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"labels": {"dask.org/workergroup-name": group_name}}, "status": {"phase": phase}}


def decide(current: int, target: int, limit: autoscaler.Ceiling | None, *, minimum: int = 0,
           maximum: int = 10, last_change: float = float("-inf")) -> autoscaler.Decision:
    return autoscaler.decide(current=current, target=target, minimum=minimum, maximum=maximum,
                             now=100.0, last_change=last_change, below_since=None, up_cooldown=10,
                             down_window=60, limit=limit)


def test_the_cap_left_to_an_autoscaled_group_counts_every_group_of_its_cluster() -> None:
    lim = policy("maxWorkersPerCluster: 5").for_namespace("a")
    groups = [group("c-default", 0), group("c-extra", 2), group("other-default", 9, cluster="other")]
    ceiling = autoscaler.ceiling(lim, group="c-default", cluster="c", groups=groups, worker_pods=[])
    assert ceiling is not None and ceiling.workers == 3
    assert ceiling.why == (f"the administrator's cap of 5 workers per cluster ({SOURCE}, key limits.yaml, "
                           "field maxWorkersPerCluster), 2 of them taken by the other worker groups of "
                           "DaskCluster c")
    # the other group's running workers count when there are more of them than it asks for
    pods = [worker("c-extra") for _ in range(4)] + [worker("c-extra", "Succeeded")]
    assert autoscaler.ceiling(lim, group="c-default", cluster="c", groups=groups, worker_pods=pods).workers == 1
    # no cap, no ceiling
    assert autoscaler.ceiling(policy("maxJobsPerNamespace: 1\nmaxWorkersPerCluster: null")
                              .for_namespace("a"), group="c-default",
                              cluster="c", groups=groups, worker_pods=[]) is None


def test_a_cap_below_what_the_group_runs_keeps_its_workers_instead_of_removing_them() -> None:
    lim = policy("maxWorkersPerCluster: 2").for_namespace("a")
    ceiling = autoscaler.ceiling(lim, group="c-default", cluster="c", groups=[group("c-default", 4)],
                                 worker_pods=[worker("c-default") for _ in range(4)])
    assert ceiling is not None and ceiling.workers == 4
    assert "the group keeps the 4 workers it has: a limit never removes running workers" in ceiling.why


def test_an_invalid_configuration_holds_the_group_at_its_size() -> None:
    lim = limits.Policy(source=SOURCE, error="key limits.yaml: maxWorkersPerCluster: bad").for_namespace("a")
    ceiling = autoscaler.ceiling(lim, group="c-default", cluster="c", groups=[],
                                 worker_pods=[worker("c-default")])
    assert ceiling is not None and ceiling.workers == 1 and ceiling.reason == "LimitsConfigInvalid"
    assert f"until their configuration ({SOURCE}) is fixed: key limits.yaml" in ceiling.why


@pytest.mark.parametrize("current,target,minimum,maximum,replicas,asked", [
    pytest.param(0, 8, 0, 10, 3, "the target of 8", id="scheduler-target"),
    pytest.param(0, 20, 0, 10, 3, "spec.maximum=10", id="maximum"),
    pytest.param(0, 0, 5, 10, 3, "spec.minimum=5", id="minimum-above-the-cap"),
    pytest.param(3, 20, 0, 10, 3, "spec.maximum=10", id="held-at-the-cap"),
])
def test_the_autoscaler_asks_for_no_more_than_the_cap_and_says_so(
        current: int, target: int, minimum: int, maximum: int, replicas: int, asked: str) -> None:
    made = decide(current, target, autoscaler.Ceiling(3, "the cap"), minimum=minimum, maximum=maximum)
    assert (made.replicas, made.limited) == (replicas, True)
    assert made.reason.endswith(f"; {asked} is limited to 3 by the cap")


def test_the_autoscaler_under_a_cap_it_does_not_reach_decides_as_without_one() -> None:
    for limit in (None, autoscaler.Ceiling(8, "the cap")):
        made = decide(1, 4, limit)
        assert (made.replicas, made.limited) == (4, False)
        assert made.reason == "scheduler wants 4 workers; scaled up to 4"


def test_a_scale_up_waiting_for_its_cooldown_already_names_the_cap() -> None:
    made = decide(1, 9, autoscaler.Ceiling(3, "the cap"), last_change=95.0)
    assert made.replicas == 1 and made.limited
    assert made.reason == "scale-up to 3 waits for the 10s cooldown; the target of 9 is limited to 3 by the cap"
