"""A real kopf operator runs against the local API server: watches, finalizers, status, events."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from kopf.testing import KopfRunner

from dask_kube_jobs.local.testing import Kubectl

from .test_kubectl_conformance import WIDGET_CRD, widget

OPERATOR = Path(__file__).with_name("kopf_smoke_operator.py")


def _eventually(check, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def test_kopf_operator_creates_owned_pods_and_patches_status(local_control_plane, namespace: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    k = Kubectl(local_control_plane.kubeconfig, namespace)
    k("apply", "-f", "-", input=WIDGET_CRD)
    k("wait", "--for=condition=Established", "crd/widgets.conformance.example.com")
    monkeypatch.setenv("KUBECONFIG", local_control_plane.kubeconfig)
    args = ["run", "--standalone", "--namespace", namespace, "--verbose", str(OPERATOR)]
    with KopfRunner(args, timeout=60) as runner:
        k("apply", "-f", "-", input=widget("smoke", color="green"))
        status = _eventually(lambda: k("get", "widget", "smoke", "-o", "json").json().get("status", {}).get("phase"))
        assert status == "PodCreated"
        pod = k("get", "pod", "smoke-pod", "-o", "json").json()
        owner = k("get", "widget", "smoke", "-o", "json").json()
        assert pod["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
        assert "smoke.example.com/finalizer" in owner["metadata"]["finalizers"]
        # kopf also stores the handler's result in status.create_pod, which the Widget schema
        # does not declare: the status subresource prunes it, as a real apiserver does.
        assert owner["status"] == {"phase": "PodCreated"}
        events = k("get", "events", "--field-selector", "involvedObject.name=smoke", "-o", "json").json()["items"]
        assert any(e["reason"] == "PodCreated" for e in events)
        k("delete", "widget", "smoke", "--wait=true", "--timeout=30s")
    assert runner.exception is None, runner.output
    assert "Traceback" not in runner.output, runner.output
