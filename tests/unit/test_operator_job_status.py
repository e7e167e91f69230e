"""A DaskJob pass writes its status once, with only what changed, and never moves a phase back."""

from __future__ import annotations

from dask_kube_jobs.operator.job_status import StatusDraft


def test_a_pass_that_decides_nothing_new_writes_nothing() -> None:
    # as this version writes it: COMPLETIONS is derived whenever a phase is set
    draft = StatusDraft({"jobStatus": "Running", "attempts": 1, "message": None,
                         "completions": "0/1"})
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
                            "startTime": "2026-01-01T00:00:00Z", "completions": "0/1",
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
    draft = StatusDraft({"jobStatus": "Successful", "completions": "1/1"})
    draft.set(jobStatus="Running", jobRunnerPodName="r")
    assert draft.current["jobStatus"] == "Successful"
    assert draft.take() == {"jobRunnerPodName": "r"}


def test_the_printed_columns_follow_the_phase_and_end_time() -> None:
    draft = StatusDraft({"jobStatus": "Running", "completions": "0/1",
                         "startTime": "2026-01-01T00:00:00Z"})
    draft.set(jobStatus="Successful", endTime="2026-01-01T00:03:20Z")
    assert draft.take() == {"jobStatus": "Successful", "endTime": "2026-01-01T00:03:20Z",
                            "completions": "1/1", "duration": "3m20s"}
