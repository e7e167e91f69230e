"""The worked plugin example of docs/operator-plugins.md, run as the page says it works."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from .jobs import daskjob
from .operator_procs import REPO, OperatorProcess, eventually, plane_without_operator
from .test_daskjob import gone
from .test_plugins import install_plugin

pytestmark = pytest.mark.timeout(180)

NS = "plugged"


def documented_plugin() -> str:
    page = (REPO / "docs" / "operator-plugins.md").read_text()
    found = re.search(r"<!-- plugin: finish_events -->\n```python\n(.*?)```", page, re.S)
    assert found, "the example block of docs/operator-plugins.md has moved"
    return found.group(1)


def test_the_documented_plugin_posts_one_event_when_a_job_finishes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "finish_events", documented_plugin())
    with plane_without_operator(tmp_path / "plane", NS) as k:
        op = OperatorProcess(k.kubeconfig, NS, tmp_path / "operator.log",
                             env={"PYTHONPATH": str(site)})
        try:
            op.start().wait_ready()
            assert "loaded plugins: finish_events" in op.tail()
            k("apply", "-f", "-", input=json.dumps(daskjob("noted", "print('hi')", workers=0)))

            def annotation() -> str:
                return k("get", "daskjob", "noted", "-o",
                         r"jsonpath={.metadata.annotations.example\.com/finish-reported}").stdout
            assert eventually(annotation, 90, f"the plugin's annotation ({op.tail()})") == "Successful"
            # teardown goes on after the report and brings more watch events: none reports again
            assert gone(k, "daskcluster", "noted")
            events = [e for e in k("get", "events", "-o", "json").json()["items"]
                      if e["reason"] == "JobFinished"]
            assert [(e["involvedObject"]["kind"], e["involvedObject"]["name"], e["type"])
                    for e in events] == [("DaskJob", "noted", "Normal")], events
            assert events[0].get("count", 1) == 1
            assert events[0]["message"] == "Successful (Completed) after 1 attempt(s)"
        finally:
            op.stop()
