"""``bench/airflow_deferred.py`` at a tiny size: it runs end to end, every trigger fires once,
and its figures say what the waiting patterns must cost (a watch sends no request while the
job is quiet; the peer polls)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "airflow_deferred.py"
JOBS, SECONDS, POLL = 3, 4.0, 1.0

pytestmark = pytest.mark.timeout(180)


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_airflow_deferred", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_deferred_wait_benchmark_measures_watch_against_polling() -> None:
    bench = load_bench()
    results = await bench.run_benchmark(jobs=JOBS, seconds=SECONDS, poll_interval=POLL)
    ours, watch, peer = results["ours"], results["ours-watch-only"], results["peer"]
    for figures in (ours, watch, peer):
        assert figures["events"] == JOBS  # each trigger fired, once, with "success"
    per_minute = "API requests / waiting job / minute"
    # the peer polls once a second: ~60 requests per job per minute, fewer on a busy machine
    assert peer[per_minute] > 20, peer
    # a quiet job costs its watch nothing after the list and the watch request
    assert watch[per_minute] == 0, watch
    # following the runner's log (the default) waits on the same watch: no polling either
    assert ours[per_minute] == 0, ours
    assert watch["API requests / job to start waiting"] <= 4, watch
    # a watch event arrives at once; the peer notices at its next poll
    assert watch["reaction latency median (s)"] < peer["reaction latency median (s)"]
    table = bench.format_table(results)
    assert per_minute in table and "polling peer" in table and "not a real `airflow triggerer`" \
        in table
