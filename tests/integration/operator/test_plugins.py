"""Operator plugins: extra kopf handlers from the ``dask_operator_plugin`` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

from .test_daskcluster import daskcluster

pytestmark = pytest.mark.timeout(180)


def install_plugin(site: Path, module: str, source: str) -> None:
    """A plugin distribution as pip would leave it: a module plus dist-info with the entry point."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{module.replace('_', '-')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dask_operator_plugin]\n{module} = {module}\n")


def wait_for_cluster(plane: LocalControlPlane, k: Kubectl, name: str,
                     predicate: Callable[[dict[str, Any]], bool], timeout: float = 90) -> dict[str, Any]:
    """The DaskCluster once ``predicate`` holds; else fail with the operator's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = k("get", "daskcluster", name, "-o", "json").json()
        if predicate(obj):
            return obj
        time.sleep(0.5)
    raise AssertionError((plane.logs / "operator.log").read_text()[-3000:])


def test_a_plugin_handler_runs_in_the_operator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "label_plugin", """
        import kopf

        @kopf.on.create("kubernetes.dask.org", "v1", "daskclusters")
        def mark(patch, **_):
            patch.metadata.labels["plugin.example.com/seen"] = "yes"
    """)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    with LocalControlPlane(tmp_path / "kc.yaml", state_dir=tmp_path / "state") as plane:
        k = Kubectl(plane.kubeconfig, "default")
        k("apply", "-f", "-", input=json.dumps(daskcluster("plugged", workers=0)))
        wait_for_cluster(plane, k, "plugged", lambda o: (o["metadata"].get("labels") or {}).get(
            "plugin.example.com/seen") == "yes")
        log = (plane.logs / "operator.log").read_text()
        assert "loaded plugins: label_plugin" in log


def test_a_broken_plugin_stops_the_operator_loudly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install_plugin(site, "broken_plugin", "raise RuntimeError('misconfigured policy')\n")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-m", "dask_kube_jobs.operator", "-A"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "plugin 'broken_plugin'" in proc.stderr and "misconfigured policy" in proc.stderr


def test_upstreams_plugin_does_not_bring_upstreams_controller(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dask-kubernetes installed beside us: its 'noop' plugin loads, its controller does not."""
    from tests.unit.test_operator_plugins import write_upstream_like

    site = tmp_path / "site"
    site.mkdir()
    write_upstream_like(site)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    with LocalControlPlane(tmp_path / "kc.yaml", state_dir=tmp_path / "state") as plane:
        k = Kubectl(plane.kubeconfig, "default")
        k("apply", "-f", "-", input=json.dumps(daskcluster("single", workers=1)))
        obj = wait_for_cluster(plane, k, "single",
                               lambda o: (o.get("status") or {}).get("phase") == "Running")
        # upstream's create handler would have labelled it; only our finalizer is on it
        assert "controller" not in (obj["metadata"].get("labels") or {})
        assert obj["metadata"].get("finalizers", []) in ([], ["kubernetes.dask.org/operator"])
        log = (plane.logs / "operator.log").read_text()
        assert "loaded plugins: noop" in log
        assert "upstreamish.controller.controller" in log and "refused" in log
