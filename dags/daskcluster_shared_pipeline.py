"""Example: a shared Dask cluster for several tasks, deleted as a teardown.

Some pipelines want one warm cluster for several steps rather than a fresh cluster per job:
data persisted by one task stays in the workers' memory for the next. ``create_cluster`` makes
a DaskCluster and returns its name, namespace and in-cluster scheduler address;
``cluster_ready`` (a deferrable ``DaskClusterSensor``) waits for its workers; ``load`` and
``summarise`` are plain ``@task`` functions that connect to the cluster through
``connect_to_cluster`` -- directly when run inside Kubernetes, through a port-forward when the
Airflow worker is outside -- and pass data through the cluster itself (a published dataset).
``delete_cluster`` is the teardown: it runs whatever happened, so the cluster never lingers.

    airflow dags test daskcluster_shared_pipeline
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from dask_kube_jobs.airflow_provider.operators.daskcluster import (
    CreateDaskClusterOperator,
    DeleteDaskClusterOperator,
    connect_to_cluster,
)
from dask_kube_jobs.airflow_provider.sensors.daskcluster import DaskClusterSensor

with DAG(
    dag_id="daskcluster_shared_pipeline",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"rows": 1000},
    tags=["dask-kube-jobs", "example"],
) as dag:
    create = CreateDaskClusterOperator(task_id="create_cluster", n_workers=2)
    ready = DaskClusterSensor(
        task_id="cluster_ready",
        cluster_name="{{ ti.xcom_pull(task_ids='create_cluster', key='name') }}",
        namespace="{{ ti.xcom_pull(task_ids='create_cluster', key='namespace') }}",
        min_ready_workers=2,
        deferrable=True,
        timeout=600,
    )

    @task
    def load(cluster: dict, **context) -> int:
        """Builds a dataset on the cluster and leaves it there, published by name."""
        import dask.array as da
        from distributed import Client

        rows = int(context["params"]["rows"])
        with connect_to_cluster(cluster["name"], cluster["namespace"]) as kc, Client(kc) as c:
            c.wait_for_workers(2, timeout=120)  # ready Pods may still be registering
            data = da.arange(rows * 4, chunks=rows).reshape(rows, 4).persist()
            c.publish_dataset(numbers=data, override=True)
            print(f"published {rows}x4 numbers on {cluster['scheduler_address']}")
        return rows

    @task
    def summarise(cluster: dict, rows: int) -> dict:
        """Reads the dataset the previous task left in the workers' memory."""
        from distributed import Client

        with connect_to_cluster(cluster["name"], cluster["namespace"]) as kc, Client(kc) as c:
            data = c.get_dataset("numbers")
            total = int(data.sum().compute())
            workers = len(c.scheduler_info()["workers"])
        print(f"sum of {rows}x4 numbers over {workers} workers: {total}")
        return {"rows": rows, "total": total, "workers": workers}

    delete = DeleteDaskClusterOperator(
        task_id="delete_cluster",
        cluster_name="{{ ti.xcom_pull(task_ids='create_cluster', key='name') }}",
        namespace="{{ ti.xcom_pull(task_ids='create_cluster', key='namespace') }}",
    )

    rows = load(create.output)
    create >> ready >> rows
    summarise(create.output, rows) >> delete.as_teardown(setups=create)
