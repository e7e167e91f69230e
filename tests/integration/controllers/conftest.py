"""Fixtures for the controller tests: an API server alone, the controllers in this event loop.

The control plane runs without its own controllers (and without kubelet and operator), so each
test starts ``run_controllers`` as a task of its own loop and cancels it at the end — which also
checks that cancellation is clean. There is no kubelet: ``FakeKubelet`` plays one for a fake
Node (heartbeats, Pod IPs, readiness, finishing graceful deletions).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.contract.times import fmt_time
from dask_kube_jobs.kube import NAMESPACES, NODES, PODS, SERVICEACCOUNTS, APIError, Client, Obj
from dask_kube_jobs.local.controllers.manager import run_controllers
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    root = tmp_path_factory.mktemp("controllers-plane")
    cp = LocalControlPlane(Path(root) / "kubeconfig.yaml", state_dir=Path(root) / "state",
                           kubelet=False, operator=False, controllers=False)
    with cp:
        yield cp


@pytest.fixture
async def client(plane: LocalControlPlane) -> AsyncIterator[Client]:
    c = await Client.connect(plane.kubeconfig)
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
async def controllers(plane: LocalControlPlane) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(run_controllers(plane.kubeconfig))
    await asyncio.sleep(0.3)
    assert not task.done(), task
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        leftovers = [t for t in asyncio.all_tasks() if not t.done() and t.get_name().startswith(
            ("controller-", "informer-", "gc-monitor-"))]
        assert not leftovers, f"tasks left behind after cancellation: {leftovers}"


@pytest.fixture
async def ns(client: Client, request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh namespace; with the controllers running, once its ``default`` ServiceAccount
    exists: Pods name it, and ServiceAccount admission refuses them until then (as a real
    server does; its own retries last a few seconds, which a loaded machine can outwait)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    await client.create(NAMESPACES, None, {"metadata": {"name": name}})
    if "controllers" in request.fixturenames:
        await eventually(lambda: client.get(SERVICEACCOUNTS, name, "default"), timeout=60,
                         what=f"the default ServiceAccount of namespace {name}")
    yield name
    with contextlib.suppress(APIError):
        await client.delete(NAMESPACES, None, name)


@pytest.fixture
def kubectl(plane: LocalControlPlane, ns: str) -> Callable[..., Awaitable[Any]]:
    """Real kubectl in a thread (it must not block the loop the controllers run in)."""
    k = Kubectl(plane.kubeconfig, ns)

    async def run(*args: str, **kwargs: Any) -> Any:
        return await asyncio.to_thread(k, *args, **kwargs)

    return run


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0,
                     interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (returned) or fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while True:
        try:
            last = await check()
        except AssertionError as exc:
            last = exc
        if last and not isinstance(last, AssertionError):
            return last
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


_ips = itertools.count(10)


async def make_node(client: Client, name: str, *, cpu: str = "4", memory: str = "8Gi",
                    labels: dict[str, str] | None = None, extra: dict[str, str] | None = None,
                    ready: str = "True", heartbeat: str | None = None) -> Obj:
    await client.create(NODES, None, {"apiVersion": "v1", "kind": "Node",
                                      "metadata": {"name": name, "labels": {
                                          "kubernetes.io/hostname": name, **(labels or {})}}})
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", **(extra or {})}
    stamp = heartbeat or fmt_time()
    return await client.patch(NODES, None, name, {"status": {
        "capacity": allocatable, "allocatable": allocatable,
        "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}}, sub="status")


class FakeKubelet:
    """Plays the kubelet of one Node: Pods bound to it start Running with an IP (Ready unless
    told otherwise) and graceful deletions are finished at once."""

    def __init__(self, client: Client, node: str, *, ready: bool = True) -> None:
        self.client = client
        self.node = node
        self.ready = ready
        #: images whose Pods never become Ready (a broken rollout)
        self.broken_images: set[str] = set()
        self.not_ready: set[str] = set()
        #: Pod name -> the IP to report (else one of 10.244.0.0/24)
        self.ips: dict[str, str] = {}
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeKubelet:
        self.task = asyncio.create_task(self._loop(), name="fake-kubelet")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(APIError):
                await self.tick()
            await asyncio.sleep(0.1)

    async def tick(self) -> None:
        pods, _ = await self.client.list(PODS, field_selector=f"spec.nodeName={self.node}")
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp"):
                await self.client.delete(PODS, meta["namespace"], meta["name"], grace_period=0)
                continue
            status = pod.get("status") or {}
            ready = self.ready and meta["name"] not in self.not_ready and not any(
                c.get("image") in self.broken_images for c in pod["spec"]["containers"])
            current = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
            if status.get("phase") == "Running" and current.get("status") == str(ready):
                continue
            stamp = fmt_time()
            conditions = [c for c in status.get("conditions") or []
                          if c["type"] not in ("Ready", "ContainersReady", "Initialized")]
            conditions += [{"type": t, "status": str(ready if t != "Initialized" else True),
                            "lastProbeTime": None, "lastTransitionTime": stamp}
                           for t in ("Initialized", "Ready", "ContainersReady")]
            await self.client.patch(PODS, meta["namespace"], meta["name"], {"status": {
                "phase": "Running", "podIP": status.get("podIP") or self.ips.get(meta["name"])
                or f"10.244.0.{next(_ips) % 250}",
                "hostIP": "127.0.0.1", "startTime": status.get("startTime") or stamp,
                "conditions": conditions}}, sub="status")


@pytest.fixture
async def nodes(client: Client) -> AsyncIterator[Callable[..., Awaitable[Obj]]]:
    """Creates fake Nodes (unique names) and deletes them after the test."""
    made: list[str] = []

    async def factory(name: str | None = None, **kwargs: Any) -> Obj:
        name = name or f"node-{uuid.uuid4().hex[:6]}"
        made.append(name)
        return await make_node(client, name, **kwargs)

    yield factory
    for name in made:
        with contextlib.suppress(APIError):
            await client.delete(NODES, None, name)


def pod_manifest(name: str, *, requests: dict[str, str] | None = None,
                 limits: dict[str, str] | None = None, labels: dict[str, str] | None = None,
                 **spec: Any) -> Obj:
    resources: Obj = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "main", "image": "python:3.11",
                                     "resources": resources}], **spec}}
