"""An example DAG failing, end to end: real Airflow ``dag.test()`` on SQLite, the local control
plane, the real operator and real Dask processes. The example DAGs' successful runs are checked
in ``test_dags_cli.py``, through the ``airflow dags test`` a user types (which calls the same
``dag.test()``): one run per DAG, not one in this process and another in the CLI's."""

from __future__ import annotations

from typing import Any

from .conftest import load_example_dag


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


def test_a_failing_job_fails_the_task_with_reason_exit_code_and_log_tail(run_dag: Any) -> None:
    dr, log = run_dag(load_example_dag("daskjob_keywords_blocking"), text="")
    assert dr.state == "failed"
    assert "DaskJobFailed" in log, log[-5000:]
    assert "exit code 3" in log or "code 3" in log, log[-5000:]
    assert "ERROR: no input text, giving up" in log
    assert "last lines of its runner's log" in log
    assert xcom(dr, "word_count", "job_name")  # pushed before waiting, kept on failure
