"""Every example DAG in ``dags/``, run the way a user runs it: ``airflow dags test <dag_id>``.

A real Airflow CLI process per DAG (SQLite metadata database, the ``dask_kube_jobs`` connection
from the environment, this repository's ``dags/`` as the DAG folder: see ``conftest``) against
the local control plane with the real operator and real Dask processes. Each test checks the
run succeeded, the results in XCom, and that the lines the Dask code printed reached the log of
the task that waited for it.

Where the task log is: ``airflow dags test`` runs every task (and every trigger, inline) in its
own process without an executor, and Airflow 3 then streams each task's log to the command's
output between ``[DAG TEST] starting task_id=<t>`` and ``[DAG TEST] end task task_id=<t>``
instead of writing ``logs/dag_id=.../*.log`` files; :func:`task_log` cuts one task's section
out of it (and also reads any log files, for Airflow versions that write them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import HOME, ROOT

pytestmark = pytest.mark.timeout(600)

EXAMPLE_DAGS = sorted(p.stem for p in (ROOT / "dags").glob("*.py"))
HAS_TASK_STATE_STORE = importlib.util.find_spec("airflow.models.task_state_store") is not None


def test_the_cli_tests_cover_every_example_dag() -> None:
    tested = {name.removeprefix("test_").split("__")[0] for name in globals()
              if name.startswith("test_") and "__" in name}
    assert set(EXAMPLE_DAGS) <= tested, set(EXAMPLE_DAGS) - tested


class DagTest:
    """One ``airflow dags test`` run: the process, the DagRun row, and its task logs."""

    def __init__(self, dag_id: str, conf: dict[str, Any] | None = None) -> None:
        args = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
        if conf:
            args += ["-c", json.dumps(conf)]
        self.proc = subprocess.run(args, capture_output=True, text=True, timeout=540,
                                   env=os.environ)
        self.output = self.proc.stdout + self.proc.stderr
        self.run = last_run(dag_id)
        assert self.run is not None, self.explain()

    def task_log(self, task_id: str, map_index: int = -1) -> str:
        """Everything task ``task_id`` logged (all its sections: a deferred task has two)."""
        marker = rf"task_id={re.escape(task_id)} map_index={map_index}(\s|$)"
        start = re.compile(r"\[DAG TEST\] starting " + marker)
        end = re.compile(r"\[DAG TEST\] end task " + marker)
        sections, inside = [], False
        for line in self.output.splitlines():
            inside = inside or bool(start.search(line))
            if inside:
                sections.append(line)
            if end.search(line):
                inside = False
        files = sorted((HOME / "logs").glob(
            f"dag_id={self.run.dag_id}/run_id={self.run.run_id}/task_id={task_id}/**/*.log"))
        return "\n".join(sections + [f.read_text(errors="replace") for f in files])

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        return xcom(self.run.dag_id, self.run.run_id, task_id, key, map_index)

    def explain(self) -> str:
        return f"rc={self.proc.returncode}\n{self.output[-8000:]}"

    @property
    def succeeded(self) -> bool:
        return self.proc.returncode == 0 and self.run.state == "success"


def last_run(dag_id: str) -> Any:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter_by(dag_id=dag_id) \
            .order_by(DagRun.id.desc()).first()
        if run is not None:
            session.expunge(run)
        return run


def xcom(dag_id: str, run_id: str, task_id: str, key: str = "return_value",
         map_index: int = -1) -> Any:
    try:
        from airflow.models.xcom import XComModel
        value_of = XComModel.deserialize_value
    except ImportError:  # Airflow 2.11: the table's model is XCom, its rows load deserialized
        from airflow.models.xcom import XCom as XComModel
        value_of = lambda row: row.value  # noqa: E731
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id,
                                                 key=key, map_index=map_index).one_or_none()
        return None if row is None else value_of(row)


def state_of(run: Any, task_id: str) -> Any:
    """What the task state store holds for ``task_id`` in ``run`` (Airflow 3.3+)."""
    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    from dask_kube_jobs.airflow_provider.operators.daskjob import STATE_KEY

    with create_session() as session:
        row = session.query(TaskStateStoreModel).filter_by(
            dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key=STATE_KEY).one()
        return json.loads(row.value)


@pytest.fixture
def dags_test(airflow_db: Path, dkj_connection: dict[str, Any]) -> Any:
    return DagTest


def test_daskjob_submit_sensor_teardown__waits_deferred_and_deletes_the_job(
        dags_test: Any, kubectl: Any) -> None:
    t = dags_test("daskjob_submit_sensor_teardown")
    assert t.succeeded, t.explain()
    assert t.xcom("wait") == {"rows": 100, "mean": 499.5}
    assert t.xcom("report") == 499.5
    assert "mean of a 100x10 range: 499.5" in t.task_log("wait"), t.explain()  # the runner's
    assert t.xcom("delete") is True
    assert kubectl("get", "daskjobs", "-o", "name").stdout.strip() == ""


def test_daskjob_submit_sensor_teardown__fails_on_a_failed_job_and_still_deletes_it(
        dags_test: Any, kubectl: Any) -> None:
    t = dags_test("daskjob_submit_sensor_teardown", {"rows": 0})
    assert t.proc.returncode != 0 or t.run.state == "failed", t.explain()
    assert t.run.state == "failed"
    wait = t.task_log("wait")
    assert "DaskJobFailed" in wait and "code 2" in wait, t.explain()
    assert "ERROR: ROWS must be positive, got 0" in wait
    assert t.xcom("delete") is True  # the teardown ran although its setup's consumer failed
    assert kubectl("get", "daskjobs", "-o", "name").stdout.strip() == ""


def test_daskjob_keywords_blocking__streams_the_runner_log_into_the_task_log(
        dags_test: Any) -> None:
    t = dags_test("daskjob_keywords_blocking")
    assert t.succeeded, t.explain()
    result = t.xcom("word_count")
    assert result["words"] == 8 and result["top"]["dask"] == 3 and t.xcom("report") == "dask"
    assert t.xcom("word_count", "job_name").startswith("word-count-")
    assert "counted 8 words; most frequent" in t.task_log("word_count"), t.explain()


def test_daskjob_manifest_deferrable__follows_the_runner_log_while_deferred(
        dags_test: Any) -> None:
    t = dags_test("daskjob_manifest_deferrable")
    assert t.succeeded, t.explain()
    assert t.xcom("sum_array") == {"size": 2000, "sum": 4_000_000}
    assert t.xcom("check") == 4_000_000
    assert "sum of a 2000x2000 array of ones: 4000000" in t.task_log("sum_array"), t.explain()
    assert t.xcom("sum_array", "dashboard_url").endswith(":8787/status")
    if HAS_TASK_STATE_STORE:  # Airflow 3.3+: the store holds the job this task instance ran
        assert state_of(t.run, "sum_array")["name"] == t.xcom("sum_array", "job_name")


def test_daskjob_dynamic_mapping__runs_one_job_per_parameter_and_collects_them(
        dags_test: Any) -> None:
    t = dags_test("daskjob_dynamic_mapping")
    assert t.succeeded, t.explain()
    expected = {n: sum(i * i for i in range(n)) for n in (100, 200, 300)}
    for index, n in enumerate(expected):
        assert t.xcom("sum_of_squares", map_index=index) == {"n": n, "total": expected[n]}
        line = f"sum of squares below {n}: {expected[n]}"
        assert line in t.task_log("sum_of_squares", index), t.explain()
    assert t.xcom("collect") == {str(n): total for n, total in expected.items()}


def test_daskcluster_shared_pipeline__tasks_share_one_cluster_deleted_at_the_end(
        dags_test: Any, kubectl: Any) -> None:
    t = dags_test("daskcluster_shared_pipeline")
    assert t.succeeded, t.explain()
    cluster = t.xcom("create_cluster")
    assert cluster["scheduler_address"] == \
        f"tcp://{cluster['name']}-scheduler.{cluster['namespace']}.svc.cluster.local:8786"
    assert t.xcom("cluster_ready")["ready_workers"] == 2
    rows = 1000
    # two DaskJobs on the shared cluster (spec.clusterRef): the second reads what the first
    # left in the workers' memory, so the first job's end did not take the cluster down
    assert t.xcom("load") == rows
    assert t.xcom("summarise") == {"rows": rows, "total": sum(range(rows * 4)), "workers": 2}
    assert f"published {rows}x4 numbers on {cluster['scheduler_address']}" in t.task_log("load"), t.explain()
    assert t.xcom("delete_cluster") is True
    assert kubectl("get", "daskclusters,pods", "-o", "name").stdout.strip() == ""
