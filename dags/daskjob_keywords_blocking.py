"""Example: a DaskJob built from keyword arguments, waited for in the worker (blocking).

No manifest: ``script``, ``n_workers`` and ``env`` go through the same spec builder as
``dask_kube_jobs.make_job_spec``. The task blocks its worker slot while the job runs, streaming
the runner's log into the task log line by line; the job's result is the return value.
``env`` is templated, so the text comes from the run's ``params``; an empty text makes the
runner exit with status 3, and the task fails with the job's reason, exit code and log tail.

    airflow dags test daskjob_keywords_blocking
    airflow dags test daskjob_keywords_blocking -c '{"text": ""}'     # a failing run
"""

from __future__ import annotations

import pendulum
from airflow.providers.common.compat.sdk import DAG, task

from dask_kube_jobs.airflow_provider.operators.daskjob import DaskJobOperator

WORD_COUNT = """
import os
import sys
import dask.bag as db
from dask.distributed import Client
from dask_kube_jobs import set_result

client = Client()
client.wait_for_workers(2, timeout=120)
print(f"connected to {client.scheduler.address}", flush=True)
text = os.environ["TEXT"].split()
if not text:
    print("ERROR: no input text, giving up", file=sys.stderr, flush=True)
    sys.exit(3)
bag = db.from_sequence(text, npartitions=4)
top = dict(bag.frequencies().topk(2, key=lambda kv: kv[1]).compute())
print(f"counted {len(text)} words; most frequent: {top}", flush=True)
set_result({"words": len(text), "top": top})
"""

with DAG(
    dag_id="daskjob_keywords_blocking",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"text": "dask on kube dask jobs dask airflow kube"},
    tags=["dask-kube-jobs", "example"],
) as dag:
    counts = DaskJobOperator(
        task_id="word_count",
        script=WORD_COUNT,
        n_workers=2,
        env={"TEXT": "{{ params.text }}"},
        deferrable=False,
    )

    @task
    def report(result: dict) -> str:
        """Reads the job's result from XCom."""
        top = max(result["top"], key=result["top"].get)
        print(f"{result['words']} words, most frequent {top!r}")
        return top

    report(counts.output)
