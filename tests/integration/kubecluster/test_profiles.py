"""KubeCluster with a DaskClusterProfile: keyword arguments it does not know are the profile's
options, checked early against the profile and applied by the operator to the worker Pods."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dask_kube_jobs import KubeCluster, ProfileOptionError
from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_profile(kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """A profile named after the test's namespace (cluster-scoped: deleted after the test)."""
    name = f"{namespace}-small"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
        "metadata": {"name": name},
        "spec": {"worker": {"replicas": 1, "maxReplicas": 2},
                 "options": [{"name": "worker_memory", "target": "worker.memory",
                              "quantity": {"default": "512Mi", "min": "256Mi",
                                           "max": "1Gi"}}]}}))
    yield name
    kubectl("delete", "daskclusterprofile", name, "--ignore-not-found", "--wait=false",
            check=False)


def worker_pod(kubectl: Kubectl, cluster: str, timeout: float = 30) -> dict[str, Any]:
    """The cluster's worker Pod, once its worker group has made it."""
    deadline = time.monotonic() + timeout
    while True:
        pods = kubectl("get", "pods", "-l", f"dask.org/cluster-name={cluster},"
                       "dask.org/component=worker", "-o", "json").json()["items"]
        if pods or time.monotonic() > deadline:
            [pod] = pods
            return pod
        time.sleep(0.2)


def test_a_profile_option_given_as_a_keyword_reaches_the_worker_pod(
        local_control_plane: Any, namespace: str, kubectl: Kubectl, small_profile: str) -> None:
    options = {"namespace": namespace, "kubeconfig": local_control_plane.kubeconfig,
               "quiet": True, "profile": small_profile}
    with pytest.raises(ProfileOptionError, match="allowed: 256Mi to 1Gi"):
        KubeCluster(name="greedy", worker_memory="4Gi", **options)
    assert kubectl("get", "daskclusters", "-o", "name").stdout.strip() == ""  # none made

    with KubeCluster(name="profiled", worker_memory="768Mi", **options):
        pod = worker_pod(kubectl, "profiled")  # the profile's one worker
        resources = pod["spec"]["containers"][0]["resources"]
        assert resources["limits"]["memory"] == resources["requests"]["memory"] == "768Mi"
        assert kubectl("get", "daskcluster", "profiled", "-o", "json").json()["spec"][
            "profile"] == {"name": small_profile, "options": {"worker_memory": "768Mi"}}
