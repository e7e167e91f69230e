"""The async face of the cluster API: :class:`AsyncDaskClusterHandle` and the module functions.

``dask_kube_jobs.asyncio`` exports them; the sync face (``_sync.py``) runs the same coroutines
on the job API's private event-loop thread, so the two cannot drift apart. ``KubeCluster`` and
the Airflow provider's cluster tasks go through them rather than the raw client.

A handle is one DaskCluster (one uid once seen): its status as last seen (``last_status``,
no request), reads (``status()``, ``refresh()``), ``scale()`` through a worker group's scale
subresource, ``wait_ready()`` for a ready scheduler and N ready workers, and ``delete()``.
Why a cluster is not ready is read from the conditions the operator writes
(:meth:`ClusterStatus.problem`), never re-derived from its Pods.

>>> from dask_kube_jobs import make_cluster_spec
>>> from dask_kube_jobs.asyncio import create_cluster
>>> cluster = await create_cluster(make_cluster_spec("demo", n_workers=2))  # doctest: +SKIP
>>> (await cluster.wait_ready(workers=2, timeout=300)).scheduler_address      # doctest: +SKIP
'tcp://demo-scheduler.default.svc.cluster.local:8786'
>>> await cluster.delete()                                                    # doctest: +SKIP
True
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Generator, Mapping
from typing import Any

from .. import kube
from ..contract.api_resources import DASKCLUSTERS, DASKWORKERGROUPS
from ..contract.names import default_worker_group
from ..errors import (
    APIRequestError,
    ClusterExistsError,
    ClusterFailed,
    ClusterNotFoundError,
    ClusterStartupError,
    CRDsNotInstalled,
)
from ..jobs._client import NETWORK_ERRORS, connect, is_transient
from ..jobs._profile import check_early
from ..profile_spec import profile_block, with_profile
from ._manifest import load_cluster_manifest
from ._status import ClusterStatus

__all__ = ["AsyncDaskClusterHandle", "create_cluster", "explain", "get_cluster",
           "list_clusters"]

Obj = dict[str, Any]
#: Seconds between reads of a cluster being deleted.
DELETE_POLL = 0.5
#: Seconds before watching again after a transient error.
WATCH_RETRY = 1.0
WATCH_TIMEOUT = 300  # seconds a watch request lasts before it is renewed


def explain(exc: kube.APIError, what: str) -> APIRequestError:
    """An API error turned into the package's error, saying what to do next."""
    if isinstance(exc, kube.NotFound) and "namespace" in exc.message.lower():
        return APIRequestError(exc.code, exc.reason, f"{what}: {exc.message}; create the "
                               "namespace or pass another namespace=", status=exc.body)
    if isinstance(exc, kube.NotFound):
        return CRDsNotInstalled(exc.code, exc.reason, f"{what}: the DaskCluster resource type is "
                                "not installed in this cluster", status=exc.body)
    error = APIRequestError(exc.code, exc.reason, f"{what}: {exc.message}", status=exc.body)
    if isinstance(exc, kube.Forbidden):
        error.hint = ("your account needs rights on daskclusters, daskworkergroups and "
                      "daskautoscalers (kubernetes.dask.org) and get/list on pods, pods/log, "
                      "pods/portforward and services in this namespace")
    return error


@contextlib.contextmanager
def _explained(what: str) -> Generator[None]:
    try:
        yield
    except kube.APIError as exc:
        raise explain(exc, what) from exc


async def _client(client: kube.Client | None, kubeconfig: str | os.PathLike[str] | None,
                  context: str | None) -> kube.Client:
    return client if client is not None else await connect(kubeconfig, context=context)


class AsyncDaskClusterHandle:
    """One DaskCluster: made by :func:`create_cluster`, :func:`get_cluster`,
    :func:`list_clusters`, or :meth:`from_name` (no request).

    Reads that make a request are coroutines; properties make none and say what was last seen.
    A handle stands for one cluster: once it has seen the cluster's uid, a cluster re-created
    under the same name counts as gone (:class:`ClusterNotFoundError`).
    """

    def __init__(self, client: kube.Client, cluster: Obj) -> None:
        self.client = client
        self._last = cluster
        meta = cluster["metadata"]
        self.name: str = meta["name"]
        self.namespace: str = meta["namespace"]

    @classmethod
    async def from_name(cls, name: str, namespace: str, *, client: kube.Client | None = None,
                        kubeconfig: str | os.PathLike[str] | None = None,
                        context: str | None = None) -> AsyncDaskClusterHandle:
        """A handle for ``namespace/name`` without reading it (until then ``phase`` is None)."""
        return cls(await _client(client, kubeconfig, context),
                   {"metadata": {"name": name, "namespace": namespace}})

    def __repr__(self) -> str:
        return f"<DaskCluster {self.namespace}/{self.name} phase={self.last_status.phase}>"

    @property
    def uid(self) -> str | None:
        return self._last["metadata"].get("uid")

    @property
    def raw(self) -> Obj:
        """The DaskCluster as last seen."""
        return self._last

    @property
    def last_status(self) -> ClusterStatus:
        """The status when last seen; no request."""
        return ClusterStatus.from_cluster(self._last)

    def _seen(self, obj: Obj | None) -> Obj:
        uid = self.uid
        if obj is None or (uid and obj["metadata"].get("uid") != uid):
            raise ClusterNotFoundError(f"DaskCluster {self.name} no longer exists in namespace "
                                       f"{self.namespace}")
        self._last = obj
        return obj

    async def refresh(self) -> Obj:
        """Read the DaskCluster again; :class:`ClusterNotFoundError` if it is gone."""
        with _explained(f"cannot read DaskCluster {self.name}"):
            return self._seen(await self.client.get(DASKCLUSTERS, self.namespace, self.name))

    async def status(self) -> ClusterStatus:
        return ClusterStatus.from_cluster(await self.refresh())

    async def scale(self, n: int, worker_group: str | None = None) -> None:
        """Ask for ``n`` workers in a worker group (default: the cluster's own), through the
        group's scale subresource, as ``kubectl scale`` and an HPA do. For the default group
        the cluster's ``spec.worker.replicas`` is kept in step, so the operator does not put
        the old count back."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        group = worker_group or default_worker_group(self.name)
        with _explained(f"cannot scale worker group {group}"):
            if group == default_worker_group(self.name):
                await self.client.patch(DASKCLUSTERS, self.namespace, self.name,
                                        {"spec": {"worker": {"replicas": n}}})
            await self.client.patch(DASKWORKERGROUPS, self.namespace, group,
                                    {"spec": {"replicas": n}}, sub="scale")

    async def changes(self) -> AsyncIterator[Obj | None]:
        """The DaskCluster now and after each change, None while there is none of that name
        (list + watch of this one object, resumed after transient errors): for a reader that
        may start before the cluster exists, such as a sensor."""
        selector = f"metadata.name={self.name}"

        async def list_() -> tuple[list[Obj], str]:
            return await self.client.list(DASKCLUSTERS, self.namespace, field_selector=selector)

        def watch(rv: str) -> Any:
            return self.client.watch_lines(DASKCLUSTERS, self.namespace, rv,
                                           timeout_seconds=WATCH_TIMEOUT,
                                           field_selector=selector)

        stream = kube.ListThenWatch(list_, watch)
        while True:
            try:
                async for event in stream:
                    if isinstance(event, kube.Relisted):
                        yield next((o for o in event.items
                                    if o["metadata"]["name"] == self.name), None)
                    else:
                        yield None if event.type == "DELETED" else event.object
            except (kube.APIError, *NETWORK_ERRORS) as exc:
                if not is_transient(exc):
                    if isinstance(exc, kube.APIError):
                        raise explain(exc, f"cannot watch DaskCluster {self.name}") from exc
                    raise
                await asyncio.sleep(WATCH_RETRY)

    async def watch(self) -> AsyncIterator[ClusterStatus]:
        """The status now and after each change; :class:`ClusterNotFoundError` once the
        cluster is gone (or was never there)."""
        async with contextlib.aclosing(self.changes()) as changes:
            async for obj in changes:
                yield ClusterStatus.from_cluster(self._seen(obj))

    async def wait_ready(self, workers: int = 0, timeout: float | None = None) -> ClusterStatus:
        """Wait until the scheduler is ready and ``workers`` workers are; returns the status.

        Raises :class:`ClusterFailed` when the operator marks the cluster ``Failed`` (final),
        :class:`ClusterStartupError` after ``timeout`` seconds (the cluster is left as it is),
        both with the words of the cluster's conditions, and :class:`ClusterNotFoundError`
        if it is deleted meanwhile.
        """
        scope = asyncio.timeout(timeout)
        try:
            async with scope, contextlib.aclosing(self.watch()) as states:
                async for st in states:
                    if st.failed:
                        raise ClusterFailed(
                            f"DaskCluster {self.namespace}/{self.name} failed: "
                            f"{st.problem() or 'see its events'}", status=st)
                    if st.ready(workers):
                        return st
        except TimeoutError:
            if scope.expired():
                st = self.last_status
                raise ClusterStartupError(
                    f"DaskCluster {self.namespace}/{self.name} was not ready within "
                    f"{timeout:g}s: it is {st.describe(workers)}") from None
            raise
        raise ClusterNotFoundError(f"DaskCluster {self.name} is gone")  # pragma: no cover

    async def delete(self, wait: bool = True, timeout: float = 120.0, *,
                     propagation: str = "Foreground") -> bool:
        """Delete the cluster (its scheduler, workers and Service go with it); False if it
        was already gone. With ``wait``, return once it is gone, raising ``TimeoutError``
        after ``timeout`` seconds. ``propagation="Foreground"`` (the default) removes the
        children before the cluster itself, so "gone" means its Pods are gone too."""
        with _explained(f"cannot delete DaskCluster {self.name}"):
            if not wait:
                return await self.client.delete(DASKCLUSTERS, self.namespace, self.name,
                                                propagation=propagation, uid=self.uid)
            return await self.client.delete_and_wait(
                DASKCLUSTERS, self.namespace, self.name, uid=self.uid,
                propagation=propagation, timeout=timeout, poll=DELETE_POLL)


async def create_cluster(spec: Any, *, namespace: str | None = None,
                         labels: Mapping[str, str] | None = None,
                         kubeconfig: str | os.PathLike[str] | None = None,
                         context: str | None = None,
                         client: kube.Client | None = None, profile: str | None = None,
                         profile_options: Mapping[str, Any] | None = None,
                         ) -> AsyncDaskClusterHandle:
    """Create a DaskCluster; returns its handle at once (``await handle.wait_ready()``).

    ``spec`` is a manifest (from :func:`~dask_kube_jobs.make_cluster_spec`, a YAML/JSON file
    or YAML text). The namespace is ``namespace``, else the manifest's, else the context's;
    ``labels`` are added to the manifest's. ``profile``/``profile_options`` set its
    ``spec.profile`` (options it already gave for that profile are kept unless overridden);
    when the profile can be read the options are checked against it first
    (:class:`~dask_kube_jobs.ProfileNotFound`, :class:`~dask_kube_jobs.ProfileOptionError`).
    :class:`ClusterExistsError` if the name is taken.
    """
    manifest = load_cluster_manifest(spec, require_name=True)
    if profile is not None:
        manifest = with_profile(manifest, profile, profile_options)
    elif profile_options:
        raise ValueError("profile_options: are options of a profile; name it with profile=...")
    elif "profile" in manifest["spec"]:  # the block's shape, checked before it is sent
        block = manifest["spec"]["profile"]
        block = block if isinstance(block, Mapping) else {}
        profile_block(block.get("name"), block.get("options"))
    api = await _client(client, kubeconfig, context)
    await check_early(api, manifest["spec"])
    meta = manifest["metadata"]
    ns = namespace or meta.get("namespace") or kube.default_namespace(api)
    meta["namespace"] = ns
    if labels:
        meta["labels"] = {**(meta.get("labels") or {}), **labels}
    try:
        created = await api.create(DASKCLUSTERS, ns, manifest)
    except kube.Conflict as exc:
        raise ClusterExistsError(f"DaskCluster {meta['name']} already exists in namespace "
                                 f"{ns}") from exc
    except kube.APIError as exc:
        raise explain(exc, f"cannot create DaskCluster {meta['name']}") from exc
    return AsyncDaskClusterHandle(api, created)


async def get_cluster(name: str, namespace: str | None = None, *,
                      kubeconfig: str | os.PathLike[str] | None = None,
                      context: str | None = None,
                      client: kube.Client | None = None) -> AsyncDaskClusterHandle:
    """An existing DaskCluster by name; :class:`ClusterNotFoundError` if there is none."""
    api = await _client(client, kubeconfig, context)
    handle = AsyncDaskClusterHandle(api, {"metadata": {
        "name": name, "namespace": namespace or kube.default_namespace(api)}})
    await handle.refresh()
    return handle


async def list_clusters(namespace: str | None = None,
                        labels: Mapping[str, str] | str | None = None, *,
                        all_namespaces: bool = False,
                        kubeconfig: str | os.PathLike[str] | None = None,
                        context: str | None = None,
                        client: kube.Client | None = None) -> list[AsyncDaskClusterHandle]:
    """The DaskClusters of a namespace (or all), optionally selected by labels, by name."""
    api = await _client(client, kubeconfig, context)
    ns = None if all_namespaces else (namespace or kube.default_namespace(api))
    selector = labels if isinstance(labels, str) or labels is None else \
        ",".join(f"{k}={v}" for k, v in labels.items())
    with _explained("cannot list DaskClusters"):
        items, _ = await api.list(DASKCLUSTERS, ns, label_selector=selector or None)
    items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
    return [AsyncDaskClusterHandle(api, item) for item in items]
