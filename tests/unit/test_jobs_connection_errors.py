"""The job API's errors for a cluster it cannot reach name the server and what to check."""

from __future__ import annotations

from pathlib import Path

import pytest

from dask_kube_jobs import KubeconfigError, list_jobs

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: default}}]
current-context: c
"""


def test_an_unreachable_server_is_named_with_a_hint(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kc.yaml"
    kubeconfig.write_text(KUBECONFIG)
    with pytest.raises(KubeconfigError) as info:
        list_jobs(kubeconfig=str(kubeconfig))
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in str(info.value)
    assert "$KUBECONFIG" in info.value.hint
