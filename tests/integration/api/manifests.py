"""Small DaskJob manifests for the job API tests (one worker, short runner scripts)."""

from __future__ import annotations

from typing import Any

from ..operator.jobs import daskjob

RESULT = """
    import dask_kube_jobs
    from dask.distributed import Client
    client = Client()
    total = client.submit(sum, [1, 2, 3]).result()
    print(f"total is {total}", flush=True)
    dask_kube_jobs.set_result({"total": total, "ok": True})
"""

FAILS = """
    import sys
    print("starting the work", flush=True)
    print("boom: the input is missing", flush=True)
    sys.exit(3)
"""

SLEEPS = """
    import time
    print("tick", flush=True)
    time.sleep({seconds})
    print("tock", flush=True)
"""

# Attempt 1 fails, attempt 2 succeeds: the runner Pod's name ends in its attempt number.
RETRIES = """
    import os, sys
    attempt = os.environ["POD_NAME"].rsplit("-", 1)[1]
    print(f"attempt {attempt} starts", flush=True)
    if attempt == "1":
        print("attempt 1 fails", flush=True)
        sys.exit(5)
    print(f"attempt {attempt} succeeds", flush=True)
"""


def result_job(name: str, **spec: Any) -> dict[str, Any]:
    return daskjob(name, RESULT, workers=1, **spec)


def failing_job(name: str) -> dict[str, Any]:
    return daskjob(name, FAILS, workers=1)


def sleeping_job(name: str, seconds: float, **spec: Any) -> dict[str, Any]:
    return daskjob(name, SLEEPS.replace("{seconds}", str(seconds)), workers=1, **spec)


def retrying_job(name: str) -> dict[str, Any]:
    return daskjob(name, RETRIES, workers=1, backoffLimit=1)
