"""The operator's metric helpers: pass accounting, job outcomes, gauges, leadership, URLs."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket

import aiohttp
import pytest
from prometheus_client import REGISTRY, generate_latest

from dask_kube_jobs.operator import metrics


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_pass_is_counted_and_timed_by_result() -> None:
    ok = value("dask_operator_reconciles_total", kind="UnitKind", result="ok")
    err = value("dask_operator_reconciles_total", kind="UnitKind", result="error")
    timed = value("dask_operator_reconcile_duration_seconds_count", kind="UnitKind")
    with metrics.reconcile_pass("UnitKind"):
        pass
    with pytest.raises(KeyError), metrics.reconcile_pass("UnitKind"):
        raise KeyError("spec")
    assert value("dask_operator_reconciles_total", kind="UnitKind", result="ok") == ok + 1
    assert value("dask_operator_reconciles_total", kind="UnitKind", result="error") == err + 1
    assert value("dask_operator_reconcile_errors_total", kind="UnitKind", type="KeyError") >= 1
    assert value("dask_operator_reconcile_duration_seconds_count", kind="UnitKind") == timed + 2


async def test_a_cancelled_pass_is_neither_ok_nor_error() -> None:
    before = value("dask_operator_reconcile_duration_seconds_count", kind="Cancelled")

    async def daemon() -> None:
        with metrics.reconcile_pass("Cancelled"):
            await asyncio.sleep(10)

    task = asyncio.create_task(daemon())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert value("dask_operator_reconcile_duration_seconds_count", kind="Cancelled") == before


def job(phase: str | None, **status: str) -> dict[str, object]:
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"jobStatus": phase, **status} if phase else status}


def test_a_job_outcome_counts_once_at_the_terminal_write() -> None:
    labels = {"phase": "Failed", "reason": "UnitDeadline"}
    before = value("dask_operator_job_outcomes_total", **labels)
    seconds = value("dask_operator_job_duration_seconds_sum", phase="Failed")
    after = job("Failed", reason="UnitDeadline", startTime="2026-01-01T00:01:00Z",
                endTime="2026-01-01T00:01:42Z")
    metrics.observe_job_status_write(job("Running"), {"jobStatus": "Failed"}, after)
    # a later write of the same pass, or a new process re-reading a finished job: no count
    metrics.observe_job_status_write(job("Running"), {"ttl": "x"}, after)
    metrics.observe_job_status_write(job("Failed"), {"jobStatus": "Failed"}, after)
    metrics.observe_job_status_write(job("Running"), {"jobStatus": "Failed"}, None)  # job gone
    assert value("dask_operator_job_outcomes_total", **labels) == before + 1
    assert value("dask_operator_job_duration_seconds_sum", phase="Failed") == seconds + 42


def test_a_job_that_never_started_is_timed_from_its_creation() -> None:
    seconds = value("dask_operator_job_duration_seconds_sum", phase="Successful")
    metrics.observe_job_status_write(job(None), {"jobStatus": "Successful"},
                                     job("Successful", endTime="2026-01-01T00:00:05Z"))
    assert value("dask_operator_job_duration_seconds_sum", phase="Successful") == seconds + 5


def test_gauges_come_from_the_snapshot_at_scrape_time() -> None:
    saved = metrics.STATE.source
    metrics.STATE.source = lambda: metrics.Snapshot(
        {"DaskJob": 3, "DaskCluster": 1}, {"Running": 2, "New": 1},
        {("worker", "Running"): 4})
    try:
        text = generate_latest(REGISTRY).decode()
    finally:
        metrics.STATE.source = saved
    assert 'dask_operator_managed_objects{kind="DaskJob"} 3.0' in text
    assert 'dask_operator_managed_objects{kind="DaskAutoscaler"} 0.0' in text
    assert 'dask_operator_jobs{phase="Running"} 2.0' in text
    assert 'dask_operator_pods{component="worker",phase="Running"} 4.0' in text


NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def peer(priority: int, seen_ago: float, lifetime: int = 60) -> dict[str, object]:
    return {"priority": priority, "lifetime": lifetime,
            "lastseen": (NOW - dt.timedelta(seconds=seen_ago)).isoformat()}


@pytest.mark.parametrize(("peers", "leads"), [
    ({"me": peer(10, 1)}, True),
    ({"me": peer(10, 1), "other": peer(5, 1)}, True),
    ({"me": peer(10, 1), "other": peer(20, 1)}, False),
    ({"me": peer(10, 1), "other": peer(10, 1)}, False),  # kopf pauses both on a tie
    ({"me": peer(10, 1), "other": peer(20, 61)}, True),  # the higher one's keep-alive lapsed
    ({"me": peer(10, 61)}, False),  # our own entry lapsed
    ({"other": peer(1, 1)}, False),  # not registered yet
], ids=["alone", "highest", "outranked", "tied", "leader-dead", "self-stale", "absent"])
def test_leadership_follows_kopf_peering_rules(peers: dict[str, object], leads: bool) -> None:
    assert metrics.leads(peers, "me", now=NOW) is leads


async def test_a_standalone_operator_reports_its_role_without_the_api() -> None:
    assert await metrics.OperatorStatus().role() == "standalone"
    assert await metrics.OperatorStatus(peering="p").role() == "unknown"


@pytest.mark.parametrize("url", ["0.0.0.0:9090", "https://0.0.0.0:9090/m", "http://host/m"])
def test_an_endpoint_url_needs_scheme_host_and_port(url: str) -> None:
    with pytest.raises(ValueError, match=r"--metrics .*expected http://HOST:PORT/PATH"):
        metrics.parse_endpoint(url, "--metrics")


def test_an_endpoint_url_gives_host_port_and_path() -> None:
    assert metrics.parse_endpoint("http://0.0.0.0:9090/metrics", "--metrics") == \
        ("0.0.0.0", 9090, "/metrics")
    assert metrics.parse_endpoint("http://127.0.0.1:8081", "--readiness") == ("127.0.0.1", 8081, "/")


async def test_readiness_answers_503_until_started_then_200_with_the_role() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    status = metrics.OperatorStatus()
    runners = await metrics.serve(status, metrics=f"http://127.0.0.1:{port}/metrics",
                                  readiness=f"http://127.0.0.1:{port}/readyz")
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/readyz") as rsp:
                assert (rsp.status, await rsp.json()) == (503, {"ready": False, "reason": "starting"})
            status.ready.set()
            async with http.get(f"http://127.0.0.1:{port}/readyz") as rsp:
                assert (rsp.status, await rsp.json()) == (200, {"ready": True, "role": "standalone"})
            async with http.get(f"http://127.0.0.1:{port}/metrics") as rsp:
                assert rsp.status == 200 and rsp.headers["Content-Type"].startswith("text/plain")
                assert "dask_operator_leader 1.0" in await rsp.text()
    finally:
        for runner in runners:
            await runner.cleanup()
    assert len(runners) == 1  # one server for both paths on one port
