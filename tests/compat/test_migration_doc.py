"""docs/migrating-from-dask-kubernetes.md, run as a reader would run it.

Every code block of the page runs, in order, in one fresh namespace: the Python blocks with
upstream's client, the shell blocks with real kubectl, both finding the local control plane
through ``$KUBECONFIG`` (whose context names the namespace, as a user's would).
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

from dask_kube_jobs.local.testing import KUBECTL, Kubectl

from ..doc_blocks import blocks
from .support import eventually

pytestmark = pytest.mark.timeout(300)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migrating-from-dask-kubernetes.md"


def test_every_block_is_python_or_bash_and_there_are_some() -> None:
    found = blocks(PAGE)
    assert found and {b.lang for b in found} <= {"python", "bash"}, found


def test_the_page_runs_top_to_bottom(upstream_kubeconfig: str, namespace: str,
                                     kubectl: Kubectl, tmp_path: Path) -> None:
    config: dict[str, Any] = yaml.safe_load(Path(upstream_kubeconfig).read_text())
    for ctx in config["contexts"]:
        ctx["context"]["namespace"] = namespace
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "PATH": os.pathsep.join([str(Path(KUBECTL).parent), os.environ.get("PATH", "")])}

    outputs = []
    for lang, code in ((b.lang, b.code) for b in blocks(PAGE)):
        argv = [sys.executable, "-c", code] if lang == "python" else \
            ["bash", "-euo", "pipefail", "-c", code]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, f"{lang} block failed:\n{code}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)

    # The Python block computed on two workers and left its cluster, which the shell block
    # then found ready, scaled, restarted the scheduler of, and deleted.
    # (upstream's client draws its progress panel on stdout too, without a final newline)
    assert outputs[0].rstrip().endswith("6"), outputs[0][-300:]
    assert "migrated-scheduler" in outputs[1] and "condition met" in outputs[1]
    header, row = outputs[1].split("condition met", 1)[1].strip().splitlines()[:2]
    columns = dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", row), strict=True))
    assert (columns["STATUS"], columns["SCHEDULER READY"]) == ("Running", "True"), columns
    eventually(lambda: kubectl("get", "daskcluster", "migrated", check=False).returncode != 0,
               what="the cluster deleted by the page")
