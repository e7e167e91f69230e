"""Server-side limits, enforced by the real operator from its ConfigMap on the local control plane.

The session's operator reads ``default/dask-operator-limits`` (tests/conftest.py). Each test
writes limits for its own namespace only (the file's ``namespaces:`` overrides), so the rest of
the suite runs unlimited, and the ConfigMap is deleted afterwards (no ConfigMap = no limits).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import dask_kube_jobs
from dask_kube_jobs import WaitTimeout, cli
from dask_kube_jobs.kube import Client, EventRecorder
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl
from dask_kube_jobs.operator import limits

from .jobs import cluster_spec, daskjob
from .test_daskcluster import daskcluster, scheduler_ready
from .test_daskjob import wait_for

pytestmark = pytest.mark.timeout(120)

CONFIGMAP_NAMESPACE, CONFIGMAP = "default", "dask-operator-limits"
SetLimits = Callable[..., None]


@pytest.fixture
def set_limits(kubectl: Kubectl, namespace: str) -> Iterator[SetLimits]:
    """``set_limits(maxWorkersPerCluster=1)`` limits this test's namespace; ``raw=`` writes the
    file as given."""

    def write(raw: str | None = None, **limits: Any) -> None:
        text = raw if raw is not None else yaml.safe_dump({"namespaces": {namespace: limits}})
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP, "namespace": CONFIGMAP_NAMESPACE},
                "data": {"limits.yaml": text}}
        kubectl("apply", "-f", "-", input=json.dumps(body), namespace=CONFIGMAP_NAMESPACE)

    yield write
    kubectl("delete", "configmap", CONFIGMAP, "--ignore-not-found", namespace=CONFIGMAP_NAMESPACE)


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == ctype), {})


def admitted(value: str) -> Callable[[dict[str, Any]], bool]:
    return lambda obj: condition(obj, "Admitted").get("status") == value


def events_of(kubectl: Kubectl, kind: str, name: str, namespace: str | None = None) -> list[dict[str, Any]]:
    return kubectl("get", "events", "--field-selector",
                   f"involvedObject.name={name},involvedObject.kind={kind}", "-o", "json",
                   namespace=namespace).json()["items"]


def children(kubectl: Kubectl) -> str:
    return kubectl("get", "pods,svc,daskworkergroups,daskclusters", "-o", "name").stdout


def test_a_cluster_over_the_workers_cap_waits_untouched_until_the_limit_is_raised(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    set_limits(maxWorkersPerCluster=1)
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("big", workers=2)))
    obj = wait_for(kubectl, "daskcluster", "big", admitted("False"), timeout=30)
    cond = condition(obj, "Admitted")
    assert cond["reason"] == "LimitExceeded"
    assert "spec.worker.replicas=2 exceeds the limit of 1 workers per cluster" in cond["message"]
    assert f"ConfigMap default/dask-operator-limits, key limits.yaml, field namespaces.{namespace}." \
           "maxWorkersPerCluster" in cond["message"]
    assert obj["status"]["phase"] == "Pending" and obj["spec"]["worker"]["replicas"] == 2
    assert [e["type"] for e in events_of(kubectl, "DaskCluster", "big")
            if e["reason"] == "LimitExceeded"] == ["Warning"]
    assert "pod/" not in children(kubectl) and "daskworkergroup" not in children(kubectl)

    set_limits(maxWorkersPerCluster=2)  # the same object proceeds, nobody re-creates it
    obj = wait_for(kubectl, "daskcluster", "big", admitted("True"), timeout=30)
    assert obj["metadata"]["uid"] == kubectl("get", "daskcluster", "big", "-o", "json").json()["metadata"]["uid"]
    wait_for(kubectl, "daskworkergroup", "big-default", lambda o: (o.get("status") or {}).get("replicas") == 2,
             timeout=30)

    # Scaling the admitted cluster's group past the cap holds it at its size, with the reason.
    kubectl("scale", "daskworkergroup", "big-default", "--replicas=3")
    group = wait_for(kubectl, "daskworkergroup", "big-default",
                     lambda o: condition(o, "WithinLimits").get("status") == "False", timeout=30)
    assert "spec.worker.replicas=3 exceeds the limit of 2 workers per cluster" in \
        condition(group, "WithinLimits")["message"]
    pods = kubectl("get", "pods", "-l", "dask.org/workergroup-name=big-default", "-o", "name").stdout.split()
    assert len(pods) == 2 and group["spec"]["worker"]["replicas"] == 3


def test_clusters_per_namespace_are_admitted_oldest_first_as_places_free_up(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    set_limits(maxClustersPerNamespace=1)
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("first", workers=0)))
    wait_for(kubectl, "daskcluster", "first", admitted("True"), timeout=30)
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("second", workers=0)))
    obj = wait_for(kubectl, "daskcluster", "second", admitted("False"), timeout=30)
    assert f"namespace {namespace} already has 1 DaskCluster(s) of the 1 allowed" in \
        condition(obj, "Admitted")["message"]
    assert kubectl("get", "pod", "second-scheduler", "--ignore-not-found", "-o", "name").stdout == ""

    kubectl("delete", "daskcluster", "first", "--wait=false")
    wait_for(kubectl, "daskcluster", "second", admitted("True"), timeout=30)
    assert [e["reason"] for e in events_of(kubectl, "DaskCluster", "second")].count("Admitted") == 1


def test_a_daskjob_with_a_disallowed_image_waits_with_no_pods_and_says_why(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    set_limits(allowedImages=["ghcr.io/dask/"])
    job = daskjob("rogue", "print('hi')")
    job["spec"]["job"]["spec"]["containers"][0]["image"] = "docker.io/someone/miner:1"
    kubectl("apply", "-f", "-", input=json.dumps(job))
    obj = wait_for(kubectl, "daskjob", "rogue", admitted("False"), timeout=30)
    status = obj["status"]
    assert status["jobStatus"] == "JobCreated" and status["reason"] == "LimitExceeded"
    assert "spec.job.spec.containers[0].image='docker.io/someone/miner:1' is not among the allowed " \
           "images (ghcr.io/dask/)" in status["message"]
    assert "startTime" not in status  # its deadline does not run while it waits
    assert any(e["reason"] == "LimitExceeded" and e["type"] == "Warning"
               for e in events_of(kubectl, "DaskJob", "rogue"))
    assert children(kubectl).strip() == ""

    set_limits(allowedImages=["ghcr.io/dask/", "docker.io/someone/"])
    obj = wait_for(kubectl, "daskjob", "rogue", lambda o: o["status"].get("jobStatus") != "JobCreated",
                   timeout=30)
    assert condition(obj, "Admitted")["status"] == "True"
    assert obj["status"].get("reason") != "LimitExceeded" and "startTime" in obj["status"]
    reasons = [e["reason"] for e in events_of(kubectl, "DaskJob", "rogue")]
    assert "Admitted" in reasons and "JobCreated" not in reasons  # never "accepted" before admission


def test_jobs_over_the_namespace_cap_wait_their_turn_instead_of_failing(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    set_limits(maxJobsPerNamespace=1)
    kubectl("apply", "-f", "-", input=json.dumps(daskjob("one", "import time; time.sleep(2)")))
    wait_for(kubectl, "daskjob", "one", admitted("True"), timeout=30)
    kubectl("apply", "-f", "-", input=json.dumps(daskjob("two", "print('two')")))
    obj = wait_for(kubectl, "daskjob", "two", admitted("False"), timeout=30)
    assert f"namespace {namespace} already has 1 active DaskJob(s) of the 1 allowed" in obj["status"]["message"]
    assert obj["status"]["jobStatus"] == "JobCreated"
    done = wait_for(kubectl, "daskjob", "two", lambda o: o["status"].get("jobStatus") == "Successful",
                    timeout=90)
    first = kubectl("get", "daskjob", "one", "-o", "json").json()["status"]
    assert first["jobStatus"] == "Successful" and first["endTime"] <= done["status"]["startTime"]


def test_a_container_outside_the_resource_range_is_refused_naming_the_field(
        kubectl: Kubectl, set_limits: SetLimits) -> None:
    set_limits(resources={"memory": {"max": "1Gi"}, "cpu": {"min": "100m"}})
    cluster = daskcluster("greedy", workers=1)
    cluster["spec"]["worker"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "2Gi"}}
    kubectl("apply", "-f", "-", input=json.dumps(cluster))
    obj = wait_for(kubectl, "daskcluster", "greedy", admitted("False"), timeout=30)
    message = condition(obj, "Admitted")["message"]
    assert "spec.worker.spec.containers[0].resources.limits.memory=2Gi exceeds the maximum of 1Gi" in message
    assert "resources.memory.max" in message
    assert "pod/" not in children(kubectl)


def test_a_malformed_configuration_is_reported_and_the_last_valid_one_stays(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    set_limits(maxWorkersPerCluster=1)
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("probe", workers=2)))
    wait_for(kubectl, "daskcluster", "probe", admitted("False"), timeout=30)
    set_limits(raw=f"namespaces:\n  {namespace}:\n    maxWorkersPerCluster: lots\n")
    deadline = time.monotonic() + 30
    while not (found := [e for e in events_of(kubectl, "ConfigMap", CONFIGMAP, CONFIGMAP_NAMESPACE)
                         if e["reason"] == "LimitsConfigInvalid"]):
        assert time.monotonic() < deadline, "no Event on the malformed ConfigMap"
        time.sleep(0.5)
    assert f"namespaces.{namespace}.maxWorkersPerCluster: must be a whole number" in found[0]["message"]
    assert "the last valid limits stay in force" in found[0]["message"]
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("probe2", workers=2)))
    obj = wait_for(kubectl, "daskcluster", "probe2", admitted("False"), timeout=30)
    assert "exceeds the limit of 1 workers per cluster" in condition(obj, "Admitted")["message"]


async def test_a_loader_started_on_a_broken_file_admits_nothing_until_it_is_fixed(
        local_control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str) -> None:
    """The loader on its own against the API (no operator): fail closed when the first file
    it reads is broken, follow the fix, keep it through the next break, report each break once.
    (A missing ConfigMap is a valid state, no limits, which a later broken file keeps.)"""
    def write(text: str) -> None:
        kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "limits"},
            "data": {"limits.yaml": text}}))

    client = await Client.connect(str(local_control_plane.kubeconfig))
    try:
        loader = limits.PolicyLoader(f"{namespace}/limits", cache_seconds=60)
        events = EventRecorder(client, "test")
        write("maxWorkersPerCluster: many")
        broken = (await loader.policy(client, events)).for_namespace("a")
        assert broken.error and "maxWorkersPerCluster: must be a whole number" in broken.error
        assert limits.config_problem(broken) is not None
        write("maxWorkersPerCluster: 3")
        assert (await loader.policy(client, events)).for_namespace("a").error  # cached for 60 s
        assert (await loader.policy(client, events, fresh=True)).for_namespace("a").max_workers_per_cluster == 3
        write("maxWorkersPerCluster: 3\nmaxWorker: 4")
        for _ in range(2):
            kept = (await loader.policy(client, events, fresh=True)).for_namespace("a")
            assert kept.max_workers_per_cluster == 3 and kept.error is None
    finally:
        await client.close()
    reported = [(e["reason"], e["message"]) for e in events_of(kubectl, "ConfigMap", "limits")]
    assert [r for r, _ in reported] == ["LimitsConfigInvalid", "LimitsConfigInvalid"]
    assert any("nothing new is admitted until it is fixed" in m for _, m in reported)
    assert any("maxWorker: unknown key" in m and "the last valid limits stay in force" in m for _, m in reported)


def test_an_autoscaler_asks_for_no_more_than_the_cap_leaves_and_says_whose_cap_it_is(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:
    """The cap counts every group of the cluster: the default group's worker leaves the
    autoscaled extra group one place, below the autoscaler's minimum of 2."""
    set_limits(maxWorkersPerCluster=2)
    kubectl("apply", "-f", "-", input=json.dumps(daskcluster("capped", workers=1)))
    wait_for(kubectl, "daskcluster", "capped", scheduler_ready,
             timeout=60)
    extra = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskWorkerGroup", "metadata": {"name": "capped-extra"},
             "spec": {"cluster": "capped", "worker": cluster_spec(0)["worker"]}}
    scaler = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler", "metadata": {"name": "capped"},
              "spec": {"cluster": "capped", "workerGroup": "capped-extra", "minimum": 2, "maximum": 2,
                       "intervalSeconds": 1, "scaleUpCooldownSeconds": 0}}
    kubectl("apply", "-f", "-", input=json.dumps(extra))
    kubectl("apply", "-f", "-", input=json.dumps(scaler))
    status = wait_for(kubectl, "daskautoscaler", "capped",
                      lambda o: condition(o, "TargetLimited").get("status") == "True", timeout=30)["status"]
    where = f"ConfigMap default/dask-operator-limits, key limits.yaml, field namespaces.{namespace}.maxWorkersPerCluster"
    cap = f"the administrator's cap of 2 workers per cluster ({where}), 1 of them taken by the other " \
          "worker groups of DaskCluster capped"
    assert status["lastDecision"]["to"] == 1
    assert status["lastDecision"]["reason"].endswith(f"; spec.minimum=2 is limited to 1 by {cap}")
    assert condition({"status": status}, "TargetLimited")["reason"] == "MaxWorkersPerCluster"
    group = wait_for(kubectl, "daskworkergroup", "capped-extra",
                     lambda o: (o.get("status") or {}).get("replicas") == 1, timeout=30)
    assert group["spec"]["worker"]["replicas"] == 1  # asked for what the cap allows...
    assert condition(group, "WithinLimits") == {}  # ...so the group is never held
    spec = kubectl("get", "daskautoscaler", "capped", "-o", "json").json()["spec"]
    assert (spec["minimum"], spec["maximum"]) == (2, 2)  # the user's spec is left as written
    assert [e["message"] for e in events_of(kubectl, "DaskAutoscaler", "capped")
            if e["reason"] == "TargetLimited"] == \
        [f"capped-extra gets at most 1 workers from this autoscaler: {cap}; spec.minimum and "
         "spec.maximum are left as written"]

    set_limits(maxWorkersPerCluster=3)
    status = wait_for(kubectl, "daskautoscaler", "capped",
                      lambda o: condition(o, "TargetLimited").get("status") == "False", timeout=30)["status"]
    assert status["lastDecision"]["to"] == 2 and "limited" not in status["lastDecision"]["reason"]
    wait_for(kubectl, "daskworkergroup", "capped-extra",
             lambda o: (o.get("status") or {}).get("replicas") == 2, timeout=30)


def test_a_job_held_by_a_limit_tells_its_waiter_and_the_cli_why(
        local_control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str, set_limits: SetLimits,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    set_limits(maxWorkersPerCluster=1)
    kubeconfig = str(local_control_plane.kubeconfig)
    why = "spec.cluster.spec.worker.replicas=2 exceeds the limit of 1 workers per cluster set by the " \
          "operator's administrator (ConfigMap default/dask-operator-limits, key limits.yaml, field " \
          f"namespaces.{namespace}.maxWorkersPerCluster)"
    job = dask_kube_jobs.submit(daskjob("held", "print('too big')", workers=2), namespace=namespace,
                                kubeconfig=kubeconfig)
    # The refusal is awaited first so that a slow, shared machine cannot turn this into a
    # timeout that fires before the operator has looked at the job at all.
    wait_for(kubectl, "daskjob", "held", admitted("False"), timeout=30)
    with pytest.raises(WaitTimeout) as info:
        job.wait(timeout=5)
    assert info.value.phase == "JobCreated" and why in (info.value.message or "")
    assert why in str(info.value)
    # Only the refusal was said: no Event claims the job was accepted.
    assert [e["reason"] for e in events_of(kubectl, "DaskJob", "held")] == ["LimitExceeded"]

    target = ["--kubeconfig", kubeconfig, "-n", namespace]
    assert cli.main(["status", "held", *target]) == 0
    shown = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    assert shown["Phase"].strip() == "JobCreated" and shown["Reason"].strip() == "LimitExceeded"
    assert why in shown["Message"]

    manifest = tmp_path / "held-too.json"
    manifest.write_text(json.dumps(daskjob("held-too", "print('too big')", workers=2)))
    assert cli.main(["run", str(manifest), *target, "--timeout", "8"]) == 124
    err = capsys.readouterr().err
    assert "JobCreated (waiting: spec.cluster.spec.worker.replicas=2 exceeds the limit of 1 workers " \
           "per cluster" in err
    assert f"did not finish within 8s (phase: JobCreated; {why}" in err
