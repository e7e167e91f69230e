"""Example: a DaskJob from a YAML manifest, waited for in the triggerer (deferrable).

The manifest (``manifests/sum_job.yaml``) is a Jinja template rendered with the task's
context, so ``{{ params.size }}`` picks the array size. While the job runs the task holds no
worker slot: the trigger watches the DaskJob and follows the runner's log into the task log.
The job's result (``status.result``) is the task's return value, read by the next task.

    airflow dags test daskjob_manifest_deferrable
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from dask_kube_jobs.airflow_provider.operators.daskjob import DaskJobOperator

with DAG(
    dag_id="daskjob_manifest_deferrable",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"size": 2000},
    tags=["dask-kube-jobs", "example"],
) as dag:
    total = DaskJobOperator(
        task_id="sum_array",
        manifest="manifests/sum_job.yaml",
        deferrable=True,
        on_finish_action="delete_succeeded",
    )

    @task
    def check(result: dict) -> int:
        """The runner's ``set_result`` value, through XCom."""
        assert result["sum"] == result["size"] ** 2, result
        print(f"the cluster summed {result['sum']} ones")
        return int(result["sum"])

    check(total.output)
