"""Small helpers for the provider's tests: DaskJob manifests, a fake task instance, a TCP proxy
that can drop every connection (a watch drop, for real), and API access to the control plane."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from dask_kube_jobs import kube
from dask_kube_jobs.airflow_provider._identity import LABEL_KEY, TaskIdentity
from dask_kube_jobs.contract.api_resources import DASKJOBS
from dask_kube_jobs.spec import make_job_spec


def job_manifest(name: str, script: str, **kwargs: Any) -> dict[str, Any]:
    return make_job_spec(name, script=script, n_workers=1, **kwargs)


class FakeTI:
    """What the operator reads from ``context["ti"]``; records XCom pushes."""

    def __init__(self, *, dag_id: str = "dag", task_id: str = "task", run_id: str = "run-1",
                 map_index: int = -1, try_number: int = 1) -> None:
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.map_index, self.try_number = map_index, try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


async def jobs_of(kubeconfig: str, namespace: str, task_id: str, *, run_id: str = "run-1",
                  dag_id: str = "dag") -> list[dict[str, Any]]:
    client = await kube.Client.connect(kubeconfig)
    try:
        key = TaskIdentity(dag_id, task_id, run_id).key
        items, _ = await client.list(DASKJOBS, namespace, label_selector=f"{LABEL_KEY}={key}")
        return [j for j in items if not j["metadata"].get("deletionTimestamp")]
    finally:
        await client.close()


async def create_job(kubeconfig: str, namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
    client = await kube.Client.connect(kubeconfig)
    try:
        return await client.create(DASKJOBS, namespace, manifest)
    finally:
        await client.close()


class DroppingProxy:
    """A loopback TCP proxy in front of the API server whose connections can all be cut at
    once, as a load balancer restart or a network blip cuts a long watch."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None
        self.drops = 0
        self.connections = 0
        self.handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            self.writers -= {writer, up_writer}
            self.handlers.discard(task)

    def drop_all(self) -> None:
        self.drops += 1
        for w in list(self.writers):
            with contextlib.suppress(Exception):
                w.transport.abort()

    async def close(self) -> None:
        self.drop_all()
        if self.server:
            self.server.close()
        if self.handlers:
            await asyncio.wait(list(self.handlers), timeout=5)
        if self.server:
            await self.server.wait_closed()
