"""DaskClusterProfiles, resolved by the real operator on the local control plane: what a profile
fills in reaches the Pods, an option's value within bounds is applied and one outside them is
refused, a locked field is refused before anything exists, a namespace's default profile
applies (and is waited for until it exists), and editing a profile leaves a running cluster as
it was admitted (docs/profiles.md).

Profiles are cluster-scoped: each test names its own after its namespace and deletes them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dask_kube_jobs.contract.names import ANNOTATION_DEFAULT_PROFILE
from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob
from .test_daskcluster import daskcluster
from .test_daskjob import job_done, wait_for
from .test_limits import admitted, children, condition, events_of

pytestmark = pytest.mark.timeout(90)

Obj = dict[str, Any]
MakeProfile = Callable[[str, Obj], str]


@pytest.fixture
def profile(kubectl: Kubectl, namespace: str) -> Iterator[MakeProfile]:
    """Create a DaskClusterProfile named ``<namespace>-<suffix>``; deleted after the test."""
    made: list[str] = []

    def make(suffix: str, spec: Obj) -> str:
        name = f"{namespace}-{suffix}"
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
            "metadata": {"name": name}, "spec": spec}))
        made.append(name)
        return name

    yield make
    for name in made:
        kubectl("delete", "daskclusterprofile", name, "--ignore-not-found", "--wait=false", check=False)


def pods_of(kubectl: Kubectl, cluster: str, component: str) -> list[Obj]:
    items = kubectl("get", "pods", "-l", f"dask.org/cluster-name={cluster},dask.org/component={component}",
                    "-o", "json").json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def wait_pod(kubectl: Kubectl, cluster: str, component: str, other_than: str = "") -> Obj:
    found: list[Obj] = []

    def made(_: Obj) -> bool:
        found[:] = [p for p in pods_of(kubectl, cluster, component) if p["metadata"]["uid"] != other_than]
        return bool(found)

    wait_for(kubectl, "daskcluster", cluster, made, timeout=30)
    return found[0]


def main(pod: Obj) -> Obj:
    return pod["spec"]["containers"][0]


def env_of(pod: Obj) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in main(pod).get("env") or []}


def refused(obj: Obj) -> bool:
    return condition(obj, "Failed").get("status") == "True"


IMAGES = ["ghcr.io/dask/dask:latest", "ghcr.io/dask/dask:2026.3"]  # the first: the tests' image
SHAPE: Obj = {
    "description": "test shape",
    "env": [{"name": "TEAM", "value": "data"}],
    "worker": {"replicas": 1, "maxReplicas": 2},
    "options": [
        {"name": "worker_memory", "target": "worker.memory",
         "quantity": {"default": "256Mi", "min": "128Mi", "max": "1Gi"}},
        {"name": "image", "target": "image", "choice": {"default": IMAGES[0], "choices": IMAGES}},
    ],
}


def test_the_namespace_default_is_waited_for_then_applied_options_reach_the_pods_and_an_edit_changes_nothing(
        kubectl: Kubectl, namespace: str, profile: MakeProfile) -> None:
    # A namespace default naming a profile that does not exist yet: the cluster waits.
    name = f"{namespace}-shape"
    kubectl("annotate", "namespace", namespace, f"{ANNOTATION_DEFAULT_PROFILE}={name}")
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("plain", workers=0)))
    obj = wait_for(kubectl, "daskcluster", "plain", admitted("False"), timeout=30)
    waiting = condition(obj, "Admitted")
    assert waiting["reason"] == "ProfileNotFound"
    assert f"the default profile of namespace {namespace}" in waiting["message"]
    assert "pod/" not in children(kubectl)
    # The profile appears: the waiting cluster is admitted with it, filled where its spec is
    # silent; a cluster naming it with options gets the standard containers and the options.
    profile("shape", {**SHAPE, "nodeSelector": {"kubernetes.io/os": "linux"}})
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "metadata": {"name": "shaped"},
        "spec": {"profile": {"name": name, "options": {"worker_memory": "512Mi", "image": IMAGES[1]}},
                 "worker": {"replicas": 0}}}))
    scheduler = wait_pod(kubectl, "plain", "scheduler")
    assert env_of(scheduler)["TEAM"] == "data"
    assert scheduler["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    status = kubectl("get", "daskcluster", "plain", "-o", "json").json()["status"]
    assert status["profile"]["name"] == name and condition({"status": status}, "Admitted")["status"] == "True"

    shaped = wait_pod(kubectl, "shaped", "scheduler")
    assert main(shaped)["image"] == IMAGES[1] and main(shaped)["args"][:2] == ["dask", "scheduler"]
    group = wait_for(kubectl, "daskworkergroup", "shaped-default", lambda g: True, timeout=30)
    worker = group["spec"]["worker"]["spec"]["containers"][0]  # what each worker Pod is made of
    assert worker["resources"] == {"requests": {"memory": "512Mi"}, "limits": {"memory": "512Mi"}}
    assert worker["image"] == IMAGES[1] and {"name": "TEAM", "value": "data"} in worker["env"]
    pinned = kubectl("get", "daskcluster", "shaped", "-o", "json").json()["status"]["profile"]
    assert pinned["name"] == name and pinned["resourceVersion"]
    assert pinned["options"] == {"worker_memory": "512Mi", "image": IMAGES[1]}

    # The administrator changes the profile; the cluster keeps what it was admitted with,
    # even for a scheduler Pod made after the change.
    kubectl("patch", "daskclusterprofile", name, "--type=merge", "-p",
            json.dumps({"spec": {"env": [{"name": "TEAM", "value": "ops"}]}}))
    kubectl("delete", "pod", scheduler["metadata"]["name"], "--wait=false")
    again = wait_pod(kubectl, "plain", "scheduler", other_than=scheduler["metadata"]["uid"])
    assert env_of(again)["TEAM"] == "data"


def test_an_option_out_of_range_and_a_locked_field_are_refused_before_anything_exists(
        kubectl: Kubectl, namespace: str, profile: MakeProfile) -> None:
    bounded = profile("bounds", SHAPE)
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "metadata": {"name": "greedy"},
        "spec": {"profile": {"name": bounded, "options": {"worker_memory": "4Gi"}}}}))
    locked = profile("locked", {"image": "ghcr.io/dask/dask:latest", "locked": ["image"]})
    job = daskjob("sneaky", "print('hi')", profile={"name": locked})
    job["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]["image"] = "example.com/mine:1"
    kubectl("apply", "-f", "-", input=json.dumps(job))

    obj = wait_for(kubectl, "daskcluster", "greedy", refused, timeout=30)
    failed = condition(obj, "Failed")
    assert (obj["status"]["phase"], failed["reason"]) == ("Failed", "ProfileViolation")
    assert failed["message"] == (
        f"spec.profile.options.worker_memory: '4Gi' is outside the range 128Mi to 1Gi of option "
        f"worker_memory (worker.memory) of DaskClusterProfile {bounded}; give a value within it")
    assert any(e["type"] == "Warning" and "'4Gi' is outside the range" in e["message"]
               for e in events_of(kubectl, "DaskCluster", "greedy"))

    obj = wait_for(kubectl, "daskjob", "sneaky", job_done, timeout=30)
    assert (obj["status"]["jobStatus"], obj["status"]["reason"]) == ("Failed", "ProfileViolation")
    assert obj["status"]["message"] == (
        "spec.cluster.spec.worker.spec.containers[0].image: 'example.com/mine:1' differs from "
        f"'ghcr.io/dask/dask:latest', which DaskClusterProfile {locked} locks (image); leave it out "
        "to get the profile's value, or use another profile")
    # no cluster for the job, no Service, no Pod, no worker group: only the refused cluster
    assert children(kubectl).split() == ["daskcluster.kubernetes.dask.org/greedy"]
