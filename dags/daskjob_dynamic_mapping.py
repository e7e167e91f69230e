"""Example: one DaskJob per parameter with dynamic task mapping, results collected at the end.

``@task.daskjob`` turns a plain function into a DaskJob's runner: the function runs in the
runner Pod with a ``distributed.Client`` connected to the job's own cluster, and what it
returns (a small JSON value) is the task's XCom. ``.expand`` maps it over the run's ``sizes``
parameter, so each size gets its own task instance, its own job and its own cluster; the
``collect`` task receives every mapped result, in order.

    airflow dags test daskjob_dynamic_mapping
    airflow dags test daskjob_dynamic_mapping -c '{"sizes": [10, 20]}'
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

with DAG(
    dag_id="daskjob_dynamic_mapping",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"sizes": [100, 200, 300]},
    tags=["dask-kube-jobs", "example"],
) as dag:

    @task
    def sizes(**context) -> list[int]:
        """The parameters to map over, from the run's configuration."""
        return [int(n) for n in context["params"]["sizes"]]

    @task.daskjob(n_workers=1)
    def sum_of_squares(n: int) -> dict:
        """Runs in the job's runner Pod: imports go inside, the cluster's Client is set."""
        import dask.array as da

        total = int((da.arange(n, chunks=max(1, n // 4)) ** 2).sum().compute())
        print(f"sum of squares below {n}: {total}", flush=True)
        return {"n": n, "total": total}

    @task
    def collect(results: list[dict]) -> dict:
        """Every mapped job's result, in map-index order."""
        totals = {str(r["n"]): r["total"] for r in results}
        print(f"collected {len(totals)} results: {totals}")
        return totals

    collect(sum_of_squares.expand(n=sizes()))
