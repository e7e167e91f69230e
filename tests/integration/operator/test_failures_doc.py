"""docs/operator-failures.md: its manifest applies and runs, and every reason the operator
writes is listed on it (or, for the administrator's limits, on docs/operator-limits.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .test_daskjob import job_done, wait_for

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "operator-failures.md"

pytestmark = pytest.mark.timeout(180)


def test_the_pages_manifest_runs(kubectl: Kubectl) -> None:
    text = PAGE.read_text()
    found = re.search(r"<!-- applied by [^>]+ -->\n```yaml\n(.*?)```", text, re.S)
    assert found, "the manifest block of docs/operator-failures.md has moved"
    kubectl("apply", "-f", "-", input=found.group(1))
    job = wait_for(kubectl, "daskjob", "slow-start", job_done)
    assert job["status"]["jobStatus"] == "Successful", job["status"]
    assert job["spec"]["cluster"]["spec"]["schedulerStartupTimeoutSeconds"] == 600


def test_every_terminal_reason_the_operator_writes_is_documented() -> None:
    # reasons of the administrator's limits (LimitExceeded, ...) are on the limits page
    page = PAGE.read_text() + (REPO / "docs" / "operator-limits.md").read_text()
    sources = "\n".join(p.read_text() for p in (REPO / "dask_kube_jobs" / "operator").glob("*.py"))
    written = set(re.findall(r'REASON_\w+ = "(\w+)"', sources))
    written |= set(re.findall(r'Problem\("(\w+)"', sources))
    written |= set(re.findall(r'reason="(\w+)"', sources))
    written |= set(re.findall(r'self\.fail\("(\w+)"', sources))
    assert {"InvalidSpec", "Forbidden", "SchedulerFailed", "SchedulerNotReady",
            "RunnerDeleted", "DeadlineExceeded", "InvalidName"} <= written
    missing = sorted(r for r in written if f"`{r}`" not in page)
    assert not missing, f"reasons not on docs/operator-failures.md: {missing}"
