"""The configuration examples of the operator's pages, read by what reads them in production.

Limits files (docs/operator-limits.md, docs/security-model.md) go through the operator's own
parser, and mean what the pages say they mean; the queries and alert rules of
docs/operator-observability.md name only metrics and labels the operator exports, and its JSON
log line has the fields of the operator's JSON formatter; the packaging blocks of
docs/operator-plugins.md declare the entry point the operator loads, build on the chart's
image, and the page's check of the entry point finds a plugin installed the page's way.
Each block is found by its page and language, so one that moves or changes is still checked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from dask_kube_jobs.operator import logs, metrics, plugins
from dask_kube_jobs.operator.limits import parse_policy

from ..doc_blocks import ROOT, Block, blocks


def page_blocks(page: str, lang: str) -> list[Block]:
    found = [b for b in blocks(ROOT / "docs" / page) if b.lang == lang]
    assert found, f"no {lang} block in docs/{page}"
    return found


# -- limits ----------------------------------------------------------------------------------
def test_the_limits_example_means_what_the_page_says() -> None:
    (block,) = page_blocks("operator-limits.md", "yaml")
    policy = parse_policy(block.code, source="ConfigMap a/b")
    default = policy.for_namespace("team-a")
    assert (default.max_workers_per_cluster, default.max_clusters_per_namespace,
            default.max_jobs_per_namespace) == (50, 5, 20)
    assert default.allowed_images == ("ghcr.io/dask/", "registry.example.com/data-team/")
    assert default.pod_policy.level == "restricted"
    research = policy.for_namespace("research")
    assert research.max_workers_per_cluster == 200
    # "each resource name is replaced on its own": memory replaced, cpu kept
    assert research.resources["memory"].max_text == "64Gi"
    assert research.resources["cpu"].max_text == "4"
    # "still only default and dask-runner"
    assert (research.pod_policy.level, research.pod_policy.service_accounts) == \
        ("baseline", ("dask-runner",))
    sandbox = policy.for_namespace("sandbox")
    assert (sandbox.max_jobs_per_namespace, sandbox.allowed_images) == (2, None)


def test_the_security_models_service_account_example_parses() -> None:
    (block,) = page_blocks("security-model.md", "yaml")
    policy = parse_policy(block.code)
    assert policy.for_namespace("team-a").pod_policy.service_accounts == ("dask-runner",)
    platform = policy.for_namespace("platform").pod_policy
    assert (platform.level, platform.service_accounts) == ("privileged", ("*",))


# -- metrics and logs ------------------------------------------------------------------------
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported_labels() -> dict[str, set[str]]:
    """Every sample name the operator exports, with the labels it carries."""
    found: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for suffix in SUFFIXES[metric._type]:
                extra = {"le"} if suffix == "_bucket" else set()
                found[metric._name + suffix] = set(metric._labelnames) | extra
    saved = metrics.STATE.source
    metrics.STATE.source = lambda: metrics.Snapshot({"DaskJob": 1}, {"Running": 1},
                                                    {("worker", "Running"): 1})
    try:
        for family in metrics.STATE.collect():
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    finally:
        metrics.STATE.source = saved
    assert set(found) >= {s.name for f in REGISTRY.collect() for s in f.samples
                          if s.name.startswith("dask_operator_") and
                          not s.name.endswith("_created")}
    return found


def check_expression(expr: str, exported: dict[str, set[str]]) -> None:
    used = re.findall(r"\b(dask_operator_\w+)(?:\{([^}]*)\})?", expr)
    assert used, expr
    labels: set[str] = set()
    for name, selector in used:
        assert name in exported, f"{name} is not a metric the operator exports ({expr})"
        keys = set(re.findall(r"(\w+)\s*=~?", selector))
        assert keys <= exported[name], (name, keys - exported[name])
        labels |= exported[name]
    for group in re.findall(r"\bby \(([^)]*)\)", expr):
        keys = {k.strip() for k in group.split(",")}
        assert keys <= labels, (expr, keys - labels)


def test_the_example_queries_and_alerts_use_exported_metrics_and_labels() -> None:
    exported = exported_labels()
    (queries,) = page_blocks("operator-observability.md", "promql")
    expressions = re.split(r"\n\s*\n", queries.code)
    assert len(expressions) >= 5
    for expr in expressions:
        check_expression("\n".join(line for line in expr.splitlines()
                                   if not line.startswith("#")), exported)
    (rules,) = page_blocks("operator-observability.md", "yaml")
    groups = yaml.safe_load(rules.code)["groups"]
    alerts = [rule for group in groups for rule in group["rules"]]
    assert alerts and all(rule["alert"] and rule["annotations"]["summary"] for rule in alerts)
    for rule in alerts:
        check_expression(rule["expr"], exported)


def test_the_json_log_line_has_the_fields_of_the_operators_formatter() -> None:
    (block,) = page_blocks("operator-observability.md", "json")
    shown = json.loads(block.code)
    record = logging.LogRecord("dask_kube_jobs.operator", logging.INFO, __file__, 1,
                               shown["message"], None, None)
    record.k8s_object = {"kind": "DaskJob", "namespace": "team-a", "name": "etl"}
    line = json.loads(logs.JsonLineFormatter().format(record))
    assert list(line) == list(shown), (line, shown)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert {k: line[k] for k in ("level", "logger", "kind", "namespace", "name")} == \
        {k: shown[k] for k in ("level", "logger", "kind", "namespace", "name")}


# -- plugins ---------------------------------------------------------------------------------
def documented_module() -> str:
    page = (ROOT / "docs" / "operator-plugins.md").read_text()
    (module,) = re.findall(r"<!-- plugin: (\w+) -->", page)
    return module


def test_the_plugin_package_declares_the_entry_point_the_operator_loads() -> None:
    (block,) = page_blocks("operator-plugins.md", "toml")
    project = tomllib.loads(block.code)["project"]
    assert project["entry-points"][plugins.GROUP] == {documented_module(): documented_module()}


def test_the_plugin_image_builds_on_the_charts_image_and_keeps_its_user() -> None:
    (block,) = page_blocks("operator-plugins.md", "dockerfile")
    values = yaml.safe_load((ROOT / "charts" / "dask-kube-jobs" / "values.yaml").read_text())
    chart = yaml.safe_load((ROOT / "charts" / "dask-kube-jobs" / "Chart.yaml").read_text())
    lines = block.code.strip().splitlines()
    assert lines[0] == f"FROM {values['image']['repository']}:{chart['appVersion']}"
    (user,) = re.findall(r"^USER (.*)$", (ROOT / "operator" / "Dockerfile").read_text(), re.M)
    assert lines[-1] == f"USER {user}"


def test_the_entry_point_check_finds_a_plugin_installed_the_pages_way(tmp_path: Path) -> None:
    """The page's test example fakes a distribution with its ``install_plugin``; the page's
    shell check, run against it, must list the entry point."""
    (example,) = [b for b in page_blocks("operator-plugins.md", "python")
                  if "def install_plugin" in b.code]
    names: dict[str, Any] = {}
    exec(compile(example.code, str(example), "exec"), names)
    site = tmp_path / "site"
    site.mkdir()
    module = documented_module()
    names["install_plugin"](site, module, "")
    (check,) = page_blocks("operator-plugins.md", "bash")
    env = {**os.environ, "PYTHONPATH": str(site),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", check.code], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"EntryPoint(name='{module}', value='{module}', group='{plugins.GROUP}')" in \
        done.stdout, done.stdout
