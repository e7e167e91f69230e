"""Example: a shared Dask cluster for several DaskJobs, deleted as a teardown.

Some pipelines want one warm cluster for several steps rather than a fresh cluster per job:
data persisted by one step stays in the workers' memory for the next. ``create_cluster`` makes
a DaskCluster and returns its name, namespace and in-cluster scheduler address;
``cluster_ready`` (a deferrable ``DaskClusterSensor``) waits for its workers; ``load`` and
``summarise`` are DaskJobs on that cluster (``cluster_ref``: the job's ``spec.clusterRef``),
so their runners get its scheduler address, make no cluster of their own and leave it running
when they end; they pass data through the cluster itself (a published dataset).
``delete_cluster`` is the teardown: it runs whatever happened, so the cluster never lingers.

    airflow dags test daskcluster_shared_pipeline
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG

from dask_kube_jobs.airflow_provider.operators.daskcluster import (
    CreateDaskClusterOperator,
    DeleteDaskClusterOperator,
)
from dask_kube_jobs.airflow_provider.operators.daskjob import DaskJobOperator
from dask_kube_jobs.airflow_provider.sensors.daskcluster import DaskClusterSensor

CLUSTER = "{{ ti.xcom_pull(task_ids='create_cluster', key='name') }}"
NAMESPACE = "{{ ti.xcom_pull(task_ids='create_cluster', key='namespace') }}"

# Builds a dataset on the cluster and leaves it there, published by name.
LOAD = """
import os
import dask.array as da
from dask.distributed import Client
from dask_kube_jobs import set_result

rows = int(os.environ["ROWS"])
client = Client()
client.wait_for_workers(2, timeout=120)  # ready Pods may still be registering
data = da.arange(rows * 4, chunks=rows).reshape(rows, 4).persist()
client.publish_dataset(numbers=data, override=True)
print(f"published {rows}x4 numbers on {os.environ['DASK_SCHEDULER_ADDRESS']}", flush=True)
set_result(rows)
"""

# Reads the dataset the previous job left in the workers' memory.
SUMMARISE = """
import os
from dask.distributed import Client
from dask_kube_jobs import set_result

rows = int(os.environ["ROWS"])
client = Client()
total = int(client.get_dataset("numbers").sum().compute())
workers = len(client.scheduler_info()["workers"])
print(f"sum of {rows}x4 numbers over {workers} workers: {total}", flush=True)
set_result({"rows": rows, "total": total, "workers": workers})
"""

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
        cluster_name=CLUSTER,
        namespace=NAMESPACE,
        min_ready_workers=2,
        deferrable=True,
        timeout=600,
    )
    load = DaskJobOperator(task_id="load", script=LOAD, cluster_ref=CLUSTER, namespace=NAMESPACE,
                           env={"ROWS": "{{ params.rows }}"}, deferrable=False)
    summarise = DaskJobOperator(task_id="summarise", script=SUMMARISE, cluster_ref=CLUSTER,
                                namespace=NAMESPACE, env={"ROWS": "{{ params.rows }}"},
                                deferrable=False)
    delete = DeleteDaskClusterOperator(
        task_id="delete_cluster",
        cluster_name=CLUSTER,
        namespace=NAMESPACE,
    )

    create >> ready >> load >> summarise >> delete.as_teardown(setups=create)
