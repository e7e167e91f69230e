"""The API server publishes itself as ``default/kubernetes``, as every cluster does."""

from __future__ import annotations

from dask_kube_jobs.local.apiserver import kubernetes_service
from dask_kube_jobs.local.apiserver.core import APICore


def test_publish_creates_then_follows_the_port() -> None:
    core = APICore()
    core.bootstrap()
    kubernetes_service.publish(core, "127.0.0.1", 40001)
    service = core.store.get(("", "services"), "default", "kubernetes")
    endpoints = core.store.get(("", "endpoints"), "default", "kubernetes")
    assert service is not None and endpoints is not None
    assert service["spec"]["clusterIP"] == "127.96.0.1"
    assert service["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP",
                                         "targetPort": 40001}]
    assert service["metadata"]["labels"] == {"component": "apiserver", "provider": "kubernetes"}
    assert "selector" not in service["spec"]
    assert endpoints["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}], "ports": [
        {"name": "https", "port": 40001, "protocol": "TCP"}]}]
    rv = endpoints["metadata"]["resourceVersion"]
    kubernetes_service.publish(core, "127.0.0.1", 40001)  # a restart on the same port
    assert core.store.get(("", "endpoints"), "default", "kubernetes")["metadata"][
        "resourceVersion"] == rv
    kubernetes_service.publish(core, "127.0.0.1", 40002)
    moved = core.store.get(("", "endpoints"), "default", "kubernetes")
    assert moved["subsets"][0]["ports"][0]["port"] == 40002
    # The reconciler's EndpointSlice beside them, following the port too.
    eps = core.store.get(("discovery.k8s.io", "endpointslices"), "default", "kubernetes")
    assert eps is not None
    assert eps["metadata"]["labels"] == {"kubernetes.io/service-name": "kubernetes"}
    assert (eps["addressType"], eps["endpoints"], eps["ports"]) == (
        "IPv4", [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}],
        [{"name": "https", "port": 40002, "protocol": "TCP"}])
    assert core.store.get(("", "services"), "default", "kubernetes")["spec"]["ports"][0][
        "targetPort"] == 40002
    # Later Services never get the first address.
    other = core.create(core.registry.get("", "services"), "v1", "default",  # type: ignore[arg-type]
                        {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}})
    assert other["spec"]["clusterIP"] != "127.96.0.1"
