"""Create and delete a long-lived DaskCluster shared by several tasks of a pipeline.

A DaskJob brings its own cluster and takes it away; some pipelines instead want one cluster
for several steps (warm workers, data kept in memory between tasks). The pattern:
``CreateDaskClusterOperator`` -> (optionally a ``DaskClusterSensor``) -> tasks that connect to
the cluster -> ``DeleteDaskClusterOperator`` as the teardown, so the cluster goes whatever
happened in between.

The create task returns (and pushes to XCom) the cluster's ``name``, ``namespace`` and the
in-cluster ``scheduler_address``/``dashboard_address`` the Dask operator publishes in the
cluster's status (``tcp://<name>-scheduler.<namespace>.svc.cluster.local:8786``). Code running
inside the Kubernetes cluster connects to that address directly; an Airflow worker outside it
cannot resolve it, so :func:`connect_to_cluster` gives tasks a ``KubeCluster`` handle that
port-forwards when needed (``Client(cluster)``).

The default cluster name is derived from the task's identity (dag, task, run, map index) but
not its try number, and the cluster is labelled with that identity: a retry of the create task
finds its own cluster and reuses it rather than failing or starting a second one
(``_clusterwait.create_or_reuse_cluster``).

Killing the create task while it waits (``on_kill``) deletes the half-made cluster, so a kill
leaves no orphan; but never a cluster the try found already ready (``Running`` with its
``SchedulerReady`` condition true): that one was made by an earlier, successful try and the pipeline's later tasks may be using it (its teardown
decides). Once the cluster is ready it is handed over and a kill no longer deletes it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator

from ...asyncio import (
    AsyncDaskClusterHandle,
    ClusterNotFoundError,
    ClusterStatus,
    load_cluster_manifest,
    with_profile,
)
from ...contract import names
from ...spec import make_cluster_spec
from .._clusterwait import create_or_reuse_cluster, delete_cluster, wait_for_cluster
from .._identity import LABEL_KEY, TaskIdentity
from ..hooks.daskjob import (
    DEFAULT_CONN_ID,
    DaskKubeJobsHook,
    KubeTarget,
    _kubeconfig_file,
    connect,
    default_namespace,
    resolve_conn_id,
)
from ..links import DASHBOARD_XCOM_KEY, DaskDashboardLink
from ..sensors.daskcluster import CLUSTER_XCOM_FIELDS
from ..sensors.daskjob import check_name
from .daskjob import identity_of

KILL_TIMEOUT = 30.0  # seconds on_kill waits for the delete request


class _KillTarget:
    """The cluster a kill of the running create task would delete: ``uid`` is None while the
    create request is in flight (then only a not yet ready cluster carrying this task's
    identity ``key`` is deleted)."""

    def __init__(self, target: KubeTarget, namespace: str, name: str, key: str,
                 uid: str | None = None) -> None:
        self.target, self.namespace, self.name, self.key, self.uid = \
            target, namespace, name, key, uid

    async def delete(self) -> str:
        client = await connect(self.target)
        try:
            handle = AsyncDaskClusterHandle(client, {"metadata": {
                "name": self.name, "namespace": self.namespace, "uid": self.uid}})
            if self.uid is None:
                try:
                    obj = await handle.refresh()
                except ClusterNotFoundError:
                    return "was not created"
                labels = obj["metadata"].get("labels") or {}
                if labels.get(LABEL_KEY) != self.key:
                    return "kept (another task's cluster)"
                if handle.last_status.running:
                    return "kept (already running: an earlier try made it)"
            deleted = await handle.delete(wait=False)
            return "deleted" if deleted else "was already gone"
        finally:
            await client.close()


class CreateDaskClusterOperator(BaseOperator):
    """Create a DaskCluster (or reuse the one an earlier try made) and wait until it runs.

    Give either ``manifest`` (a DaskCluster dict, YAML text or file path; templated) or the
    keyword arguments of :func:`dask_kube_jobs.make_cluster_spec`: ``image``, ``n_workers``,
    ``resources``, ``env``, and anything else through ``cluster_spec_kwargs``.

    :param cluster_name: templated; default the manifest's name, else
        ``<task_id>-<hash of dag, task, run and map index>`` (stable across retries).
    :param namespace: templated; default the connection's, else the manifest's, else the
        kubeconfig's.
    :param wait_for_ready: wait until the scheduler is ready (phase ``Running`` and condition
        ``SchedulerReady``) and
        ``min_ready_workers`` workers are; default True.
    :param startup_timeout: seconds to wait for that (default 600); on timeout or a
        ``Failed`` cluster the task fails, and the cluster is deleted unless an earlier try
        made it and it was already ready (then the pipeline's teardown decides).
    :param dask_kube_jobs_conn_id: a ``dask_kube_jobs`` connection (default
        ``dask_kube_jobs_default``); ``conn_id``, its old name, still works for one
        release, with a deprecation warning.
    :param profile: templated; the DaskClusterProfile that fills the cluster
        (``spec.profile``; a manifest's own is replaced), and ``profile_options`` its options.
        Without either, the connection's ``default_profile`` applies to a cluster that names
        no profile. Keyword arguments not given are then left to the profile.

    Returns ``{"name", "namespace", "scheduler_address", "dashboard_address",
    "ready_workers"}`` and also pushes each under its own XCom key.

    >>> CreateDaskClusterOperator(task_id="create", n_workers=2)             # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("manifest", "cluster_name", "namespace", "image", "env",
                                      "cluster_spec_kwargs", "profile", "profile_options")
    template_ext: Sequence[str] = (".yaml", ".yml", ".json")
    template_fields_renderers = {"manifest": "yaml", "env": "json", "cluster_spec_kwargs": "json",
                                 "profile_options": "json"}
    operator_extra_links = (DaskDashboardLink(),)
    ui_color = "#fdb874"

    def __init__(self, *, manifest: Any = None, cluster_name: str | None = None,
                 namespace: str | None = None, image: str | None = None,
                 n_workers: int | None = None, resources: dict[str, Any] | None = None,
                 env: dict[str, Any] | list[dict[str, Any]] | None = None,
                 cluster_spec_kwargs: dict[str, Any] | None = None,
                 wait_for_ready: bool = True, min_ready_workers: int = 0,
                 startup_timeout: float = 600.0,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 profile: str | None = None, profile_options: dict[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        keywords = any(v is not None for v in (image, n_workers, resources, env,
                                                cluster_spec_kwargs))
        if manifest is not None and keywords:
            raise ValueError("CreateDaskClusterOperator: give either manifest= or the cluster's "
                             "keyword arguments (image, n_workers, resources, ...), not both")
        if not isinstance(min_ready_workers, int) or min_ready_workers < 0:
            raise ValueError(f"CreateDaskClusterOperator: min_ready_workers must be an int >= 0 "
                             f"(got {min_ready_workers!r})")
        if startup_timeout <= 0:
            raise ValueError(f"CreateDaskClusterOperator: startup_timeout must be > 0 seconds "
                             f"(got {startup_timeout!r})")
        self.manifest = manifest
        self.cluster_name = cluster_name
        self.namespace = namespace
        self.image = image
        self.n_workers = n_workers
        self.resources = resources
        self.env = env
        self.cluster_spec_kwargs = cluster_spec_kwargs
        self.profile = profile
        self.profile_options = profile_options
        self.wait_for_ready = wait_for_ready
        self.min_ready_workers = min_ready_workers
        self.startup_timeout = float(startup_timeout)
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self._kill_target: _KillTarget | None = None  # what on_kill deletes, while it should

    def build_manifest(self, identity: TaskIdentity,
                       default_profile: str | None = None) -> dict[str, Any]:
        """The DaskCluster to create; checked (names, resources...) before anything is sent.
        ``default_profile`` (the connection's) applies when neither the task nor its manifest
        names a profile."""
        options = self.profile_options or None
        if self.manifest is not None:
            manifest = load_cluster_manifest(self.manifest)
            if self.cluster_name:
                manifest["metadata"]["name"] = str(self.cluster_name)
            elif not manifest["metadata"].get("name"):
                manifest["metadata"]["name"] = self.default_name(identity)
            manifest["metadata"].pop("generateName", None)
            named = manifest["spec"].get("profile")
            profile = self.profile or (named.get("name") if isinstance(named, dict) else None) \
                or default_profile
            if profile is not None:
                return with_profile(manifest, str(profile), options)
            if options:
                raise ValueError("CreateDaskClusterOperator: profile_options are options of a "
                                 "profile; name it with profile=, in the manifest or the "
                                 "connection's default_profile")
            return manifest
        kwargs: dict[str, Any] = {"image": self.image or None,
                                  "resources": self.resources, "env": self.env,
                                  **(self.cluster_spec_kwargs or {})}
        if self.n_workers is not None:
            kwargs["n_workers"] = int(self.n_workers)
        profile = self.profile or default_profile
        if profile is not None:
            kwargs.update(profile=str(profile), profile_options=options)
        elif options:
            kwargs["profile_options"] = options  # make_cluster_spec says what is missing
        return make_cluster_spec(str(self.cluster_name or self.default_name(identity)),
                                 **kwargs)

    def default_name(self, identity: TaskIdentity) -> str:
        """``<task_id>-<8 hex of the identity key>``: the same for every try of the task."""
        return identity.job_name().rsplit("-", 1)[0]

    def execute(self, context: Any) -> dict[str, Any]:
        identity = identity_of(context)
        target = DaskKubeJobsHook(self.dask_kube_jobs_conn_id).get_target()
        manifest = self.build_manifest(identity, target.default_profile)
        try:
            event = asyncio.run(self._create(target, manifest, identity))
        finally:
            self._kill_target = None
        result = {key: event.get(key) for key in CLUSTER_XCOM_FIELDS}
        ti = context["ti"]
        for key in ("name", "namespace", "scheduler_address", "dashboard_address"):
            ti.xcom_push(key=key, value=result[key])
        url = (result["dashboard_address"] or "").rstrip("/") + "/status"
        ti.xcom_push(key=DASHBOARD_XCOM_KEY, value=url)
        return result

    async def _create(self, target: KubeTarget, manifest: dict[str, Any],
                      identity: TaskIdentity) -> dict[str, Any]:
        client = await connect(target)
        try:
            namespace = str(self.namespace or (None if target.namespace else
                                               manifest["metadata"].get("namespace"))
                            or default_namespace(target, client))
            name = manifest["metadata"]["name"]
            self._kill_target = _KillTarget(target, namespace, name, identity.key)
            try:
                cluster, reused = await create_or_reuse_cluster(client, manifest, identity,
                                                                namespace=namespace)
            except ValueError as exc:
                self._kill_target = None  # someone else's cluster: never ours to delete
                raise AirflowException(str(exc)) from exc
            if reused and ClusterStatus.from_cluster(cluster).running:
                self._kill_target = None  # an earlier, successful try's: a kill keeps it
            else:
                self._kill_target.uid = cluster["metadata"].get("uid")
            self.log.info("%s DaskCluster %s/%s", "Reusing (an earlier try made it)"
                          if reused else "Created", namespace, name)
            if not self.wait_for_ready:
                status = cluster.get("status") or {}
                return {"status": "created", "name": name, "namespace": namespace,
                        "ready_workers": int(status.get("readyWorkers") or 0),
                        "scheduler_address": status.get("schedulerAddress") or
                        names.scheduler_address(name, namespace),
                        "dashboard_address": status.get("dashboardAddress") or
                        names.dashboard_address(name, namespace)}
            event = await wait_for_cluster(
                client, namespace=namespace, name=name,
                min_ready_workers=self.min_ready_workers,
                deadline=time.time() + self.startup_timeout, missing_ok=False)
            if event["status"] != "ready":
                if self._kill_target is None:
                    # An earlier try's cluster, reused while ready: the same rule as on_kill,
                    # it belongs to the pipeline now, so its teardown decides.
                    raise AirflowException(f"{event['message']} (startup_timeout "
                                           f"{self.startup_timeout:g}s); the cluster was made "
                                           "by an earlier try and is kept")
                self.log.error("%s; deleting the cluster", event["message"])
                await delete_cluster(client, namespace=namespace, name=name)
                raise AirflowException(f"{event['message']} (startup_timeout "
                                       f"{self.startup_timeout:g}s); the cluster was deleted")
            self._kill_target = None  # ready: handed over to the pipeline and its teardown
            self.log.info("%s; scheduler at %s", event["message"], event["scheduler_address"])
            return event
        finally:
            await client.close()


    def on_kill(self) -> None:
        """The task is being killed while it creates or waits: delete the cluster this try is
        making (never one an earlier try had running). Airflow calls this in a signal handler
        on top of the blocking wait, so the delete runs on a fresh loop in a fresh thread."""
        kill_target = self._kill_target
        if kill_target is None:
            return
        outcome: list[str] = []

        def run() -> None:
            try:
                outcome.append(asyncio.run(kill_target.delete()))
            except Exception as exc:  # report, never raise out of a kill
                outcome.append(f"could not be deleted ({type(exc).__name__}: {exc})")

        thread = threading.Thread(target=run, daemon=True, name="dask-kube-jobs-kill-cluster")
        thread.start()
        thread.join(KILL_TIMEOUT)
        self.log.info("Task killed: DaskCluster %s/%s %s", kill_target.namespace,
                      kill_target.name, outcome[0] if outcome else
                      f"not deleted within {KILL_TIMEOUT:g}s")


class DeleteDaskClusterOperator(BaseOperator):
    """Delete a DaskCluster (its scheduler, workers and Service go with it): the teardown of
    a shared-cluster pipeline, usually ``.as_teardown(setups=create)``.

    With ``wait_for_deletion`` (default) the delete is a foreground one and the task ends once
    the cluster and its Pods are gone (up to ``deletion_timeout`` seconds). A cluster that does
    not exist is fine (teardown wants it gone) unless ``ignore_missing=False``. Returns whether
    this task deleted it.

    >>> DeleteDaskClusterOperator(task_id="delete",                          # doctest: +SKIP
    ...     cluster_name="{{ ti.xcom_pull(task_ids='create', key='name') }}")
    """

    template_fields: Sequence[str] = ("cluster_name", "namespace")
    ui_color = "#f4a6a6"

    def __init__(self, *, cluster_name: str, namespace: str | None = None,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 wait_for_deletion: bool = True, ignore_missing: bool = True,
                 deletion_timeout: float = 300.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(cluster_name, str) or not cluster_name.strip():
            raise ValueError("DeleteDaskClusterOperator: cluster_name= must be the DaskCluster's "
                             "name (or a template rendering to it), e.g. \"{{ ti.xcom_pull("
                             "task_ids='create', key='name') }}\"")
        if deletion_timeout <= 0:
            raise ValueError(f"DeleteDaskClusterOperator: deletion_timeout must be > 0 seconds "
                             f"(got {deletion_timeout!r})")
        self.cluster_name = cluster_name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.wait_for_deletion = wait_for_deletion
        self.ignore_missing = ignore_missing
        self.deletion_timeout = float(deletion_timeout)

    def execute(self, context: Any) -> bool:
        name = check_name("DeleteDaskClusterOperator", "cluster_name", self.cluster_name)
        target = DaskKubeJobsHook(self.dask_kube_jobs_conn_id).get_target()
        return asyncio.run(self._delete(target, name))

    async def _delete(self, target: KubeTarget, name: str) -> bool:
        client = await connect(target)
        try:
            namespace = str(self.namespace or default_namespace(target, client))
            try:
                deleted = await delete_cluster(
                    client, namespace=namespace, name=name,
                    wait_timeout=self.deletion_timeout if self.wait_for_deletion else None)
            except TimeoutError as exc:
                raise AirflowException(
                    f"DaskCluster {namespace}/{name} was marked for deletion but still exists "
                    f"after {self.deletion_timeout:g}s (raise deletion_timeout, or look at its "
                    "finalizers)") from exc
        finally:
            await client.close()
        if deleted:
            self.log.info("DaskCluster %s/%s deleted%s", namespace, name,
                          " (and its Pods are gone)" if self.wait_for_deletion else "")
            return True
        if not self.ignore_missing:
            raise AirflowException(f"DaskCluster {namespace}/{name} does not exist (check the "
                                   "name and namespace, or pass ignore_missing=True)")
        self.log.info("DaskCluster %s/%s does not exist: nothing to delete", namespace, name)
        return False


def connect_to_cluster(name: str, namespace: str | None = None, *,
                       dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID,
                       conn_id: str | None = None, **kwargs: Any) -> Any:
    """A ``KubeCluster`` handle on an existing DaskCluster, through the Airflow connection.

    Use it in a task of a shared-cluster pipeline: ``Client(cluster)`` connects directly when
    the scheduler's in-cluster name resolves (the task runs in the Kubernetes cluster), else
    through a port-forward that lives as long as the handle. Closing it leaves the cluster
    running (``shutdown_on_close=False``); the pipeline's delete task removes it. The
    connection's ``cluster_context``, when set, is the kubeconfig context used;
    ``conn_id``, the old name of ``dask_kube_jobs_conn_id``, still works for one release.

    >>> with connect_to_cluster("shared", "data") as cluster, Client(cluster) as client:  # doctest: +SKIP
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    from ... import KubeCluster

    conn = resolve_conn_id("connect_to_cluster", dask_kube_jobs_conn_id, conn_id)
    target = DaskKubeJobsHook(conn).get_target()
    kubeconfig = _kubeconfig_file(target)
    kwargs.setdefault("quiet", True)
    return KubeCluster.from_name(name, namespace=namespace or target.namespace,
                                 kubeconfig=kubeconfig, context=target.cluster_context,
                                 **kwargs)
