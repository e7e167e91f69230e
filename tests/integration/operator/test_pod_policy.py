"""The operator's Pod policy, enforced by the real operator on the local control plane: a
violating DaskJob or DaskCluster is refused on the object itself before any Pod exists.

The default policy (baseline, the namespace's default ServiceAccount only) is in force with no
limits file at all, which is how the session's operator runs."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .jobs import daskjob
from .test_daskcluster import daskcluster
from .test_daskjob import job_done, wait_for
from .test_limits import SetLimits, children, condition, events_of, set_limits  # noqa: F401 (a fixture)

pytestmark = pytest.mark.timeout(60)


def test_a_hostpath_runner_is_refused_before_any_pod_exists(kubectl: Kubectl, namespace: str) -> None:
    job = daskjob("nodefiles", "print('hi')")
    runner = job["spec"]["job"]["spec"]
    runner["volumes"] = [{"name": "etc", "hostPath": {"path": "/etc"}}]
    runner["containers"][0]["volumeMounts"] = [{"name": "etc", "mountPath": "/host-etc"}]
    kubectl("apply", "-f", "-", input=json.dumps(job))
    obj = wait_for(kubectl, "daskjob", "nodefiles", job_done, timeout=30)
    status = obj["status"]
    assert (status["jobStatus"], status["reason"]) == ("Failed", "PolicyViolation")
    assert "spec.job.spec.volumes[0].hostPath: a hostPath volume mounts the node's files; not " \
           "allowed at the baseline Pod Security Standards level (the operator's default" in status["message"]
    assert "before any Pod was created" in status["message"]
    warnings = [e["message"] for e in events_of(kubectl, "DaskJob", "nodefiles") if e["type"] == "Warning"]
    assert any(m.startswith("PolicyViolation: ") and "hostPath" in m for m in warnings), warnings
    assert children(kubectl) == ""  # no cluster, no Service, no Pod


def test_a_cluster_naming_a_service_account_not_allowed_is_refused(
        kubectl: Kubectl, namespace: str, set_limits: SetLimits) -> None:  # noqa: F811 (the fixture)
    # A policy that allows one other account: naming a third is still refused.
    set_limits(podPolicy={"allowedServiceAccounts": ["dask-runner"]})
    cluster = daskcluster("reader", workers=0)
    cluster["spec"]["scheduler"]["spec"]["serviceAccountName"] = "secret-reader"
    kubectl("apply", "-f", "-", input=json.dumps(cluster))
    obj = wait_for(kubectl, "daskcluster", "reader",
                   lambda o: condition(o, "Failed").get("status") == "True", timeout=30)
    failed = condition(obj, "Failed")
    assert obj["status"]["phase"] == "Failed" and failed["reason"] == "PolicyViolation"
    assert "spec.scheduler.spec.serviceAccountName='secret-reader': only the namespace's default " \
           "ServiceAccount and dask-runner may be named" in failed["message"]
    assert f"field namespaces.{namespace}.podPolicy.allowedServiceAccounts" in failed["message"]
    assert [e["type"] for e in events_of(kubectl, "DaskCluster", "reader")
            if e["reason"] == "PolicyViolation"] == ["Warning"]
    assert "pod/" not in children(kubectl) and "service/" not in children(kubectl)
