"""The operator's log formats: JSON lines with the object a record is about, and text."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import kopf
import pytest

from dask_kube_jobs.operator import logs


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    handler = logs.configure("json", stream=out)
    yield out, handler
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_json_line_has_time_level_logger_and_message(captured: tuple[io.StringIO, logging.Handler]) -> None:
    out, _ = captured
    logging.getLogger("dask_kube_jobs.operator").warning("scaled %s to %d", "workers", 3)
    [line] = lines(out)
    assert line["level"] == "WARNING" and line["logger"] == "dask_kube_jobs.operator"
    assert line["message"] == "scaled workers to 3"
    assert str(line["time"]).endswith("Z") and "T" in str(line["time"])
    assert not {"kind", "namespace", "name"} & line.keys()


async def test_records_logged_in_a_daemon_task_carry_its_object(
        captured: tuple[io.StringIO, logging.Handler]) -> None:
    out, _ = captured

    async def daemon(name: str) -> None:
        logs.bind_object("DaskJob", "team-a", name)
        await asyncio.sleep(0)
        logging.getLogger("dask_kube_jobs.operator").info("pass")

    await asyncio.gather(asyncio.create_task(daemon("one")), asyncio.create_task(daemon("two")))
    logging.getLogger("dask_kube_jobs.operator").info("outside")
    found = {(line["message"], line.get("name")) for line in lines(out)}
    assert found == {("pass", "one"), ("pass", "two"), ("outside", None)}
    assert all(line["kind"] == "DaskJob" and line["namespace"] == "team-a"
               for line in lines(out) if line["message"] == "pass")


def test_kopf_object_references_become_fields(captured: tuple[io.StringIO, logging.Handler]) -> None:
    out, _ = captured
    ref = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "name": "c",
           "uid": "u", "namespace": "ns"}
    # Real settings, as kopf attaches them: once kopf's event poster is installed on this
    # logger (any earlier in-process kopf run does that), it reads them from every record.
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False
    logging.getLogger("kopf.objects").warning("handler failed", extra={
        "k8s_ref": ref, "k8s_skip": False, "settings": settings})
    [line] = lines(out)
    assert (line["kind"], line["namespace"], line["name"]) == ("DaskCluster", "ns", "c")
    assert not {"k8s_ref", "k8s_skip", "settings"} & line.keys()


def test_an_exception_keeps_its_traceback(captured: tuple[io.StringIO, logging.Handler]) -> None:
    out, _ = captured
    try:
        raise ValueError("bad spec")
    except ValueError:
        logging.getLogger("dask_kube_jobs.operator").exception("reconcile failed")
    [line] = lines(out)
    assert line["level"] == "ERROR" and "ValueError: bad spec" in str(line["exc_info"])


def test_text_lines_are_prefixed_with_the_object() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    out = io.StringIO()
    try:
        logs.configure("text", stream=out)
        logging.getLogger("kopf.objects").info("done", extra={
            "k8s_ref": {"kind": "DaskJob", "name": "j", "namespace": "ns"}})
        logging.getLogger("dask_kube_jobs.operator").info("plain")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    first, second = out.getvalue().splitlines()
    assert first.endswith("INFO kopf.objects: [DaskJob ns/j] done")
    assert second.endswith("INFO dask_kube_jobs.operator: plain")


def test_an_unknown_format_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="--log-format 'xml': use one of text, json"):
        logs.configure("xml")
