"""A Deployment whose Pods really run: controllers, scheduler, kubelet and Endpoints together."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(180)


def running_ips(kubectl: Kubectl) -> list[str]:
    pods = kubectl("get", "pods", "-l", "app=web", "-o", "json").json()["items"]
    return sorted(p["status"]["podIP"] for p in pods
                  if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
                  and all(c.get("ready") for c in p["status"].get("containerStatuses", [])))


def wait_count(kubectl: Kubectl, n: int, timeout: float = 90) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ips = running_ips(kubectl)
        total = kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.split()
        if len(ips) == n and len(total) == n:
            return ips
        time.sleep(0.5)
    raise AssertionError(f"never {n} running web Pods: {running_ips(kubectl)}")


def get_status(url: str, timeout: float = 30) -> int:
    """The Pods have no readiness probe, so Ready means started, not listening (as on any
    cluster): a busy machine may need a moment between the two."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return int(resp.status)
        except ConnectionRefusedError:
            pass
        except urllib.error.URLError as exc:
            if not isinstance(exc.reason, ConnectionRefusedError):
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} still refuses connections after {timeout:g}s")
        time.sleep(0.3)


def test_deployment_pods_serve_and_follow_scale_and_deletion(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "web", "--image=python:3.11", "--replicas=2", "--port=8000",
            "--", "python", "-m", "http.server", "8000")
    kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    ips = wait_count(kubectl, 2)
    assert len(set(ips)) == 2
    for ip in ips:  # the host reaches each Pod at its own address
        assert get_status(f"http://{ip}:8000/") == 200
    kubectl("expose", "deployment", "web", "--port=80", "--target-port=8000")
    # A real API server refuses loopback endpoint addresses, so the Endpoints and EndpointSlice
    # controllers leave these Pods out and each says why (once per Pod); Service names still
    # resolve on the node through the kubelet's Pod network, from the Pods themselves.
    controllers = ("endpoint-controller", "endpointslice-controller")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        events = kubectl("get", "events", "--field-selector",
                         "involvedObject.kind=Service,involvedObject.name=web,reason=AddressNotAllowed",
                         "-o", "json").json()["items"]
        said = {c: sorted(e["message"].split('"')[1] for e in events
                          if e["source"]["component"] == c) for c in controllers}
        if all(ips == said[c] for c in controllers):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the endpoints controllers never said why the Pods are left out: {said}")
    assert all("may not be in the loopback range (127.0.0.0/8, ::1/128)" in e["message"]
               and e["type"] == "Warning" for e in events)
    endpoints = kubectl("get", "endpoints", "web", "-o", "json").json()
    assert not [a for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
    slices = kubectl("get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o",
                     "json").json()["items"]
    assert len(slices) == 1 and not slices[0]["endpoints"]  # the empty placeholder
    client = kubectl("run", "client", "--image=python:3.11", "--restart=Never", "--",
                     "python", "-c", "import urllib.request as u; "
                     "print(u.urlopen('http://web/', timeout=20).status)")
    assert client.returncode == 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phase = kubectl("get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    assert phase == "Succeeded", kubectl("logs", "client", check=False).stdout
    assert kubectl("logs", "client").stdout.strip() == "200"
    kubectl("scale", "deployment", "web", "--replicas=3")
    wait_count(kubectl, 3)
    kubectl("delete", "deployment", "web")
    deadline = time.monotonic() + 60
    while kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert kubectl("get", "pods", "-l", "app=web", "-o", "name").stdout.strip() == ""
    assert kubectl("get", "rs", "-l", "app=web", "-o", "name").stdout.strip() == ""
