"""JupyterLab served by the scheduler (``KubeCluster(jupyter=True)``), opened from outside the
cluster through the dashboard port-forward KubeCluster opens, as from a laptop.

The kubelet runs the scheduler with this environment's interpreter, which has ``jupyterlab``
through the ``test`` extra (its ``jupyter`` extra).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dask_kube_jobs._kubecluster import KubeCluster
from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(240)


def test_jupyterlab_opens_through_the_port_forward_and_its_api_answers(
        local_control_plane: Any, namespace: str, kubectl: Kubectl) -> None:
    options = {"namespace": namespace, "kubeconfig": local_control_plane.kubeconfig,
               "quiet": True}
    with KubeCluster(name="lab", n_workers=0, jupyter=True, **options) as cluster:
        link = cluster.jupyter_link
        assert link.startswith("http://localhost:") and link.endswith("/jupyter/lab"), link
        assert link.rsplit("/jupyter/", 1)[0] == cluster.dashboard_link.rsplit("/status", 1)[0]
        with httpx.Client(timeout=30) as http:
            page = http.get(link)  # no token: distributed runs Jupyter without authentication
            assert page.status_code == 200, page.text[:500]
            assert "<title>JupyterLab</title>" in page.text
            assert '"baseUrl": "/jupyter/"' in page.text  # the page's API calls stay under it
            api = link.removesuffix("lab") + "api"
            status = http.get(f"{api}/status")
            assert status.status_code == 200 and "started" in status.json(), status.text
            contents = http.get(f"{api}/contents")
            assert contents.status_code == 200 and contents.json()["type"] == "directory"
        # A cluster connected to by name says it serves Jupyter, from its scheduler's args.
        with KubeCluster.from_name("lab", **options) as attached:
            assert attached.jupyter and attached.jupyter_link.endswith("/jupyter/lab")
            assert httpx.get(attached.jupyter_link, timeout=30).status_code == 200
