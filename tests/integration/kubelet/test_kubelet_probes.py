"""Readiness, liveness and startup probes driving Ready and restarts."""

from __future__ import annotations

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .kubelet_support import apply, has_event, pod, status_of, wait_for

pytestmark = pytest.mark.kubectl

SERVER = """
import http.server, time
start = time.time()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        age = time.time() - start
        self.send_response(200 if 3 < age < 8 else 503)  # unready, ready, unready again
        self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("", 8080), H).serve_forever()
"""


def ready(k: Kubectl, name: str) -> str:
    conds = {c["type"]: c["status"] for c in status_of(k, name).get("conditions") or []}
    return conds.get("Ready", "")


def test_readiness_probe_drives_ready(kk: Kubectl) -> None:
    container = {"name": "web", "command": ["python", "-c", SERVER],
                 "ports": [{"name": "http", "containerPort": 8080}],
                 "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                                    "periodSeconds": 1, "failureThreshold": 1}}
    apply(kk, pod("web", [container]))
    wait_for(lambda: status_of(kk, "web").get("phase") == "Running", 20, "Running")
    assert ready(kk, "web") == "False"
    wait_for(lambda: ready(kk, "web") == "True", 20, "Ready=True")
    assert status_of(kk, "web", "web")["ready"] is True
    assert "1/1" in kk("get", "pod", "web").stdout
    wait_for(lambda: ready(kk, "web") == "False", 20, "Ready=False again")
    assert has_event(kk, "web", "Unhealthy",
                     "Readiness probe failed: HTTP probe failed with statuscode: 503")
    assert status_of(kk, "web", "web")["restartCount"] == 0


def test_liveness_failure_restarts_the_container(kk: Kubectl) -> None:
    script = "touch /tmp/alive-$(POD_UID); sleep 2; rm -f /tmp/alive-$(POD_UID); sleep 600"
    container = {"name": "c", "command": ["sh", "-c", script],
                 "env": [{"name": "POD_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}}],
                 "livenessProbe": {"exec": {"command": ["sh", "-c", "test -f /tmp/alive-$POD_UID"]},
                                   "periodSeconds": 1, "failureThreshold": 2},
                 }
    apply(kk, pod("live", [container], terminationGracePeriodSeconds=2))
    wait_for(lambda: status_of(kk, "live", "c").get("restartCount", 0) >= 1, 40, "a restart")
    assert has_event(kk, "live", "Unhealthy", "Liveness probe failed")
    assert has_event(kk, "live", "Killing", "Container c failed liveness probe, will be restarted")
    last = status_of(kk, "live", "c")["lastState"]["terminated"]
    assert last["exitCode"] in (137, 143)


def test_startup_probe_gates_started_and_readiness(kk: Kubectl) -> None:
    container = {"name": "c", "command": ["sh", "-c", "sleep 3; touch $HOME/up; sleep 600"],
                 "startupProbe": {"exec": {"command": ["sh", "-c", "test -f $HOME/up"]},
                                  "periodSeconds": 1, "failureThreshold": 30},
                 "readinessProbe": {"tcpSocket": {"port": 9}, "periodSeconds": 1}}
    apply(kk, pod("slow", [container]))
    wait_for(lambda: status_of(kk, "slow").get("phase") == "Running", 20, "Running")
    assert status_of(kk, "slow", "c")["started"] is False
    wait_for(lambda: status_of(kk, "slow", "c").get("started") is True, 20, "started")
    wait_for(lambda: has_event(kk, "slow", "Unhealthy", "Readiness probe failed: dial tcp"), 20,
             "tcp readiness failure")
    assert status_of(kk, "slow", "c")["ready"] is False
