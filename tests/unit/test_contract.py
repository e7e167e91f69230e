"""The contract layer: one name rule for client and operator, and the pure helpers where the
copies they replaced disagreed (each test pins the stricter behaviour that was kept)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from dask_kube_jobs import SpecError, make_job_spec
from dask_kube_jobs.contract import names
from dask_kube_jobs.contract.api_resources import DASKJOBS, PODS
from dask_kube_jobs.contract.conditions import condition, find_condition, put_condition
from dask_kube_jobs.contract.objects import controller_ref, owner_reference
from dask_kube_jobs.contract.pods import pod_active, pod_ready
from dask_kube_jobs.contract.quantity import parse_quantity
from dask_kube_jobs.contract.times import fmt_time, now, parse_time
from dask_kube_jobs.jobs._manifest import check_job_manifest


def job_manifest(name: str) -> dict[str, Any]:
    return make_job_spec(name=name, command=["python", "-c", "pass"])


# -- the name rule ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["1job", "Job", "job-", "a" * (names.MAX_CLUSTER_NAME + 1),
                                  "job\n"])
def test_the_client_refuses_a_name_in_the_operators_words(name: str) -> None:
    manifest = job_manifest("ok")
    manifest["metadata"]["name"] = name
    problem = names.cluster_name_problem(name)
    assert problem is not None
    with pytest.raises(SpecError) as caught:
        check_job_manifest(manifest)
    assert caught.value.argument == "metadata.name"
    assert str(caught.value) == problem.replace("metadata.name ", "metadata.name: ", 1)


def test_a_leading_digit_was_the_difference() -> None:
    """The client used to take ``1job`` (a DNS-1123 label) and the operator refuse it."""
    assert "must start with a letter" in (names.cluster_name_problem("1job") or "")
    check_job_manifest(job_manifest("job1"))  # digits elsewhere are fine


def test_names_follow_upstream() -> None:
    assert names.scheduler_name("c") == "c-scheduler"
    assert names.scheduler_address("c", "ns") == "tcp://c-scheduler.ns.svc.cluster.local:8786"
    assert names.dashboard_address("c", "ns") == "http://c-scheduler.ns.svc.cluster.local:8787"
    assert 63 - len("-scheduler") == names.MAX_CLUSTER_NAME


def test_resources_build_their_paths() -> None:
    assert DASKJOBS.api_version == names.API_VERSION
    assert DASKJOBS.path("ns", "j", "status") == \
        "/apis/kubernetes.dask.org/v1/namespaces/ns/daskjobs/j/status"
    assert PODS.path("ns") == "/api/v1/namespaces/ns/pods"
    assert str(DASKJOBS) == "daskjobs.kubernetes.dask.org"


# -- quantities ------------------------------------------------------------------------------

@pytest.mark.parametrize("text,value", [
    ("500m", Decimal("0.5")), ("16Gi", Decimal(16 * 2**30)), ("1e3", Decimal(1000)),
    ("100n", Decimal("1e-7")), ("5u", Decimal("5e-6")), (".5", Decimal("0.5")),
    ("+2", Decimal(2)), ("-1", Decimal(-1)), (3, Decimal(3)), (0.25, Decimal("0.25")),
])
def test_quantities(text: Any, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [" 2", "2 ", "1.2.3", "1e3m", "16GB", "", "inf", "NaN",
                                  "1_000", True, None, [1]])
def test_what_no_copy_may_take_for_a_quantity(text: Any) -> None:
    """The operator's copy knew no ``n``/``u``; the kubelet's took ``1.2.3`` and stripped
    spaces; the scheduler's took ``NaN`` and ``1_000``. Kubernetes takes none of these."""
    with pytest.raises(ValueError, match="not a quantity"):
        parse_quantity(text)


# -- times -----------------------------------------------------------------------------------

def test_times_round_trip_and_are_always_aware() -> None:
    stamp = fmt_time(dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc))
    assert stamp == "2024-05-01T12:00:00Z"
    assert parse_time(stamp) == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    naive = parse_time("2024-05-01T12:00:00.123456")  # MicroTime without a zone
    assert naive is not None and naive.tzinfo is not None
    assert (now() - naive).total_seconds() > 0  # comparable with now(): no TypeError


@pytest.mark.parametrize("value", [None, "", "yesterday", 17])
def test_what_is_not_a_time(value: Any) -> None:
    assert parse_time(value) is None


# -- conditions ------------------------------------------------------------------------------

def test_a_condition_moves_its_transition_time_only_when_it_flips() -> None:
    old = [{"type": "Ready", "status": "True", "reason": "A", "message": "",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}, {"type": "Other", "status": "True"}]
    same = put_condition(old, "Ready", True, "B", "still", generation=3)
    assert same[0] == {"type": "Ready", "status": "True", "reason": "B", "message": "still",
                       "lastTransitionTime": "2020-01-01T00:00:00Z", "observedGeneration": 3}
    assert same[1] == old[1]  # others untouched, order kept
    flipped = put_condition(old, "Ready", False, "C", "down")
    assert flipped[0]["lastTransitionTime"] != "2020-01-01T00:00:00Z"
    assert "observedGeneration" not in flipped[0]
    added = put_condition(None, "New", True, "R", "m")
    assert find_condition(added, "New") == added[0]
    assert condition({"status": {"conditions": old}}, "Other") == old[1]


# -- owners and pods -------------------------------------------------------------------------

def test_owner_references() -> None:
    owner = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n", "uid": "u"}}
    ref = owner_reference(owner)
    assert ref == {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u",
                   "controller": True, "blockOwnerDeletion": True}
    plain = owner_reference(owner, controller=False)
    child = {"metadata": {"ownerReferences": [plain, ref]}}
    assert controller_ref(child) == ref
    assert controller_ref({"metadata": {"ownerReferences": [plain]}}) is None


@pytest.mark.parametrize("pod,active,ready", [
    ({"metadata": {}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}, True, True),
    ({"metadata": {}, "status": {"phase": "Pending"}}, True, False),
    ({"metadata": {}, "status": {"phase": "Succeeded"}}, False, False),
    ({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}, "status": {"phase": "Running"}},
     False, False),
])
def test_pod_predicates(pod: dict[str, Any], active: bool, ready: bool) -> None:
    assert pod_active(pod) is active
    assert pod_ready(pod) is ready
    assert pod_ready(None) is False
