"""docs/python-api.md, run as a reader would run it.

Every fenced block of the page is Python and they run in order in one Python session (one
process, one namespace of names, as pasted into ``python``), in a fresh Kubernetes namespace,
finding the local control plane through ``$KUBECONFIG`` whose context names that namespace, as
a user's would. Each block's output is checked for what the page says it shows.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import dask_kube_jobs
from dask_kube_jobs import errors
from dask_kube_jobs.local.testing import Kubectl

from ...doc_blocks import blocks

pytestmark = pytest.mark.timeout(300)

PAGE = Path(__file__).resolve().parents[3] / "docs" / "python-api.md"
# Runs the blocks in one namespace of names, printing a marker before each and the time it
# took after it; a block that raises ends the run with its traceback.
DRIVER = """
import json, sys, time
blocks = json.loads(sys.stdin.read())
names = {"__name__": "__main__"}
for i, code in enumerate(blocks):
    print(f"--- block {i} ---", flush=True)
    start = time.monotonic()
    exec(compile(code, f"<python-api.md block {i}>", "exec"), names)
    print(f"(block {i} took {time.monotonic() - start:.1f}s)", flush=True)
"""


def test_every_block_is_python_and_every_error_class_is_in_the_table() -> None:
    found = blocks(PAGE)
    assert len(found) >= 5 and {b.lang for b in found} == {"python"}, found
    rows = set(re.findall(r"^\| `(\w+)` \|", PAGE.read_text(), re.M))
    public = {*errors.__all__, "SpecError", "ResultError"}
    assert public <= rows, f"error classes missing from the page's table: {public - rows}"
    assert all(issubclass(getattr(dask_kube_jobs, name), errors.DaskKubeJobsError)
               for name in rows), rows


def test_the_page_runs_top_to_bottom(kubeconfig: str, namespace: str, kubectl: Kubectl,
                                     tmp_path: Path) -> None:
    import json

    config: dict[str, Any] = yaml.safe_load(Path(kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    scoped = tmp_path / "kubeconfig.yaml"
    scoped.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(scoped)}

    code = [b.code for b in blocks(PAGE)]
    done = subprocess.run([sys.executable, "-c", DRIVER], input=json.dumps(code), env=env,
                          capture_output=True, text=True, timeout=280, cwd=tmp_path)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    outputs = done.stdout.split("--- block ")[1:]
    assert len(outputs) == len(code), done.stdout
    spec, lifecycle, asynchronous, failures, cluster, lab, profiles = outputs[:7]

    assert "DaskJob sum-demo 1" in spec
    assert f"submitted sum-demo in {namespace}" in lifecycle
    assert "runner: the total is 45" in lifecycle
    assert "Successful exit code 0 after 1 attempt(s)" in lifecycle
    assert "result: {'total': 45}" in lifecycle
    assert "failed: Error exit code 1" in lifecycle, lifecycle
    assert "its log ends with: the input is missing" in lifecycle
    assert "jobs here: ['fails-demo', 'sum-demo']" in lifecycle
    assert "reattached: Successful Successful" in lifecycle
    assert "sum-demo Successful {'total': 45} 'the total is 45'" in asynchronous, asynchronous
    assert "fails-demo Failed None 'the input is missing'" in asynchronous
    assert "deleted: [True, True]" in asynchronous
    assert "refused before sending: name: 'Nightly_ETL' must consist of lower case" in failures
    assert f'DaskJob "no-such-job" not found in namespace "{namespace}"' in failures
    assert "hint: list the jobs with `dask-kube-jobs list`" in failures
    assert "workers: 0" in cluster and "the scheduler computed: 1024" in cluster, cluster
    assert "scheduler: dask scheduler --host 0.0.0.0 --jupyter" in lab, lab
    assert "offered: True" in profiles, profiles
    assert "worker_memory sets worker.memory: default 512Mi, 256Mi to 2Gi" in profiles
    assert ("refused before creating: profile 'docs-standard': option worker_memory='64Gi' is "
            "out of range; allowed: 256Mi to 2Gi") in profiles
    # the page cleans up after itself: both jobs deleted, the KubeCluster's cluster too
    left = kubectl("get", "daskjobs,daskclusters", "-o", "name").stdout.split()
    assert left == [], left
    assert "docs-standard" not in kubectl("get", "daskclusterprofiles", "-o", "name").stdout
