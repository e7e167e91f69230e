"""Fixtures for the Airflow provider's tests: a throw-away Airflow home on SQLite.

Nothing here skips. These tests need Airflow installed (``pip install -e '.[airflow,test]'``);
without it, importing this file fails and so does the run -- a CI leg that silently ran no
Airflow test would look green while testing nothing.

Airflow reads its configuration when first imported, so the environment is set at import time,
before ``import airflow``: a fresh ``AIRFLOW_HOME`` per test session, SQLite in it, no example
DAGs, and this repository's ``dags/`` as the DAG folder (``dag.test()`` syncs that bundle).
"""

from __future__ import annotations

import atexit
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(tempfile.mkdtemp(prefix="dkj-airflow-home-"))
atexit.register(shutil.rmtree, HOME, ignore_errors=True)
os.environ.update({
    "AIRFLOW_HOME": str(HOME),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
    # Airflow 2.11 refuses SQLite under the LocalExecutor; its SequentialExecutor is the one
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor"
    if int(importlib.metadata.version("apache-airflow").split(".")[0]) >= 3
    else "SequentialExecutor",
})

import airflow  # noqa: E402,F401  -- must be importable: error, never skip
from airflow.providers.common.compat.sdk import AIRFLOW_V_3_0_PLUS  # noqa: E402

# The suite turns warnings into errors (pyproject). Airflow's in-process execution API, which
# dag.test() starts, imports starlette's test client, which warns that httpx is deprecated in
# favour of httpx2: a third party's deprecation, not ours. Import it once here, quietly.
# (Airflow 2.11 has no execution API: its dag.test() runs tasks straight in this process.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if AIRFLOW_V_3_0_PLUS:
        import airflow.api_fastapi.execution_api.app  # noqa: E402,F401

if not AIRFLOW_V_3_0_PLUS:
    # Airflow 2.11's ExecutorSafeguard reads a thread-local record that only a thread which
    # already ran a task has: the tests that call execute() from a worker thread (to kill it
    # meanwhile) would fail on that, not on our code. Every thread gets an empty record.
    import threading  # noqa: E402

    from airflow.models.baseoperator import ExecutorSafeguard  # noqa: E402

    class _Callers(threading.local):
        def __init__(self) -> None:
            self.callers: dict[str, Any] = {}

    ExecutorSafeguard._sentinel = _Callers()

CONN_ENV = "AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT"


def pytest_configure(config: pytest.Config) -> None:
    """On Airflow 2.11 (the CI's second leg), its warnings about what changes in 3 (even its
    own metrics defaults) are not errors: the first leg runs the same code on 3. Added here,
    not as ``-W`` on the command line: resolving that category would import Airflow before the
    environment above is set."""
    if not AIRFLOW_V_3_0_PLUS:
        config.addinivalue_line("filterwarnings",
                                "ignore::airflow.exceptions.RemovedInAirflow3Warning")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An Airflow metadata database (SQLite), migrated once per session."""
    proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return HOME


@pytest.fixture
def dkj_connection(local_control_plane: Any, namespace: str,
                   monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The default ``dask_kube_jobs`` connection, pointing at the local control plane and
    this test's namespace (an environment-variable connection: no database row)."""
    extra = {"kube_config_path": str(local_control_plane.kubeconfig), "namespace": namespace}
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "dask_kube_jobs", "extra": extra}))
    return extra


def load_example_dag(name: str) -> Any:
    """The ``dag`` object of ``dags/<name>.py``, imported as Airflow's parser would."""
    import importlib.util

    path = ROOT / "dags" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_dag_{name}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture
def run_dag(airflow_db: Path, dkj_connection: dict[str, Any],
            capfd: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``run_dag(dag, **conf)`` -> (dag run, text of everything the run logged)."""
    def run(dag: Any, **conf: Any) -> tuple[Any, str]:
        capfd.readouterr()
        dr = dag.test(run_conf=conf or None)
        out, err = capfd.readouterr()
        sys.stdout.write(out[-20000:])  # keep it visible on failure
        return dr, out + err

    yield run
