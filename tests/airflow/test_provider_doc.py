"""docs/airflow-provider.md, every block run or checked by what consumes it.

- Python blocks are whole DAG files. All of them are parsed in one DagBag, Airflow's own DAG
  parser, which must load each with no import error and no warning; the ``@task.daskjob`` DAG
  then runs with ``dag.test()`` against the session's local control plane. One run, for CI's
  time: the other DAG (a ``DaskJobOperator`` on two workers) is parsed only; running that
  operator's DAGs is what ``test_example_dags.py`` and ``test_dags_cli.py`` do.
- Bash blocks run with bash in a throw-away ``AIRFLOW_HOME`` where running them costs seconds:
  the connection's ``export`` (its value then read by the provider's hook). The install line
  is checked against this environment instead of run (a ``pip install`` of Airflow is minutes):
  each extra it names must be declared by the installed distribution and every requirement
  it brings must be met here. CI's two environments hold those extras (the first through
  ``test``; the Airflow 2.11 leg installs ``airflow2,local,operator``), with ``airflow2`` in
  place of ``airflow`` on 2.11, as the page's table says.
  The walkthrough starts a control plane of its own and runs a deferred DAG (about a minute):
  each of its commands is run elsewhere (``tests/airflow/test_dags_cli.py``,
  ``tests/integration/cli/test_local_cli.py``, the ``airflow_db`` fixture), and here its
  paths and names are checked against the code.

Any other block (a JSON or YAML one too: the connection's extras are checked inside the
``export`` block) fails the first test: a block added to the page needs a runner here.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS
from packaging.requirements import Requirement

from dask_kube_jobs.airflow_provider import get_provider_info
from dask_kube_jobs.airflow_provider.hooks.daskjob import FIELDS, DaskKubeJobsHook
from dask_kube_jobs.local.kubeconfig import DEFAULT_KUBECONFIG

from ..doc_blocks import Block, blocks
from .conftest import CONN_ENV, ROOT
from .test_example_dags import xcom

pytestmark = pytest.mark.timeout(300)

PAGE = ROOT / "docs" / "airflow-provider.md"
RUN_DAG_ID = "sum_of_squares"  # the one DAG of the page that dag.test() runs
CONN_FORM = get_provider_info()["connection-types"][0]["conn-fields"]


def kind_of(block: Block) -> str:
    """Which check below runs ``block``; "" when none does."""
    if block.lang == "python":
        return "dag"
    if block.lang == "bash":
        if "pip install" in block.code:
            return "install"
        if "AIRFLOW_CONN_" in block.code:
            return "connection"
        if "airflow dags test" in block.code:
            return "walkthrough"
    return ""


def of_kind(kind: str) -> list[Block]:
    return [b for b in blocks(PAGE) if kind_of(b) == kind]


def test_every_block_of_the_page_has_a_check_here() -> None:
    found = blocks(PAGE)
    assert [str(b) for b in found if not kind_of(b)] == []
    assert {kind_of(b) for b in found} >= {"dag", "install", "connection", "walkthrough"}


def section(title: str) -> str:
    """The text of the page's section ``## <title>``, up to the next section."""
    return PAGE.read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_names(text: str) -> list[str]:
    """The names in the first column of the tables in ``text``."""
    return re.findall(r"^\| `([\w-]+)` \|", text, re.M)


def test_the_field_table_is_the_hook_and_the_connection_form() -> None:
    rows = table_names(section("Connection"))
    assert set(rows) == set(FIELDS) == set(CONN_FORM), (rows, FIELDS, list(CONN_FORM))


def dagbag_of(folder: Path) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag  # Airflow 3
    except ImportError:
        from airflow.models.dagbag import DagBag
    return DagBag(str(folder))


def test_the_python_blocks_are_dag_files_one_runs(run_dag: Any, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "dags"
    folder.mkdir()
    dags = of_kind("dag")
    for block in dags:
        (folder / f"block_line_{block.line}.py").write_text(block.code)
    bag = dagbag_of(folder)
    assert bag.import_errors == {}, bag.import_errors
    assert getattr(bag, "captured_warnings", {}) == {}, bag.captured_warnings
    per_file: dict[str, list[str]] = {}
    for dag_id, dag in bag.dags.items():
        assert dag.tasks, f"DAG {dag_id} of the page has no task"
        per_file.setdefault(Path(dag.fileloc).name, []).append(dag_id)
    assert sorted(per_file) == sorted(f"block_line_{b.line}.py" for b in dags), per_file

    if AIRFLOW_V_3_0_PLUS:
        # dag.test() runs a DAG that a configured bundle holds, and parses the bundles in
        # order until it finds it: the page's first, the usual one still configured.
        bundle = {"classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
        monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([
            {"name": "airflow-provider-md", **bundle, "kwargs": {"path": str(folder)}},
            {"name": "dags-folder", **bundle, "kwargs": {}}]))
    dr, log = run_dag(bag.dags[RUN_DAG_ID])
    assert dr.state == "success", log[-5000:]
    assert xcom(dr, "sum_of_squares") == {"n": 10, "total": 285}
    assert '`{"n": 10, "total": 285}`' in PAGE.read_text()  # what the page says it returns


def test_the_install_line_resolves_in_this_environment() -> None:
    (block,) = of_kind("install")
    (line,) = block.code.strip().splitlines()
    assert line.startswith("python3 -m venv .venv && .venv/bin/pip install -e "), line
    spec = shlex.split(line)[-1]
    path, extras = re.fullmatch(r"(\.)\[([\w,-]+)\]", spec).groups()  # type: ignore[union-attr]
    assert (ROOT / path / "pyproject.toml").is_file()
    wanted = extras.split(",")
    if not AIRFLOW_V_3_0_PLUS:  # the table: `airflow2` in place of `airflow` on Airflow 2.11
        wanted = ["airflow2" if e == "airflow" else e for e in wanted]
    dist = importlib.metadata.distribution("dask-kube-jobs")
    declared = set(dist.metadata.get_all("Provides-Extra") or [])
    table = table_names(section("Install"))
    assert set(wanted) <= declared and set(table) <= declared, (wanted, table, declared)
    unmet = []
    for req in map(Requirement, dist.requires or []):
        if req.marker and not any(req.marker.evaluate({"extra": e}) for e in wanted):
            continue
        try:
            have = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            have = None
        if have is None or not req.specifier.contains(have, prereleases=True):
            unmet.append(f"{req} (installed: {have})")
    assert unmet == [], f"{spec} does not resolve here: {unmet}"


def test_the_connection_export_is_read_by_the_hook(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (block,) = of_kind("connection")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c",
                           block.code + '\nprintf %s "$' + CONN_ENV + '"'],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    value = json.loads(done.stdout)
    assert value["conn_type"] == "dask_kube_jobs"
    assert set(value["extra"]) <= set(CONN_FORM), value["extra"]  # the form's fields
    monkeypatch.setenv(CONN_ENV, done.stdout)
    target = DaskKubeJobsHook().get_target()
    assert (target.kube_config_path, target.namespace) == ("/etc/kube/config", "analytics")


def test_the_walkthrough_uses_the_names_the_code_uses() -> None:
    (block,) = of_kind("walkthrough")
    lines = [line.strip() for line in block.code.strip().splitlines()]
    assert lines[0] == ". .venv/bin/activate"  # the virtualenv of the install block
    assert lines[1] == "dask-kube-jobs local up --detach"
    exported = dict(word.split("=", 1) for word in shlex.split(lines[2])[1:])
    assert shlex.split(lines[2])[0] == "export"
    assert exported == {"KUBECONFIG": str(DEFAULT_KUBECONFIG),
                        "AIRFLOW__CORE__DAGS_FOLDER": "$PWD/dags"}
    migrate, dags_test = lines[3].split(" && ")
    assert migrate == "airflow db migrate"
    dag_id = dags_test.removeprefix("airflow dags test ")
    assert (ROOT / "dags" / f"{dag_id}.py").is_file()
    # ... and the commands are run where said above
    assert f"def test_{dag_id}__" in (ROOT / "tests/airflow/test_dags_cli.py").read_text()
    local_cli = (ROOT / "tests/integration/cli/test_local_cli.py").read_text()
    assert '"local", "up", "--detach"' in local_cli
    assert '"airflow", "db", "migrate"' in (ROOT / "tests/airflow/conftest.py").read_text()
