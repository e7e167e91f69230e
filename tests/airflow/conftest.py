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
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
})

import airflow  # noqa: E402,F401  -- must be importable: error, never skip

# The suite turns warnings into errors (pyproject). Airflow's in-process execution API, which
# dag.test() starts, imports starlette's test client, which warns that httpx is deprecated in
# favour of httpx2: a third party's deprecation, not ours. Import it once here, quietly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import airflow.api_fastapi.execution_api.app  # noqa: E402,F401

CONN_ENV = "AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT"


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
