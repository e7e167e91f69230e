"""Example: submit a DaskJob, wait for it with a deferrable sensor, delete it as a teardown.

Three tasks instead of one ``DaskJobOperator`` that does it all, for when waiting and cleanup
should be separate steps: ``submit`` creates the job and returns at once (its ``job_name`` and
``namespace`` XComs name it), ``wait`` is a ``DaskJobSensor`` deferred to the triggerer that
follows the runner's log and returns the job's result, and ``delete`` is a teardown of
``submit``: it runs whatever happened to ``wait`` (success, failure, timeout), so no job or
cluster is left behind, and it does not decide the run's state.

    airflow dags test daskjob_submit_sensor_teardown
    airflow dags test daskjob_submit_sensor_teardown -c '{"rows": 0}'    # a failing run
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from dask_kube_jobs.airflow_provider.operators.daskjob import (
    DaskJobOperator,
    DeleteDaskJobOperator,
)
from dask_kube_jobs.airflow_provider.sensors.daskjob import DaskJobSensor

MEAN = """
import os
import sys
import dask.array as da
from dask.distributed import Client
from dask_kube_jobs import set_result

client = Client()
rows = int(os.environ["ROWS"])
if rows <= 0:
    print(f"ERROR: ROWS must be positive, got {rows}", file=sys.stderr, flush=True)
    sys.exit(2)
x = da.arange(rows * 10, chunks=rows).reshape(rows, 10)
mean = float(x.mean().compute())
print(f"mean of a {rows}x10 range: {mean}", flush=True)
set_result({"rows": rows, "mean": mean})
"""

JOB = "{{ ti.xcom_pull(task_ids='submit', key='job_name') }}"
NAMESPACE = "{{ ti.xcom_pull(task_ids='submit', key='namespace') }}"

with DAG(
    dag_id="daskjob_submit_sensor_teardown",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"rows": 100},
    tags=["dask-kube-jobs", "example"],
) as dag:
    submit = DaskJobOperator(
        task_id="submit",
        script=MEAN,
        n_workers=1,
        env={"ROWS": "{{ params.rows }}"},
        wait_for_completion=False,
    )
    wait = DaskJobSensor(task_id="wait", job_name=JOB, namespace=NAMESPACE, deferrable=True,
                         timeout=600)
    delete = DeleteDaskJobOperator(task_id="delete", job_name=JOB, namespace=NAMESPACE)

    @task
    def report(result: dict) -> float:
        """The job's result, as the sensor returned it."""
        print(f"{result['rows']} rows, mean {result['mean']}")
        return float(result["mean"])

    submit >> wait >> delete.as_teardown(setups=submit)
    report(wait.output)
