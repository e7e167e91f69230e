"""Operator processes a test starts itself, against a control plane started without one.

The session control plane runs its own operator; tests of the operator *process* (metrics,
readiness, log format, peering) need processes they start, flag and kill themselves, and a
control plane where no other operator acts on the same objects.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

import dask_kube_jobs
from dask_kube_jobs.local import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

REPO = Path(dask_kube_jobs.__file__).resolve().parent.parent
CRDS = [*sorted((REPO / "dask_kube_jobs" / "crds").glob("*.yaml")),
        REPO / "charts" / "dask-kube-jobs" / "crds" / "kopf-peering.yaml"]

T = TypeVar("T")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]  # (name, labels) -> value


@contextmanager
def plane_without_operator(root: Path, namespace: str) -> Iterator[Kubectl]:
    """A control plane with kubelet and controllers but no operator, the Dask and kopf peering
    CRDs installed as the chart installs them, and ``namespace`` created; yields kubectl there."""
    with LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state",
                           operator=False) as plane:
        k = Kubectl(plane.kubeconfig)
        for crd in CRDS:
            k("apply", "-f", str(crd))
        for crd in CRDS:
            k("wait", "--for=condition=Established", "-f", str(crd), "--timeout=30s")
        k("create", "namespace", namespace)
        yield k.in_namespace(namespace)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.3)


class OperatorProcess:
    """``python -m dask_kube_jobs.operator`` with a metrics/readiness port of its own."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path, *extra: str,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log = log
        self.env = {**os.environ, **(env or {})}
        self.args = [sys.executable, "-m", "dask_kube_jobs.operator", "--kubeconfig", kubeconfig,
                     "-n", namespace, "--metrics", f"http://127.0.0.1:{self.port}/metrics",
                     "--readiness", f"http://127.0.0.1:{self.port}/readyz", *extra]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as rsp:
                return rsp.status, rsp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()
        except OSError:
            return 0, b""

    def readiness(self) -> tuple[int, dict[str, Any]]:
        code, body = self._get("/readyz")
        return code, (json.loads(body) if body else {})

    def wait_ready(self, timeout: float = 60) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            code, body = self.readiness()
            return body if code == 200 else None
        return eventually(probe, timeout, f"readiness of the operator ({self.tail()})")

    def scrape(self) -> Samples:
        """Every sample, keyed by (name, labels)."""
        code, body = self._get("/metrics")
        assert code == 200, (code, body[:500])
        return {(s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples}

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def sample(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (0 when the series does not exist yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
