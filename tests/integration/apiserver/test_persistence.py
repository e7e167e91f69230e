"""The API server across restarts: watches from before answer 410 Gone, and SIGKILL loses
nothing the server acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dask_kube_jobs.contract.api_resources import CONFIGMAPS
from dask_kube_jobs.kube import Client, ListThenWatch, Relisted
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(300)


def _plane(root: Path) -> LocalControlPlane:
    """A control plane with nothing but the API server, over the state kept in ``root``."""
    return LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state", kubelet=False,
                             operator=False, controllers=False)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    _plane(tmp_path).stop()  # whatever a failed test left running


def _cm(name: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}})


def test_a_watch_from_before_a_restart_gets_410_and_a_relist_carries_on(root: Path) -> None:
    with _plane(root) as plane:
        k = Kubectl(plane.kubeconfig, "default")
        k("create", "-f", "-", input=_cm("before"))
        listed = k("get", "--raw", "/api/v1/namespaces/default/configmaps").json()
        old_rv = listed["metadata"]["resourceVersion"]
        assert int(old_rv) > 0
        k("create", "-f", "-", input=_cm("missed"))  # a change the old watcher never saw
        server = plane.server
    with _plane(root) as plane:
        assert plane.server == server
        k = Kubectl(plane.kubeconfig, "default")
        raw = k("get", "--raw", "/api/v1/namespaces/default/configmaps?watch=true"
                f"&resourceVersion={old_rv}&timeoutSeconds=5").stdout
        status = json.loads(raw.splitlines()[0])
        assert status["type"] == "ERROR", raw
        assert status["object"]["code"] == 410 and status["object"]["reason"] == "Expired"

        async def resume() -> tuple[list[str], str]:
            """What an informer does: watch from its old version, re-list on 410, go on."""
            client = await Client.connect(plane.kubeconfig)
            try:
                stream = ListThenWatch(
                    lambda: client.list(CONFIGMAPS, "default"),
                    lambda rv: client.watch_lines(CONFIGMAPS, "default", rv, timeout_seconds=30),
                    resource_version=old_rv)
                listed: list[str] = []
                async for event in stream:
                    if isinstance(event, Relisted):
                        listed = [o["metadata"]["name"] for o in event.items]
                        await client.create(CONFIGMAPS, "default", json.loads(_cm("after")))
                    else:
                        return listed, f'{event.type} {event.object["metadata"]["name"]}'
            finally:
                await client.close()
            raise AssertionError("the watch ended")

        listed, seen = asyncio.run(asyncio.wait_for(resume(), 60))
        assert {"before", "missed"} <= set(listed)
        assert seen == "ADDED after"


def test_sigkill_loses_nothing_the_server_acknowledged(root: Path) -> None:
    plane = _plane(root).start()
    assert plane.process is not None
    acknowledged: dict[str, int] = {}

    async def write_until_killed() -> None:
        client = await Client.connect(plane.kubeconfig)
        stop = asyncio.Event()

        async def writer(w: int) -> None:
            for i in range(100_000):
                body = {"metadata": {"name": f"w{w}-{i}"}, "data": {"k": "v" * 256}}
                try:
                    created = await client.create(CONFIGMAPS, "default", body)
                except Exception:  # noqa: BLE001 - the server is gone: that is the point
                    stop.set()
                    return
                acknowledged[created["metadata"]["name"]] = int(created["metadata"]["resourceVersion"])
                if len(acknowledged) == 300:
                    os.kill(plane.process.pid, signal.SIGKILL)  # type: ignore[union-attr]

        try:
            await asyncio.gather(*(writer(w) for w in range(8)))
        finally:
            await client.close()
        assert stop.is_set()

    try:
        asyncio.run(asyncio.wait_for(write_until_killed(), 120))
        assert plane.process.wait(10) == -signal.SIGKILL
    finally:
        plane.stop()
    assert len(acknowledged) >= 300

    with _plane(root) as again:
        items = Kubectl(again.kubeconfig, "default")("get", "configmaps", "-o", "json").json()
        stored = {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in items["items"]}
        missing = sorted(set(acknowledged) - set(stored))
        assert missing == [], f"{len(missing)} acknowledged creates lost: {missing[:5]}"
        assert all(stored[name] == rv for name, rv in acknowledged.items())
        newer = Kubectl(again.kubeconfig, "default")("create", "-f", "-", "-o", "json",
                                                     input=_cm("after-the-kill")).json()
        assert int(newer["metadata"]["resourceVersion"]) > max(stored.values())
