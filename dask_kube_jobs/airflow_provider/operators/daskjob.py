"""``DaskJobOperator``: run one DaskJob as an Airflow task, blocking or deferred.

One path for both modes (STYLE.md, Airflow): :meth:`DaskJobOperator.execute` submits (or
reattaches), then either runs :func:`~dask_kube_jobs.airflow_provider._jobwait.wait_for_job`
itself on a private event loop (blocking) or defers to :class:`DaskJobTrigger`, which runs the
same coroutine in the triggerer (deferrable). Both hand the same event to :meth:`_finish`,
which alone decides XComs, cleanup and exceptions.

Identity, not names, finds the job again: labels from dag_id/task_id/run_id/map_index and the
try number (see ``_identity``). A retry after a worker crash reattaches to the job still
running instead of starting a duplicate; a later try never reattaches to a finished job. On
Airflow 3.3+ the task state store (``context["task_state_store"]``, shared by the tries of one
task instance) also records the job's name and uid right after submission, and the next try
reads that job by name first; labels still cover the moment between create and record, and
every Airflow before 3.3.

Cleanup is explicit: ``on_finish_action`` is ``delete`` (always), ``delete_succeeded`` (the
default: a failed job stays for inspection) or ``keep``. Killing the task deletes its job: in
blocking mode through :meth:`on_kill`, while deferred through the trigger's ``on_kill``
(Airflow 3.3+) or, below 3.3, the trigger's check of the task's state when it is cancelled
(deleted only once the task is no longer deferred). A timeout (``execution_timeout``, honoured while deferred through an absolute
deadline the trigger watches) deletes the job too, then fails the task.

XComs: ``job_name`` and ``namespace`` (pushed at submission, so they exist even when the task
fails), ``dashboard_url`` (before waiting, for the extra link), and the return value: the job's
``status.result``, what the runner passed to ``dask_kube_jobs.set_result``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowTaskTimeout,
    BaseOperator,
    conf,
)

from ...asyncio import (
    check_job_manifest,
    get_job,
    load_job_manifest,
    with_cluster_ref,
    with_profile,
)
from ...contract.times import parse_time
from ...errors import DaskJobFailed, JobNotFound, WaitTimeout
from ...spec import SpecError, make_job_spec
from .._identity import TaskIdentity
from .._jobwait import (
    dashboard_url,
    delete_job,
    is_terminal,
    outcome,
    submit_or_reattach,
    wait_for_job,
)
from ..hooks.daskjob import (
    DEFAULT_CONN_ID,
    DaskKubeJobsHook,
    KubeTarget,
    connect,
    default_namespace,
    resolve_conn_id,
)
from ..links import DASHBOARD_XCOM_KEY, DaskDashboardLink
from ..triggers.daskjob import DaskJobTrigger

ON_FINISH_ACTIONS = ("delete", "delete_succeeded", "keep")
TRIGGER_TIMEOUT_MARGIN = 300.0  # seconds past the deadline before Airflow's own trigger timeout
KILL_TIMEOUT = 30.0  # seconds on_kill waits for the delete request
STATE_KEY = "dask_kube_jobs.daskjob"  # the task state store's key (Airflow 3.3+) for the job


def identity_of(context: Any) -> TaskIdentity:
    """The task try a context belongs to."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", None)
    return TaskIdentity(dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id,
                        map_index=-1 if map_index is None else int(map_index),
                        try_number=int(getattr(ti, "try_number", None) or 1))


def templated_int(argument: str, value: Any) -> int:
    """An integer argument that a template may have rendered as text ("3"); anything else is
    a :class:`SpecError` naming the argument (``int("abc")`` would name nothing)."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(argument, f"must be a whole number, got {type(value).__name__} {value!r}")
    return value


class DaskJobOperator(BaseOperator):
    """Run a DaskJob (a Dask cluster plus a runner Pod) and return its result.

    Give either ``manifest`` (a dict, YAML text, or a ``.yaml``/``.yml``/``.json`` file path,
    rendered as a Jinja template) or keyword arguments for
    :func:`dask_kube_jobs.make_job_spec`: ``image``, ``command`` or ``script``, ``n_workers``,
    ``resources``, ``env``, and anything else through ``job_spec_kwargs``.

    :param cluster_ref: the name of an existing DaskCluster to run the runner on (the job's
        ``spec.clusterRef``) instead of a cluster made for the job: a warm cluster shared by
        several tasks, which the job leaves running. It replaces a manifest's ``spec.cluster``.

    :param profile: the DaskClusterProfile that fills the job's cluster (its
        ``spec.profile``; a manifest's own is replaced), and ``profile_options`` its options
        (over those the manifest gives for that profile). Without either, the connection's
        ``default_profile`` applies to a job that makes a cluster and names no profile.
        Keyword arguments the task does not give (image, n_workers, resources...) are then
        left to the profile.

    :param job_name: prefix of the job's name (default: the manifest's name, else the task id);
        the name itself is made unique per task try.
    :param namespace: default: the connection's, else the manifest's, else the kubeconfig's.
    :param dask_kube_jobs_conn_id: a ``dask_kube_jobs`` connection (default
        ``dask_kube_jobs_default``; when absent, the ambient kubeconfig is used);
        ``conn_id``, its old name, still works for one release, with a deprecation warning.
    :param deferrable: wait in the triggerer; default ``[operators] default_deferrable``.
    :param on_finish_action: ``delete``, ``delete_succeeded`` (default) or ``keep``.
    :param follow_logs: stream the runner's log into the task log while waiting.
    :param startup_timeout: seconds from the job's creation until its runner must be running
        and its cluster's scheduler ready (the runner is made with the cluster and waits for it);
        when they pass, the real state is read again (the job, its Pods, their events) and the
        task fails only if the runner has still not started, with the reason found
        (``Unschedulable``, an image error...). The job is then deleted unless
        ``on_finish_action="keep"``: left alone it would start later, unattended.
    :param wait_for_completion: ``False`` submits (or reattaches), pushes the XComs and returns
        the job's name at once, for a sensor or a later task to wait on; ``on_finish_action``
        then does not apply (nothing here sees the end), a ``DeleteDaskJobOperator`` does.

    >>> DaskJobOperator(task_id="sum", script="print(1 + 1)", n_workers=2)  # doctest: +SKIP
    """

    template_fields: Sequence[str] = ("manifest", "job_name", "namespace", "image", "command",
                                      "script", "env", "job_spec_kwargs", "cluster_ref",
                                      "profile", "profile_options")
    template_ext: Sequence[str] = (".yaml", ".yml", ".json")
    template_fields_renderers = {"manifest": "yaml", "script": "py", "env": "json",
                                 "job_spec_kwargs": "json", "profile_options": "json"}
    operator_extra_links = (DaskDashboardLink(),)
    ui_color = "#fdb874"

    def __init__(self, *, manifest: Any = None, image: str | None = None,
                 command: str | list[str] | None = None, script: str | None = None,
                 n_workers: int | None = None, resources: dict[str, Any] | None = None,
                 env: dict[str, Any] | list[dict[str, Any]] | None = None,
                 job_spec_kwargs: dict[str, Any] | None = None, job_name: str | None = None,
                 namespace: str | None = None,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 deferrable: bool = conf.getboolean("operators", "default_deferrable",
                                                    fallback=False),
                 on_finish_action: str = "delete_succeeded", follow_logs: bool = True,
                 wait_for_completion: bool = True, startup_timeout: float | None = None,
                 cluster_ref: str | None = None, profile: str | None = None,
                 profile_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        keywords = any(v is not None for v in (image, command, script, n_workers, resources,
                                                env, job_spec_kwargs))
        if manifest is not None and keywords:
            raise ValueError("DaskJobOperator: give either manifest= or the job's keyword "
                             "arguments (image, command/script, n_workers, ...), not both")
        if manifest is None and command is None and script is None:
            raise ValueError("DaskJobOperator: give manifest=, or command= or script= for the "
                             "runner")
        if cluster_ref is not None and (n_workers is not None or resources is not None):
            raise ValueError("DaskJobOperator: n_workers and resources size a cluster made for "
                             "the job; with cluster_ref the job uses that cluster as it is")
        if on_finish_action not in ON_FINISH_ACTIONS:
            raise ValueError(f"on_finish_action must be one of {ON_FINISH_ACTIONS} "
                             f"(got {on_finish_action!r})")
        self.manifest = manifest
        self.image = image
        self.command = command
        self.script = script
        self.n_workers = n_workers
        # Not ``self.resources``: that is BaseOperator's (Airflow's own Resources, for executors).
        self.job_resources = resources
        self.env = env
        self.job_spec_kwargs = job_spec_kwargs
        self.cluster_ref = cluster_ref
        self.profile = profile
        self.profile_options = profile_options
        self.job_name = job_name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.deferrable = deferrable
        if startup_timeout is not None and not float(startup_timeout) > 0:
            raise ValueError(f"startup_timeout must be a number of seconds > 0, or None for no "
                             f"limit (got {startup_timeout!r})")
        self.on_finish_action = on_finish_action
        self.startup_timeout = None if startup_timeout is None else float(startup_timeout)
        self.follow_logs = follow_logs
        self.wait_for_completion = bool(wait_for_completion)
        self._job: tuple[str, str, str | None] | None = None  # (namespace, name, uid) for on_kill
        self._target: KubeTarget | None = None  # resolved once, not inside a signal handler

    # -- building -------------------------------------------------------------------------
    def build_manifest(self, name: str, default_profile: str | None = None) -> dict[str, Any]:
        """The DaskJob manifest to submit, named ``name``; checked before anything is sent.
        ``default_profile`` (the connection's) applies when the task and its manifest name no
        profile and the job makes its own cluster."""
        options = self.profile_options or None
        if self.manifest is not None:
            manifest = load_job_manifest(self.manifest)
            manifest.setdefault("metadata", {})
            manifest["metadata"].pop("generateName", None)
            manifest["metadata"]["name"] = name
            if self.cluster_ref:
                manifest = with_cluster_ref(manifest, str(self.cluster_ref))
            named = (manifest.get("spec") or {}).get("profile")
            profile = self.profile or (named.get("name") if isinstance(named, dict) else None)
            if profile is None and "clusterRef" not in (manifest.get("spec") or {}):
                profile = default_profile
            if profile is not None:
                manifest = with_profile(manifest, str(profile), options)
            elif options:
                raise SpecError("profile_options", "are options of a profile; name it with "
                                "profile=, in the manifest or the connection's default_profile")
        else:
            # None means "the default image" (or the profile's); an empty string (a template
            # that rendered to nothing) is an error make_job_spec names, never the default.
            kwargs: dict[str, Any] = {"image": self.image,
                                      "command": self.command, "script": self.script,
                                      "resources": self.job_resources, "env": self.env,
                                      **(self.job_spec_kwargs or {})}
            if self.n_workers is not None:
                kwargs["n_workers"] = templated_int("n_workers", self.n_workers)
            if self.cluster_ref:
                kwargs["cluster_ref"] = str(self.cluster_ref)
            profile = self.profile or (None if self.cluster_ref else default_profile)
            if profile is not None:
                kwargs["profile"] = str(profile)
            if options:
                kwargs["profile_options"] = options
            manifest = make_job_spec(name, **kwargs)
        check_job_manifest(manifest)
        return manifest

    def _name_prefix(self) -> str | None:
        if self.job_name:
            return str(self.job_name)
        if self.manifest is not None:
            meta = load_job_manifest(self.manifest).get("metadata") or {}
            return meta.get("name") or (meta.get("generateName") or "").rstrip("-") or None
        return None

    def _namespace(self, target: KubeTarget, client: Any) -> str:
        if self.namespace:
            return str(self.namespace)
        if self.manifest is not None and not target.namespace:
            ns = (load_job_manifest(self.manifest).get("metadata") or {}).get("namespace")
            if ns:
                return str(ns)
        return default_namespace(target, client)

    # -- running --------------------------------------------------------------------------
    def execute(self, context: Any) -> Any:
        identity = identity_of(context)
        deadline = time.time() + self.execution_timeout.total_seconds() \
            if self.execution_timeout else None
        target = self._target = DaskKubeJobsHook(self.dask_kube_jobs_conn_id).get_target()
        with asyncio.Runner() as runner:
            client = runner.run(connect(target))
            try:
                namespace = self._namespace(target, client)
                prefix = self._name_prefix()
                manifest = self.build_manifest(identity.job_name(prefix),
                                               target.default_profile)
                store = context.get("task_state_store")  # Airflow 3.3+; None before
                remembered = store.get(STATE_KEY) if store is not None else None
                job, reattached = runner.run(submit_or_reattach(
                    client, manifest, identity, namespace=namespace, name_prefix=prefix,
                    remembered=remembered if isinstance(remembered, dict) else None))
                meta = job["metadata"]
                namespace = meta["namespace"]  # a remembered job may live elsewhere
                if store is not None:
                    store.set(STATE_KEY, {"name": meta["name"], "namespace": meta["namespace"],
                                          "uid": meta.get("uid")})
                self._job = (namespace, meta["name"], meta.get("uid"))
                url = runner.run(dashboard_url(
                    client, namespace=namespace, job=meta["name"],
                    cluster=(job.get("status") or {}).get("clusterName"),
                    template=target.dashboard_url_template))
                self._push_submitted(context, job, url, reattached)
                if not self.wait_for_completion:
                    return meta["name"]
                startup_deadline = self._startup_deadline(job)
                if is_terminal(job):  # this try's own job, already finished
                    event = outcome(job)
                elif self.deferrable:
                    self.defer(
                        trigger=DaskJobTrigger(name=meta["name"], namespace=namespace,
                                               uid=meta.get("uid"), deadline=deadline,
                                               startup_deadline=startup_deadline,
                                               follow_logs=self.follow_logs,
                                               dask_kube_jobs_conn_id=self.dask_kube_jobs_conn_id),
                        method_name="execute_complete",
                        timeout=None if deadline is None else timedelta(
                            seconds=deadline - time.time() + TRIGGER_TIMEOUT_MARGIN))
                else:
                    event = runner.run(wait_for_job(
                        client, namespace=namespace, name=meta["name"], uid=meta.get("uid"),
                        deadline=deadline, startup_deadline=startup_deadline,
                        on_log=self._log_line if self.follow_logs else None,
                        notice=self.log.warning))
            finally:
                runner.run(client.close())
        return self._finish(event, target)

    def _startup_deadline(self, job: dict[str, Any]) -> float | None:
        """Absolute (epoch seconds, from the job's creation): a retry that reattaches, or a
        trigger that moves, keeps the same deadline instead of starting the clock again."""
        if self.startup_timeout is None:
            return None
        created = parse_time(job["metadata"].get("creationTimestamp"))
        start = created.timestamp() if created else time.time()
        return min(start, time.time()) + self.startup_timeout

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        """Resumed after the trigger fired: the same ending as the blocking path."""
        target = DaskKubeJobsHook(self.dask_kube_jobs_conn_id).get_target()
        self._job = (event.get("namespace"), event.get("name"), event.get("uid"))
        if event.get("log_tail"):
            self.log.info("Last lines of the runner's log (status.logTail):\n%s",
                          event["log_tail"])
        return self._finish(event, target)

    def _push_submitted(self, context: Any, job: dict[str, Any], url: str,
                        reattached: bool) -> None:
        meta = job["metadata"]
        ti = context["ti"]
        ti.xcom_push(key="job_name", value=meta["name"])
        ti.xcom_push(key="namespace", value=meta["namespace"])
        ti.xcom_push(key=DASHBOARD_XCOM_KEY, value=url)
        if hasattr(DaskDashboardLink, "xcom_key"):  # Airflow 3's stored-link key; not in 2.11
            ti.xcom_push(key=DaskDashboardLink().xcom_key, value=url)
        self.log.info("%s DaskJob %s/%s (uid %s); dashboard: %s",
                      "Reattached to" if reattached else "Created", meta["namespace"],
                      meta["name"], meta.get("uid"), url)

    def _log_line(self, line: str) -> None:
        self.log.info("[%s] %s", self._job[1] if self._job else "runner", line)

    def _finish(self, event: dict[str, Any], target: KubeTarget) -> Any:
        status, name, namespace = event.get("status"), event.get("name"), event.get("namespace")
        self.log.info("DaskJob %s/%s ended: %s (phase %s)", namespace, name, status,
                      event.get("phase"))
        delete = (self.on_finish_action == "delete" and status in ("success", "failed")) or \
            (self.on_finish_action == "delete_succeeded" and status == "success") or \
            status == "timeout" or \
            (status == "startup_timeout" and self.on_finish_action != "keep")
        if delete:
            self._delete(target, name, namespace, event.get("uid"))
        if status == "success":
            return event.get("result")
        if status == "failed":
            if event.get("log_tail"):
                self.log.error("DaskJob %s failed; last lines of its runner's log:\n%s", name,
                               event["log_tail"])
            raise DaskJobFailed(event.get("exit_code"), event.get("reason"),
                                event.get("message"), event.get("log_tail"), str(name),
                                namespace=str(namespace))
        if status == "timeout":
            raise AirflowTaskTimeout(f"{event.get('message')}; the job was deleted")
        if status == "startup_timeout":
            raise AirflowException(f"{event.get('message')} (startup_timeout="
                                   f"{self.startup_timeout or 0:g}s; the job was "
                                   f"{'kept' if not delete else 'deleted'})")
        raise AirflowException(f"DaskJob {namespace}/{name}: {event.get('message')}")

    def _delete(self, target: KubeTarget, name: Any, namespace: Any, uid: Any) -> bool:
        """Delete from any thread, even while this thread's own loop is busy (``on_kill`` runs
        in a signal handler, on top of the blocking wait): a fresh loop in a fresh thread."""
        outcome_: list[bool] = []

        async def run() -> None:
            client = await connect(target)
            try:
                outcome_.append(await delete_job(client, namespace=str(namespace),
                                                 name=str(name), uid=uid))
            finally:
                await client.close()

        thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True,
                                  name="dask-kube-jobs-delete")
        thread.start()
        thread.join(KILL_TIMEOUT)
        deleted = bool(outcome_ and outcome_[0])
        self.log.info("DaskJob %s/%s %s", namespace, name,
                      "deleted" if deleted else "was already gone (or could not be deleted)")
        return deleted

    def on_kill(self) -> None:
        """The task is being killed (or timed out): delete its job, leaving no orphan."""
        if self._job is None:
            return
        namespace, name, uid = self._job
        self.log.info("Task killed: deleting DaskJob %s/%s", namespace, name)
        self._delete(self._target or KubeTarget(), name, namespace, uid)


class DeleteDaskJobOperator(BaseOperator):
    """Delete a DaskJob and everything it owns (its Dask cluster, runner and worker Pods).

    The teardown half of "submit with ``wait_for_completion=False``, wait with a sensor, delete":
    give it the submitting task's ``job_name`` XCom (a template, or ``submit.output``: the
    submitting operator returns the name when ``wait_for_completion=False``). With
    ``wait_for_deletion`` the delete is a *foreground* one and the task ends only once the job
    and its Pods are gone (up to ``deletion_timeout`` seconds), so a following task can count
    on the resources being free; without it the job is marked for deletion and the cluster's
    garbage collector removes the rest. A job that does not exist is fine (it is what teardown wants) unless
    ``ignore_missing=False``. Returns whether this task deleted it.

    >>> DeleteDaskJobOperator(task_id="cleanup", trigger_rule="all_done",   # doctest: +SKIP
    ...     job_name="{{ ti.xcom_pull(task_ids='submit', key='job_name') }}")
    """

    template_fields: Sequence[str] = ("job_name", "namespace")
    ui_color = "#f4a6a6"

    def __init__(self, *, job_name: str, namespace: str | None = None,
                 dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID, conn_id: str | None = None,
                 wait_for_deletion: bool = True, ignore_missing: bool = True,
                 deletion_timeout: float = 300.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if job_name is None or (isinstance(job_name, str) and not job_name.strip()):
            raise ValueError("DeleteDaskJobOperator: job_name= must be the DaskJob's name (or a "
                             "template rendering to it), e.g. \"{{ ti.xcom_pull(task_ids="
                             "'submit', key='job_name') }}\"")
        if deletion_timeout <= 0:
            raise ValueError(f"DeleteDaskJobOperator: deletion_timeout must be > 0 seconds "
                             f"(got {deletion_timeout!r})")
        self.job_name = job_name
        self.namespace = namespace
        self.dask_kube_jobs_conn_id = resolve_conn_id(type(self).__name__,
                                                      dask_kube_jobs_conn_id, conn_id)
        self.wait_for_deletion = wait_for_deletion
        self.ignore_missing = ignore_missing
        self.deletion_timeout = deletion_timeout

    def execute(self, context: Any) -> bool:
        name = str(self.job_name or "").strip()
        if not name or name == "None":
            raise AirflowException(f"DeleteDaskJobOperator: job_name rendered to {name!r}; "
                                   "the task it pulls the name from pushed nothing?")
        target = DaskKubeJobsHook(self.dask_kube_jobs_conn_id).get_target()
        return asyncio.run(self._delete(target, name))

    async def _delete(self, target: KubeTarget, name: str) -> bool:
        client = await connect(target)
        try:
            namespace = str(self.namespace or default_namespace(target, client))
            try:
                handle = await get_job(name, namespace, client=client)
            except JobNotFound:
                handle = None
            deleted = False
            if handle is not None:
                try:
                    deleted = await handle.delete(wait=self.wait_for_deletion,
                                                  timeout=self.deletion_timeout)
                except WaitTimeout as exc:
                    raise AirflowException(
                        f"DaskJob {namespace}/{name} was marked for deletion but still exists "
                        f"after {self.deletion_timeout:g}s (raise deletion_timeout, or look at "
                        f"its finalizers)") from exc
        finally:
            await client.close()
        if deleted:
            self.log.info("DaskJob %s/%s deleted%s", namespace, name,
                          " (and its cluster and Pods are gone)" if self.wait_for_deletion
                          else "; its cluster and Pods go in the background")
            return True
        if not self.ignore_missing:
            raise AirflowException(f"DaskJob {namespace}/{name} does not exist (check the "
                                   "name and namespace, or pass ignore_missing=True)")
        self.log.info("DaskJob %s/%s does not exist: nothing to delete", namespace, name)
        return False
