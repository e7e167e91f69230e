"""Runs every controller of the local control plane, as kube-controller-manager and kube-scheduler do.

Each controller is an independent client of the API server (its own connection pool, informers
and work queue), supervised here: an unexpected error is logged and the controller restarts
after an exponential back-off, so one broken controller never stops the others. Cancelling
``run_controllers`` cancels them all and closes every HTTP session before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from ...kube import Backoff, Client
from .clusterroles import ClusterRoleAggregationController
from .deployments import DeploymentController
from .endpoints import EndpointsController
from .endpointslices import EndpointSliceController
from .garbage_collector import CRDCleanup, GarbageCollector, PodGC
from .namespaces import NamespaceController, RootCAController, ServiceAccountController
from .nodes import NodeLifecycleController
from .replicasets import ReplicaSetController
from .scheduler import Scheduler

log = logging.getLogger("dask_kube_jobs.local.controllers")


class Controller(Protocol):
    name: str

    def __init__(self, client: Client) -> None: ...

    async def run(self) -> None: ...


CONTROLLERS: tuple[type[Controller], ...] = (
    Scheduler, GarbageCollector, PodGC, CRDCleanup, NamespaceController, ServiceAccountController,
    RootCAController, DeploymentController, ReplicaSetController, EndpointsController,
    EndpointSliceController, NodeLifecycleController, ClusterRoleAggregationController,
)


async def _supervise(cls: type[Controller], kubeconfig: str) -> None:
    backoff = Backoff(first=0.5, most=30.0)  # restarts are never forgiven: a flapping one waits
    client: Client | None = None
    try:
        while True:
            try:
                if client is None:
                    client = await Client.connect(kubeconfig)
                log.debug("starting %s", cls.name)
                await cls(client).run()
                log.warning("%s stopped by itself; restarting", cls.name)
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = backoff.next_delay()
                log.exception("%s failed; restarting in %.1fs", cls.name, delay)
                await asyncio.sleep(delay)
                continue
            await backoff.pause()
    finally:
        if client is not None:
            await asyncio.shield(client.close())


async def run_controllers(kubeconfig: str) -> None:
    """Run all controllers against the API server of ``kubeconfig`` until cancelled.

    Example::

        task = asyncio.create_task(run_controllers("/path/to/kubeconfig.yaml"))
        ...
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    """
    tasks = [asyncio.create_task(_supervise(cls, kubeconfig), name=f"controller-{cls.name}")
             for cls in CONTROLLERS]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
