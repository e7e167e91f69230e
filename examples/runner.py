"""A DaskJob runner that does real Dask work and returns a small result.

It connects to the job's own Dask cluster (``Client()`` reads ``DASK_SCHEDULER_ADDRESS``, which
the operator injects), waits for the expected workers, builds a chunked dask.array, keeps its
chunks in the workers' memory, checks that every worker computed and holds part of it, reduces
it, and returns a summary with ``dask_kube_jobs.set_result``; the operator puts that value in
the DaskJob's ``status.result``.

``examples/result-job.yaml`` ships this file in a ConfigMap (a test keeps the two identical), so
it runs in the stock ``ghcr.io/dask/dask`` image. Run it yourself against any scheduler::

    DASK_SCHEDULER_ADDRESS=tcp://127.0.0.1:8786 EXPECTED_WORKERS=2 python examples/runner.py
"""

import json
import os
import sys

import dask.array as da
from dask.distributed import Client, wait


def set_result(value):
    """dask_kube_jobs.set_result when the image has the package, else the same file write."""
    try:
        from dask_kube_jobs import set_result as record
    except ImportError:  # e.g. the stock ghcr.io/dask/dask image
        path = os.environ.get("DKJ_TERMINATION_MESSAGE_PATH") or "/dev/termination-log"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(value, separators=(",", ":")))
        return
    record(value)


def main():
    expected = int(os.environ.get("EXPECTED_WORKERS", "2"))
    client = Client()
    client.wait_for_workers(expected, timeout=120)
    workers = client.scheduler_info()["workers"]
    names = sorted(w["name"] for w in workers.values())
    print(f"connected to {client.scheduler.address} with {len(names)} workers: {', '.join(names)}")

    # A 4000 x 4000 array of ones in 16 chunks: the sum is known exactly.
    x = da.ones((4000, 4000), chunks=(1000, 1000)).persist()
    wait(x)
    held = client.run(lambda dask_worker: sum(1 for key in dask_worker.data))
    chunks = {workers[addr]["name"]: count for addr, count in sorted(held.items())}
    total = int((x + x.T).sum().compute())
    print(f"sum={total} chunks per worker={chunks}")

    problems = []
    if len(names) < expected:
        problems.append(f"only {len(names)} of {expected} workers joined")
    if total != 2 * 4000 * 4000:
        problems.append(f"wrong sum {total}")
    idle = [name for name, count in chunks.items() if count == 0]
    if idle:
        problems.append(f"workers that computed nothing: {idle}")
    if problems:
        print("FAILED: " + "; ".join(problems), file=sys.stderr)
        return 1

    set_result({"sum": total, "workers": len(names), "chunks": chunks})
    print("all workers took part; result recorded")
    return 0


if __name__ == "__main__":
    sys.exit(main())
