"""A DaskJob pass writes its status once, with only what changed, and never moves a phase back."""

from __future__ import annotations

from dask_kube_jobs.operator.job import StatusDraft


def test_a_pass_that_decides_nothing_new_writes_nothing() -> None:
    draft = StatusDraft({"jobStatus": "Running", "attempts": 1, "message": None})
    draft.set(jobStatus="Running", attempts=1)
    draft.set(message=None)  # absent on the server and null here: the same
    assert draft.take() == {}


def test_many_decisions_of_one_pass_make_one_patch_of_the_differences() -> None:
    draft = StatusDraft(None)
    draft.set(jobStatus="JobCreated")
    draft.set(conditions=[{"type": "Admitted", "status": "True"}])
    draft.set(startTime="2026-01-01T00:00:00Z")
    draft.set(jobStatus="ClusterCreated", clusterName="j")
    assert draft.take() == {"jobStatus": "ClusterCreated", "clusterName": "j",
                            "startTime": "2026-01-01T00:00:00Z",
                            "conditions": [{"type": "Admitted", "status": "True"}]}
    assert draft.take() == {}  # handed out once
    draft.set(clusterName="j", retryAt=None)
    assert draft.take() == {}


def test_a_value_set_and_set_back_within_the_pass_is_not_written() -> None:
    draft = StatusDraft({"message": "waiting: image pull"})
    draft.set(message="waiting: unschedulable")
    draft.set(message="waiting: image pull")
    assert draft.take() == {}


def test_a_phase_never_moves_backwards() -> None:
    draft = StatusDraft({"jobStatus": "Successful"})
    draft.set(jobStatus="Running", jobRunnerPodName="r")
    assert draft.current["jobStatus"] == "Successful"
    assert draft.take() == {"jobRunnerPodName": "r"}
