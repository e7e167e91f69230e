"""What kube-apiserver 1.32 stores, refuses and serves, through the real kubectl: omitempty
metadata, core validation messages, ServiceAccount admission, CRD CEL rules."""

from __future__ import annotations

import time

import yaml

from dask_kube_jobs.local.testing import Kubectl


def _wait_for(check, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_orphaning_leaves_no_empty_owner_references(kubectl: Kubectl) -> None:
    owner = kubectl("create", "configmap", "owner", "-o", "json").json()
    kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "labels": {}, "annotations": {}, "finalizers": [],
                     "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                          "name": "owner", "uid": owner["metadata"]["uid"]}]}}))
    created = kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]
    assert not {"labels", "annotations", "finalizers"} & set(created)
    kubectl("delete", "cm", "owner", "--cascade=orphan")

    def orphaned() -> bool:
        meta = kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]
        return "ownerReferences" not in meta
    _wait_for(orphaned, "the dependent to lose its ownerReferences key")
    kubectl("label", "cm", "dependent", "a=b")
    kubectl("label", "cm", "dependent", "a-")
    assert "labels" not in kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]
