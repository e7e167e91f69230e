"""``KubeCluster``: a Dask cluster manager over one DaskCluster resource.

Code written for ``dask_kubernetes.operator.KubeCluster`` works unchanged (same constructor
arguments, ``from_name``, ``scale``, ``adapt``, worker groups, ``get_logs``), with upstream's
sharp edges fixed:

* ``from_name`` (and connecting to a cluster that already existed) never deletes the cluster on
  ``close()``; only a cluster this object created is deleted by default;
* ``adapt()`` with no arguments works (minimum 0, maximum :data:`DEFAULT_ADAPT_MAXIMUM`);
* ``create_mode`` accepts strings in any case, and a typo is an error;
* inside a Pod the namespace defaults to the Pod's own (its ServiceAccount namespace);
* a start-up failure (operator not answering, scheduler never ready) raises an error saying
  which and why, and deletes the DaskCluster it had created, so nothing is left behind.

The scheduler is reached directly when its Service name resolves (in-cluster), else through a
port-forward opened by this object (see ``_network``), so ``Client(cluster)`` works from a
laptop. Everything runs in the cluster's event loop (a background thread for synchronous use,
the caller's loop with ``asynchronous=True``), as for every ``distributed`` cluster manager.

>>> from dask.distributed import Client
>>> with KubeCluster(name="demo", n_workers=2) as cluster:       # doctest: +SKIP
...     with Client(cluster) as client:
...         print(client.submit(sum, [1, 2, 3]).result())
6
>>> async with KubeCluster(name="demo", asynchronous=True) as cluster:  # doctest: +SKIP
...     await cluster.scale(3)
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import logging
import os
import re
import time
import weakref
from contextlib import suppress
from pathlib import Path
from typing import Any, ClassVar

from distributed.core import Status, rpc
from distributed.deploy import Cluster
from distributed.utils import Logs, format_dashboard_link

from ..clusters._async import AsyncDaskClusterHandle, create_cluster, explain
from ..clusters._manifest import load_cluster_manifest
from ..clusters._status import ClusterStatus
from ..contract.api_resources import DASKAUTOSCALERS, DASKWORKERGROUPS
from ..contract.names import DASHBOARD_PORT, SCHEDULER_PORT, scheduler_name
from ..contract.pods import pod_ready
from ..errors import (
    ClusterExistsError,
    ClusterNotFoundError,
    ClusterStartupError,
    KubeClusterError,
)
from ..kube import PODS, SERVICES, APIError, Client, default_namespace
from ..profile_spec import with_profile
from ..spec import DEFAULT_IMAGE, jupyter_enabled, make_cluster_spec, make_worker_spec
from . import _api
from ._network import Endpoint, Forwards, listening, service_endpoint
from ._options import (
    DEFAULT_NAME,
    CreateMode,
    format_name,
    in_cluster_namespace,
    parse_create_mode,
    profile_choices,
)
from ._progress import Progress, describe_pod

__all__ = ["DEFAULT_ADAPT_MAXIMUM", "KubeCluster"]

log = logging.getLogger(__name__)

#: ``adapt()`` without ``maximum`` allows this many workers (or ``minimum``, if larger).
DEFAULT_ADAPT_MAXIMUM = 10
#: Seconds ``close()`` waits for a deleted DaskCluster to disappear.
DELETE_TIMEOUT = 120.0
_POLL = 0.5
_GROUP_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class KubeCluster(Cluster):
    """Create, or connect to, a Dask cluster on Kubernetes run by the dask-kube-jobs operator.

    Arguments (all keyword-only; upstream's names and meanings):

    * ``name``: the DaskCluster's name; ``{user}``/``{uuid}`` are expanded. Default
      ``dask-{user}-{uuid}``; taken from ``custom_cluster_spec`` when that is given.
    * ``namespace``: default the Pod's namespace when run in a Pod (unless ``kubeconfig`` or
      ``context`` is given), else the kubeconfig context's namespace, else ``default``.
    * ``image``, ``n_workers`` (default 3), ``resources``, ``env`` (dict or list of EnvVar),
      ``worker_command`` (default ``dask worker``), ``scheduler_service_type`` (ClusterIP),
      ``idle_timeout`` (seconds; 0 = never), ``jupyter``: passed to
      :func:`~dask_kube_jobs.make_cluster_spec`. ``jupyter=True`` serves JupyterLab from the
      scheduler (the image needs ``jupyterlab``), at :attr:`jupyter_link`.
    * ``custom_cluster_spec``: a DaskCluster manifest (dict, or a YAML file path) used instead.
    * ``create_mode``: :class:`CreateMode` or its name in any case (default CREATE_OR_CONNECT).
    * ``shutdown_on_close``: delete the DaskCluster on ``close()``; default True only if this
      object created it.
    * ``resource_timeout``: seconds (default 60) for the operator to report a status, and then
      again for the scheduler to become ready, before :class:`ClusterStartupError`.
    * ``port_forward_cluster_ip``: None (default) forwards only when the scheduler Service's
      name does not resolve here; True always; False never.
    * ``quiet``: no progress lines on stderr. ``kubeconfig``: a kubeconfig path (default:
      ``$KUBECONFIG``, ``~/.kube/config`` or the in-cluster ServiceAccount, as kr8s finds them).
      ``context``: the kubeconfig context to use instead of its current one (an Airflow
      connection's ``cluster_context``).
    * ``asynchronous``, ``loop``: as for every ``distributed`` cluster manager.
    * ``profile``: a DaskClusterProfile to fill the cluster (``spec.profile``); then the
      arguments above that are not given are left to it, and any other keyword argument is
      one of its options (``KubeCluster(profile="standard", worker_memory="8Gi")``), as is
      ``profile_options={...}``. They are checked against the profile when it can be read;
      the operator checks them again.
    """

    _instances: ClassVar[weakref.WeakSet[KubeCluster]] = weakref.WeakSet()

    def __init__(self, *, name: str | None = None, namespace: str | None = None,
                 image: str | None = None, n_workers: int | None = None,
                 resources: dict[str, Any] | None = None,
                 env: dict[str, Any] | list[dict[str, Any]] | None = None,
                 worker_command: str | list[str] | None = None,
                 custom_cluster_spec: str | os.PathLike[str] | dict[str, Any] | None = None,
                 scheduler_service_type: str | None = None,
                 shutdown_on_close: bool | None = None,
                 create_mode: CreateMode | str | None = None, resource_timeout: float = 60,
                 idle_timeout: int | None = None, port_forward_cluster_ip: bool | None = None,
                 jupyter: bool = False, quiet: bool = False, asynchronous: bool = False,
                 loop: Any = None, kubeconfig: str | os.PathLike[str] | None = None,
                 context: str | None = None, profile: str | None = None,
                 profile_options: dict[str, Any] | None = None, **options: Any) -> None:
        self.create_mode = parse_create_mode(create_mode)
        chosen = profile_choices(profile, profile_options, options)
        if custom_cluster_spec is not None:
            source = Path(custom_cluster_spec) if isinstance(custom_cluster_spec, str) \
                else custom_cluster_spec
            manifest = load_cluster_manifest(source, argument="custom_cluster_spec",
                                             require_name=True)
            spec_name = manifest["metadata"]["name"]
            if name is not None and name != spec_name:
                raise ValueError(f"name: {name!r} differs from custom_cluster_spec's "
                                 f"metadata.name {spec_name!r}; give only one")
            name = spec_name
            namespace = namespace or manifest["metadata"].get("namespace")
            if profile is not None:
                manifest = with_profile(manifest, profile, chosen)
        else:
            name = format_name(DEFAULT_NAME if name is None else name) \
                if name is None or "{" in name else name
            # Built now, so a bad argument fails before anything reaches the API.
            manifest = make_cluster_spec(
                name=name, image=image, n_workers=n_workers, resources=resources, env=env,
                worker_command=worker_command, scheduler_service_type=scheduler_service_type,
                idle_timeout=idle_timeout, jupyter=jupyter or None, profile=profile,
                profile_options=chosen)
        if not isinstance(resource_timeout, (int, float)) or resource_timeout <= 0:
            raise ValueError(f"resource_timeout: must be a positive number of seconds, got "
                             f"{resource_timeout!r}")
        self._manifest = manifest
        self.namespace = namespace
        self.shutdown_on_close = shutdown_on_close
        self.resource_timeout = float(resource_timeout)
        self.port_forward_cluster_ip = port_forward_cluster_ip
        #: Whether the scheduler serves JupyterLab: read from the manifest (the cluster's own,
        #: once connected to an existing one), not from the ``jupyter`` argument alone.
        self.jupyter = jupyter_enabled(manifest)
        self.created = False  # True once this object has created the DaskCluster
        self._kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
        self._context = context
        self._client: Client | None = None
        self._forwards = Forwards()
        self._dashboard: Endpoint | None = None
        self._progress: Progress | None = None
        super().__init__(asynchronous=asynchronous, loop=loop, quiet=quiet, name=name)
        self._instances.add(self)
        if not self.called_from_running_loop:
            self._loop_runner.start()
            try:
                self.sync(self._start)
            except BaseException:
                self._loop_runner.stop()
                raise

    # -- start ------------------------------------------------------------------------------
    def __await__(self) -> Any:
        async def _() -> KubeCluster:
            if self.status == Status.created:
                await self._start()
            return self

        return _().__await__()

    async def _start(self) -> None:
        self._progress = Progress(self.name, quiet=self.quiet)
        try:
            self._client = await Client.connect(self._kubeconfig, context=self._context)
            if self.namespace is None:
                self.namespace = (None if self._kubeconfig or self._context
                                  else in_cluster_namespace()) \
                    or default_namespace(self._client)
            existing = await self._get_cluster()
            if existing is not None and self.create_mode is CreateMode.CREATE_ONLY:
                raise ClusterExistsError(
                    f"DaskCluster {self.name} already exists in namespace {self.namespace} and "
                    "create_mode is CREATE_ONLY; connect with KubeCluster.from_name("
                    f"{self.name!r}) or choose another name")
            if existing is None and self.create_mode is CreateMode.CONNECT_ONLY:
                raise ClusterNotFoundError(
                    f"DaskCluster {self.name} does not exist in namespace {self.namespace} "
                    "(create_mode is CONNECT_ONLY); check the name and namespace "
                    "(kubectl get daskclusters -A)")
            if existing is None:
                await self._create()
            else:
                self._log(f"connecting to the existing DaskCluster in {self.namespace}")
                self.jupyter = jupyter_enabled(existing)
            if self.shutdown_on_close is None:
                self.shutdown_on_close = self.created
            await self._wait_until_running()
            await self._connect()
            await super()._start()
        except BaseException as exc:
            await self._abort(exc)
            raise
        self._log(f"ready: scheduler {self.scheduler_address}, dashboard {self.dashboard_link}")

    async def _create(self) -> None:
        assert self._client is not None and self.namespace is not None
        body = copy.deepcopy(self._manifest)
        body.setdefault("metadata", {})["namespace"] = self.namespace
        self._log(f"creating DaskCluster in namespace {self.namespace}")
        try:
            await create_cluster(body, namespace=self.namespace, client=self._client)
        except ClusterExistsError:
            if self.create_mode is not CreateMode.CREATE_OR_CONNECT:
                raise
            self._log("it was created meanwhile; connecting to it")  # a concurrent creator
            return
        self.created = True

    def _handle(self) -> AsyncDaskClusterHandle:
        """The cluster API's handle on this DaskCluster (no request)."""
        assert self._client is not None and self.namespace is not None
        return AsyncDaskClusterHandle(self._client, {"metadata": {"name": self.name,
                                                                  "namespace": self.namespace}})

    async def _delete_and_wait(self) -> bool:
        """Delete the DaskCluster (background cascade); False if it is still there after
        ``DELETE_TIMEOUT``."""
        try:
            await self._handle().delete(timeout=DELETE_TIMEOUT, propagation="Background")
        except TimeoutError:
            return False
        return True

    async def _get_cluster(self) -> dict[str, Any] | None:
        try:
            return await self._handle().refresh()
        except ClusterNotFoundError:
            return None

    async def _live_cluster(self) -> dict[str, Any]:
        cluster = await self._get_cluster()
        if cluster is None:
            raise ClusterNotFoundError(f"DaskCluster {self.name} no longer exists")
        return cluster

    async def _observe(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None, bool]:
        assert self._client is not None and self.namespace is not None
        cluster, pod, service = await _api.scheduler_objects(self._client, self.namespace,
                                                             self.name)
        if self._progress is not None:
            self._progress.update(cluster=cluster, scheduler=pod, service=service is not None)
        return cluster, pod, service is not None

    async def _wait_until_running(self) -> None:
        """Wait for the operator's status, then for a ready scheduler and its Service."""
        stage, deadline = "status", time.monotonic() + self.resource_timeout
        while True:
            cluster, pod, service = await self._observe()
            if cluster is None:
                raise ClusterNotFoundError(f"DaskCluster {self.name} was deleted while "
                                           "starting")
            st = ClusterStatus.from_cluster(cluster)
            if stage == "status" and st.phase:
                stage, deadline = "scheduler", time.monotonic() + self.resource_timeout
            if stage == "scheduler" and service and (st.running or pod_ready(pod)):
                return
            if time.monotonic() > deadline:
                raise await self._startup_error(stage, pod)
            await asyncio.sleep(_POLL)

    async def _startup_error(self, stage: str, pod: dict[str, Any] | None) -> ClusterStartupError:
        t = f"{self.resource_timeout:.0f}s"
        if stage == "status":
            return ClusterStartupError(
                f"DaskCluster {self.name} in namespace {self.namespace} has no status after "
                f"{t}: is the dask-kube-jobs operator running? (kubectl get pods -A -l "
                "app.kubernetes.io/name=dask-kube-jobs)")
        details = ""
        if pod is not None and (pod.get("status") or {}).get("phase") != "Pending":
            assert self._client is not None
            with suppress(Exception):
                tail = await _api.pod_log(self._client, pod, tail_lines=_api.LOG_TAIL_LINES)
                details = f"last lines of its log:\n{tail.rstrip()}" if tail.strip() else ""
        return ClusterStartupError(
            f"the scheduler of DaskCluster {self.name} was not ready within {t}: scheduler Pod "
            f"{self.name}-scheduler is {describe_pod(pod)}. Raise resource_timeout if its "
            "image is slow to pull; see `kubectl describe pod "
            f"{self.name}-scheduler -n {self.namespace}`", details)

    async def _connect(self) -> None:
        """Open the scheduler comm (directly or port-forwarded) and the dashboard route.

        A fresh scheduler may refuse the first connections, a port-forward whose tunnel broke
        keeps refusing, and one whose local port was taken has no listener: each failed try
        closes the forwards and opens new ones.
        """
        assert self._client is not None and self.namespace is not None
        deadline = time.monotonic() + self.resource_timeout
        announced = False
        while True:
            service = await self._client.get(SERVICES, self.namespace, scheduler_name(self.name))
            pod = await self._client.get(PODS, self.namespace, scheduler_name(self.name))
            if service is None:
                raise KubeClusterError(f"the scheduler Service {self.name}-scheduler disappeared")
            routes = {"forward": self.port_forward_cluster_ip, "forwards": self._forwards,
                      "api": self._client.api, "service": service, "pod": pod}
            try:
                comm = await service_endpoint(port_name="tcp-comm", default_port=SCHEDULER_PORT, **routes)
                self._dashboard = await service_endpoint(port_name="http-dashboard",
                                                         default_port=DASHBOARD_PORT, **routes)
            except LookupError as exc:
                raise ClusterStartupError(f"cannot port-forward to DaskCluster {self.name}: "
                                          f"{exc}") from exc
            if comm.forwarded and not announced:
                self._log(f"port-forwarding localhost:{comm.port} to the scheduler "
                          f"(dashboard on localhost:{self._dashboard.port})")
                announced = True
            self.scheduler_comm = rpc(comm.url("tcp"))
            try:
                await asyncio.wait_for(self.scheduler_comm.identity(), 10)
                if self._dashboard.forwarded:  # dashboard_link and jupyter_link use it
                    await listening(self._dashboard)
                return
            except (TimeoutError, OSError) as exc:
                await self.scheduler_comm.close_rpc()
                if comm.forwarded:
                    await self._forwards.close()
                if time.monotonic() > deadline:
                    raise ClusterStartupError(
                        f"cannot reach the scheduler of DaskCluster {self.name} at "
                        f"{comm.url('tcp')}: {exc!r}") from exc
                await asyncio.sleep(_POLL)

    async def _abort(self, exc: BaseException) -> None:
        """Undo a failed start: delete what we created, release connections."""
        try:
            if self.created and self._client is not None and self.namespace is not None:
                self._log(f"start-up failed ({type(exc).__name__}); deleting DaskCluster "
                          f"{self.name}")
                with suppress(Exception):
                    await self._delete_and_wait()
                self.created = False
        finally:
            self.shutdown_on_close = False
            await self._close()

    def _log(self, log_line: str) -> None:
        self._cluster_manager_logs.append((time.time(), log_line))
        log.info("KubeCluster %s: %s", self.name, log_line)
        if self._progress is not None:
            self._progress.note(log_line)

    # -- properties ---------------------------------------------------------------------------
    @property
    def dashboard_link(self) -> str:
        if self._dashboard is None:
            return ""
        return format_dashboard_link(self._dashboard.host, self._dashboard.port)

    @property
    def jupyter_link(self) -> str:
        """JupyterLab on the scheduler, through the same route as :attr:`dashboard_link` (the
        port-forward, or the Service): ``distributed`` serves it under ``/jupyter/`` of the
        dashboard's HTTP server. Raises RuntimeError if the scheduler was not started with
        ``--jupyter``."""
        if not self.jupyter:
            raise RuntimeError(
                f"the scheduler of DaskCluster {self.name} does not serve Jupyter: create the "
                "cluster with KubeCluster(jupyter=True), or add --jupyter to its scheduler "
                "container's args")
        base = self.dashboard_link
        base = base[:-len("/status")] if base.endswith("/status") else base.rstrip("/")
        return f"{base}/jupyter/lab"

    @property
    def plan(self) -> set[str]:
        return self.observed

    @property
    def requested(self) -> set[str]:
        return self.observed

    # -- operations ---------------------------------------------------------------------------
    def _group(self, worker_group: str | None) -> str:
        if worker_group in (None, "default"):
            return f"{self.name}-default"
        if not isinstance(worker_group, str) or not _GROUP_NAME.fullmatch(worker_group):
            raise ValueError(f"worker_group: {worker_group!r} must be lower case letters, "
                             "digits and '-' (it names a DaskWorkerGroup)")
        return worker_group if worker_group.startswith(f"{self.name}-") \
            else f"{self.name}-{worker_group}"

    def _autoscaler(self, group: str) -> str:
        return self.name if group == f"{self.name}-default" else group

    def scale(self, n: int, worker_group: str | None = None) -> Any:  # type: ignore[override]
        """Set a worker group's size (default group unless ``worker_group`` names another);
        turns adaptivity of that group off. Workers removed are retired through the scheduler
        by the operator, so their results move elsewhere first.

        >>> cluster.scale(5)                               # doctest: +SKIP
        >>> cluster.scale(0, worker_group="highmem")       # doctest: +SKIP
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"n: must be an integer >= 0, got {n!r}")
        return self.sync(self._scale, n, self._group(worker_group))

    async def _scale(self, n: int, group: str) -> None:
        client, ns = self._require()
        with suppress(APIError):
            await client.delete(DASKAUTOSCALERS, ns, self._autoscaler(group))
        await self._handle().scale(n, group)

    def adapt(self, minimum: int | None = None, maximum: int | None = None, *,  # type: ignore[override]
              worker_group: str | None = None, interval: float | None = None,
              scale_down_stabilization: float | None = None) -> Any:
        """Let the operator size a worker group from the scheduler's demand, within
        ``[minimum, maximum]``, by creating (or updating) a DaskAutoscaler.

        Defaults: ``minimum=0``, ``maximum=max(minimum, DEFAULT_ADAPT_MAXIMUM)``. ``interval``
        and ``scale_down_stabilization`` are in seconds. ``scale()`` turns it off again.

        >>> cluster.adapt()                                # doctest: +SKIP
        >>> cluster.adapt(minimum=1, maximum=20)           # doctest: +SKIP
        """
        minimum = 0 if minimum is None else minimum
        maximum = max(minimum, DEFAULT_ADAPT_MAXIMUM) if maximum is None else maximum
        for arg, value in (("minimum", minimum), ("maximum", maximum)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{arg}: must be an integer >= 0, got {value!r}")
        if minimum > maximum:
            raise ValueError(f"minimum ({minimum}) must not exceed maximum ({maximum})")
        spec: dict[str, Any] = {"cluster": self.name, "minimum": minimum, "maximum": maximum,
                                "workerGroup": self._group(worker_group)}
        if interval is not None:
            spec["intervalSeconds"] = max(1, round(interval))
        if scale_down_stabilization is not None:
            spec["scaleDownStabilizationSeconds"] = max(0, round(scale_down_stabilization))
        return self.sync(self._adapt, spec)

    async def _adapt(self, spec: dict[str, Any]) -> None:
        client, ns = self._require()
        cluster = await self._live_cluster()
        body = _api.autoscaler_body(cluster, self._autoscaler(spec["workerGroup"]), spec)
        try:
            await _api.upsert(client, DASKAUTOSCALERS, ns, body)
        except APIError as exc:
            raise explain(exc, "cannot create the DaskAutoscaler") from exc

    def add_worker_group(self, name: str, n_workers: int = 3, image: str | None = None,
                         resources: dict[str, Any] | None = None,
                         worker_command: str | list[str] | None = None,
                         env: dict[str, Any] | list[dict[str, Any]] | None = None,
                         custom_spec: dict[str, Any] | None = None) -> Any:
        """Add a DaskWorkerGroup ``<cluster>-<name>``. Unset arguments keep the cluster's
        worker template; ``custom_spec`` (a ``{replicas, spec: PodSpec}`` dict) replaces it.

        >>> cluster.add_worker_group("highmem", n_workers=2,            # doctest: +SKIP
        ...                          resources={"limits": {"memory": "64Gi"}})
        """
        group = self._group(name)
        built = make_worker_spec(image=image or DEFAULT_IMAGE, n_workers=n_workers,
                                 resources=resources, env=env,
                                 worker_command=worker_command or "dask worker")  # validates
        overrides = {"image": image and built["spec"]["containers"][0]["image"],
                     "resources": resources is not None and built["spec"]["containers"][0].get(
                         "resources"),
                     "env": env is not None and built["spec"]["containers"][0].get("env", []),
                     "args": worker_command and built["spec"]["containers"][0]["args"]}
        return self.sync(self._add_worker_group, group, n_workers, overrides,
                         copy.deepcopy(custom_spec))

    async def _add_worker_group(self, group: str, n_workers: int, overrides: dict[str, Any],
                                custom_spec: dict[str, Any] | None) -> None:
        client, ns = self._require()
        cluster = await self._live_cluster()
        body = _api.worker_group_body(cluster, group, n_workers, overrides, custom_spec)
        try:
            await client.create(DASKWORKERGROUPS, ns, body)
        except APIError as exc:
            raise explain(exc, f"cannot create worker group {group}") from exc

    def delete_worker_group(self, name: str) -> Any:
        """Delete the worker group ``<cluster>-<name>`` (and its autoscaler, if any).

        >>> cluster.delete_worker_group("highmem")         # doctest: +SKIP
        """
        group = self._group(name)
        if group == f"{self.name}-default":
            raise ValueError("the default worker group belongs to the DaskCluster; "
                             "use cluster.scale(0) instead")
        return self.sync(self._delete_worker_group, group)

    async def _delete_worker_group(self, group: str) -> None:
        client, ns = self._require()
        with suppress(APIError):
            await client.delete(DASKAUTOSCALERS, ns, self._autoscaler(group))
        if not await client.delete(DASKWORKERGROUPS, ns, group):
            raise KubeClusterError(f"worker group {group} does not exist in {ns}")

    def get_logs(self, cluster: bool = False, scheduler: bool = True,  # type: ignore[override]
                 workers: bool = True) -> Any:
        """``{pod name: log text}`` of the scheduler and worker Pods (through ``pods/log``);
        ``cluster=True`` adds this object's own log under ``"KubeCluster"``.

        >>> print(cluster.get_logs()["demo-scheduler"])    # doctest: +SKIP
        """
        return self.sync(self._get_logs, cluster, scheduler, workers)

    async def _get_logs(self, cluster: bool = False, scheduler: bool = True,  # type: ignore[override]
                        workers: bool = True) -> Logs:
        client, ns = self._require()
        logs = await _api.get_logs(client, ns, self.name, scheduler=scheduler, workers=workers)
        if cluster:
            logs["KubeCluster"] = "\n".join(f"{t:.0f} {m}" for t, m in self._cluster_manager_logs)
        return logs

    def _require(self) -> tuple[Client, str]:
        if self._client is None or self.namespace is None:
            raise KubeClusterError("the KubeCluster is not started (or already closed)")
        return self._client, self.namespace

    # -- close --------------------------------------------------------------------------------
    async def _close(self) -> None:  # type: ignore[override]
        """Disconnect; delete the DaskCluster (and wait for it to go) if ``shutdown_on_close``."""
        try:
            await super()._close()
        finally:
            try:
                if self.shutdown_on_close and self._client is not None and self.namespace:
                    self._log(f"deleting DaskCluster {self.name}")
                    if not await self._delete_and_wait():
                        log.warning("DaskCluster %s/%s is still being deleted after %.0fs",
                                    self.namespace, self.name, DELETE_TIMEOUT)
                    self.shutdown_on_close = False
            finally:
                await self._forwards.close()
                if self._client is not None:
                    client, self._client = self._client, None
                    await client.close()

    @classmethod
    def from_name(cls, name: str, namespace: str | None = None, **kwargs: Any) -> KubeCluster:
        """Connect to an existing DaskCluster; ``close()`` leaves it running unless
        ``shutdown_on_close=True`` is passed.

        >>> cluster = KubeCluster.from_name("example")     # doctest: +SKIP
        """
        kwargs.setdefault("create_mode", CreateMode.CONNECT_ONLY)
        kwargs.setdefault("shutdown_on_close", False)
        return cls(name=name, namespace=namespace, **kwargs)


@atexit.register
def _close_clusters_at_exit() -> None:
    """Delete, at interpreter exit, synchronous clusters still open with shutdown_on_close
    (the RAPIDS guide relies on this: a forgotten cluster does not keep burning GPUs)."""
    for cluster in list(KubeCluster._instances):
        if cluster.status in (Status.running, Status.created) and cluster.shutdown_on_close \
                and not cluster.asynchronous:
            with suppress(Exception):
                cluster.close(timeout=DELETE_TIMEOUT)
