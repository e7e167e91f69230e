"""The example DAGs, end to end: real Airflow ``dag.test()`` on SQLite, the local control plane,
the real operator and real Dask processes."""

from __future__ import annotations

import importlib.util
from typing import Any

from .conftest import load_example_dag

HAS_TASK_STATE_STORE = importlib.util.find_spec("airflow.models.task_state_store") is not None


def xcom(dr: Any, task_id: str, key: str = "return_value") -> Any:
    try:
        from airflow.models.xcom import XComModel
        value_of = XComModel.deserialize_value
    except ImportError:  # Airflow 2.11: the table's model is XCom, its rows load deserialized
        from airflow.models.xcom import XCom as XComModel
        value_of = lambda row: row.value  # noqa: E731
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dr.dag_id, run_id=dr.run_id,
                                                 task_id=task_id, key=key).one_or_none()
        return None if row is None else value_of(row)


def test_keyword_built_job_blocks_streams_its_log_and_returns_its_result(run_dag: Any) -> None:
    dr, log = run_dag(load_example_dag("daskjob_keywords_blocking"))
    assert dr.state == "success", log[-5000:]
    result = xcom(dr, "word_count")
    assert result["words"] == 8 and result["top"]["dask"] == 3
    assert xcom(dr, "report") == "dask"
    assert "counted 8 words; most frequent" in log
    assert xcom(dr, "word_count", "job_name").startswith("word-count-")


def test_manifest_job_defers_follows_its_log_and_returns_its_result(run_dag: Any) -> None:
    dr, log = run_dag(load_example_dag("daskjob_manifest_deferrable"))
    assert dr.state == "success", log[-5000:]
    assert xcom(dr, "sum_array") == {"size": 2000, "sum": 4_000_000}
    assert xcom(dr, "check") == 4_000_000
    assert "sum of a 2000x2000 array of ones: 4000000" in log  # the runner's own line
    assert xcom(dr, "sum_array", "dashboard_url").endswith(":8787/status")
    if HAS_TASK_STATE_STORE:  # Airflow 3.3+: the store holds the job this task instance ran
        assert state_of(dr, "sum_array")["name"] == xcom(dr, "sum_array", "job_name")


def state_of(dr: Any, task_id: str) -> Any:
    import json

    from airflow.models.task_state_store import TaskStateStoreModel
    from airflow.utils.session import create_session

    from dask_kube_jobs.airflow_provider.operators.daskjob import STATE_KEY

    with create_session() as session:
        row = session.query(TaskStateStoreModel).filter_by(
            dag_id=dr.dag_id, run_id=dr.run_id, task_id=task_id, key=STATE_KEY).one()
        return json.loads(row.value)


def test_a_failing_job_fails_the_task_with_reason_exit_code_and_log_tail(run_dag: Any) -> None:
    dr, log = run_dag(load_example_dag("daskjob_keywords_blocking"), text="")
    assert dr.state == "failed"
    assert "DaskJobFailed" in log, log[-5000:]
    assert "exit code 3" in log or "code 3" in log, log[-5000:]
    assert "ERROR: no input text, giving up" in log
    assert "last lines of its runner's log" in log
    assert xcom(dr, "word_count", "job_name")  # pushed before waiting, kept on failure
