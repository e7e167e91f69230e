"""The ``dask_kube_jobs`` connection: which cluster to talk to, and clients for it.

The fields are those of Airflow's ``kubernetes`` connection (``in_cluster``,
``kube_config_path``, ``kube_config``, ``cluster_context``, ``namespace``,
``disable_verify_ssl``), so people moving from the cncf.kubernetes provider copy their
connection over unchanged, plus ``dashboard_url_template`` for clusters whose Dask dashboards are
reached through an ingress, and ``default_profile``: the DaskClusterProfile of the clusters the
connection's tasks make when a task names none. Extras are read both bare and with the old
``extra__dask_kube_jobs__`` prefix.

Resolution is split so that async code never blocks: :func:`target_from_extras` is pure,
:meth:`DaskKubeJobsHook.get_target` / :meth:`~DaskKubeJobsHook.aget_target` fetch the connection
(sync / async) and :func:`connect` builds the async client through the library's one
connection function (``dask_kube_jobs.asyncio.open_client``), doing its only file write (an
inline kubeconfig, kept 0600 in a private temp directory) in a thread. A trigger therefore
carries only the connection id, never the credentials, in the trigger table.

No connection of that id at all is not an error: like ``kubectl``, we fall back to
``$KUBECONFIG``, ``~/.kube/config`` or the in-cluster service account.

Every operator, sensor, trigger and the decorator name their connection argument after the
hook's ``conn_name_attr``, ``dask_kube_jobs_conn_id``, as Airflow's providers do (a DAG that
uses several providers then says which connection is whose). In 0.1.0 it was ``conn_id``:
:func:`resolve_conn_id` still accepts that name for one more release, with a warning.

:meth:`DaskKubeJobsHook.test_connection` is what Airflow's "Test" button calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.common.compat.sdk import BaseHook

from ...errors import DaskKubeJobsError

DEFAULT_CONN_ID = "dask_kube_jobs_default"
CONN_TYPE = "dask_kube_jobs"
FIELDS = ("in_cluster", "kube_config_path", "kube_config", "cluster_context", "namespace",
          "disable_verify_ssl", "dashboard_url_template", "default_profile")
_SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def resolve_conn_id(owner: str, dask_kube_jobs_conn_id: str | None,
                    conn_id: str | None) -> str:
    """The connection id ``owner`` (a class name, for the messages) was given.

    ``conn_id`` is the argument's name in 0.1.0, kept working for one more release: it warns
    with :class:`AirflowProviderDeprecationWarning`, the category Airflow's providers use for
    what they will remove. Both names with different values is an error, never a silent
    choice.
    """
    if conn_id is None:
        return dask_kube_jobs_conn_id or DEFAULT_CONN_ID
    if dask_kube_jobs_conn_id not in (None, DEFAULT_CONN_ID, conn_id):
        raise ValueError(f"{owner}: give dask_kube_jobs_conn_id= only (conn_id= is its old "
                         f"name), not both: got {dask_kube_jobs_conn_id!r} and {conn_id!r}")
    warnings.warn(f"{owner}: conn_id= is deprecated and will be removed in the release after "
                  f"this one; pass dask_kube_jobs_conn_id={conn_id!r} instead",
                  AirflowProviderDeprecationWarning, stacklevel=3)
    return conn_id


@dataclass(frozen=True)
class KubeTarget:
    """Where the API server is and how to reach it: primitives only."""

    kube_config_path: str | None = None
    kube_config: str | None = None  # inline kubeconfig (YAML or JSON text)
    cluster_context: str | None = None
    namespace: str | None = None
    in_cluster: bool = False
    disable_verify_ssl: bool = False
    dashboard_url_template: str | None = None
    #: The DaskClusterProfile of the clusters a task makes when the task names none.
    default_profile: str | None = None


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def target_from_extras(extra: dict[str, Any] | None, *, schema: str | None = None) -> KubeTarget:
    """A :class:`KubeTarget` from a connection's extras (pure; the unit of connection parsing).

    >>> target_from_extras({"namespace": "data", "in_cluster": "true"})
    KubeTarget(kube_config_path=None, kube_config=None, cluster_context=None, namespace='data', \
in_cluster=True, disable_verify_ssl=False, dashboard_url_template=None, default_profile=None)
    """
    extra = extra or {}

    def get(name: str) -> Any:
        value = extra.get(name)
        if value in (None, ""):
            value = extra.get(f"extra__{CONN_TYPE}__{name}")
        return None if value == "" else value

    inline = get("kube_config")
    if isinstance(inline, dict):  # a kubeconfig given as a JSON object in the extras
        inline = json.dumps(inline)
    return KubeTarget(
        kube_config_path=get("kube_config_path"),
        kube_config=inline,
        cluster_context=get("cluster_context"),
        namespace=get("namespace") or schema or None,
        in_cluster=_flag(get("in_cluster")),
        disable_verify_ssl=_flag(get("disable_verify_ssl")),
        dashboard_url_template=get("dashboard_url_template"),
        default_profile=get("default_profile"),
    )


def _not_found(exc: Exception) -> bool:
    return type(exc).__name__ in ("AirflowNotFoundException", "ConnectionNotFound") or \
        "isn't defined" in str(exc) or "not found" in str(exc).lower()


class DaskKubeJobsHook(BaseHook):
    """Clients for the Kubernetes cluster a ``dask_kube_jobs`` connection names.

    >>> hook = DaskKubeJobsHook()                                 # doctest: +SKIP
    >>> api = hook.get_conn()          # a sync kr8s Api
    >>> client = await hook.aget_client()   # from dask_kube_jobs.asyncio.open_client
    """

    conn_name_attr = "dask_kube_jobs_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Dask Kube Jobs"

    def __init__(self, dask_kube_jobs_conn_id: str = DEFAULT_CONN_ID) -> None:
        super().__init__()
        self.dask_kube_jobs_conn_id = dask_kube_jobs_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {"hidden_fields": ["host", "schema", "login", "password", "port", "extra"],
                "relabeling": {}}

    def _ambient(self, exc: Exception) -> KubeTarget:
        """No such connection: the default id falls back to the ambient kubeconfig (a DAG
        needs no connection at all); any other id is a typo or a missing secret, raised as
        Airflow raises it, never silently another cluster."""
        if not _not_found(exc) or self.dask_kube_jobs_conn_id != DEFAULT_CONN_ID:
            raise exc
        return KubeTarget()

    def get_target(self) -> KubeTarget:
        try:
            conn = self.get_connection(self.dask_kube_jobs_conn_id)
        except Exception as exc:
            return self._ambient(exc)
        return target_from_extras(conn.extra_dejson)

    async def aget_target(self) -> KubeTarget:
        try:
            if hasattr(self, "aget_connection"):
                conn = await self.aget_connection(self.dask_kube_jobs_conn_id)
            else:  # Airflow 2.11 has no async lookup: the sync one, off the event loop
                conn = await asyncio.to_thread(self.get_connection, self.dask_kube_jobs_conn_id)
        except Exception as exc:
            return self._ambient(exc)
        return target_from_extras(conn.extra_dejson)

    def get_conn(self) -> Any:
        """A sync kr8s ``Api`` for the connection."""
        import kr8s

        kwargs = {key: value for key, value in _api_kwargs(self.get_target()).items() if value}
        if kwargs.pop("in_cluster", False):
            kwargs["serviceaccount"] = _SERVICE_ACCOUNT
        return kr8s.api(**kwargs)

    async def aget_client(self) -> Any:
        """An async client from :func:`dask_kube_jobs.asyncio.open_client`, for the job and
        cluster API's ``client=`` (close it with ``await client.close()``)."""
        return await connect(await self.aget_target())

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's connection "Test" button (and ``Connection.test_connection()``): whether
        this connection can run DaskJobs, and if not, why, in the words a user acts on.

        It reaches the API server, lists the DaskJobs of the connection's namespace (which
        proves the CRDs are installed and the user may read jobs there) and, since a list in
        a namespace that does not exist is merely empty, reads the namespace itself when the
        user may. Never raises: Airflow shows the message as it is.
        """
        try:
            target = self.get_target()
            namespace, jobs = _run(_list_jobs(target))
            exists = _namespace_exists(self.get_conn(), namespace)
        except Exception as exc:
            return False, _failure(exc)
        if exists is False:
            return False, (f'namespace "{namespace}" does not exist (create it: kubectl create '
                           f"namespace {namespace}, or set the connection's namespace)")
        unchecked = "" if exists else (" (whether the namespace exists was not checked: the "
                                       "user may not read namespaces)")
        return True, (f'Connected: the API server serves DaskJobs, and namespace "{namespace}" '
                      f"holds {jobs} of them{unchecked}")


def _kubeconfig_file(target: KubeTarget) -> str | None:
    """The kubeconfig path to use, writing inline content or an ``insecure`` copy if needed."""
    if target.in_cluster:
        return None
    path = target.kube_config_path
    text = target.kube_config
    if not path and not text:
        path = next((p for p in (os.environ.get("KUBECONFIG") or "").split(os.pathsep) if p),
                    None) or str(Path("~/.kube/config").expanduser())
        if not Path(path).is_file():
            return None  # in-cluster, or kr8s's own discovery
    if target.disable_verify_ssl:
        import yaml

        config = yaml.safe_load(text if text is not None else Path(str(path)).read_text())
        for cluster in config.get("clusters") or []:
            cluster.get("cluster", {}).pop("certificate-authority", None)
            cluster.get("cluster", {}).pop("certificate-authority-data", None)
            cluster.setdefault("cluster", {})["insecure-skip-tls-verify"] = True
        text = yaml.safe_dump(config)
    if text is None:
        return str(Path(str(path)).expanduser())
    directory = Path(tempfile.gettempdir()) / f"dask-kube-jobs-airflow-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    file = directory / f"kubeconfig-{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml"
    if not file.exists():
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)
        tmp.replace(file)
    return str(file)


def _api_kwargs(target: KubeTarget) -> dict[str, Any]:
    """The arguments of the library's connection function for ``target`` (the kubeconfig file
    work is done here, so call it off the event loop)."""
    return {"kubeconfig": _kubeconfig_file(target), "context": target.cluster_context,
            "namespace": target.namespace, "in_cluster": target.in_cluster}


async def connect(target: KubeTarget) -> Any:
    """An async client of its own for ``target`` (close it with ``await client.close()``);
    the kubeconfig file work runs in a thread."""
    from ...asyncio import open_client

    return await open_client(**await asyncio.to_thread(_api_kwargs, target))


def default_namespace(target: KubeTarget, client: Any) -> str:
    """The connection's namespace, else the kubeconfig context's, else ``default``."""
    from ...asyncio import default_namespace as client_namespace

    return target.namespace or client_namespace(client)


def _run(coroutine: Any) -> Any:
    """Run ``coroutine`` to the end from sync code, even from a thread whose event loop is
    already running (a hook may be called from anywhere): then on a fresh loop in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


async def _list_jobs(target: KubeTarget) -> tuple[str, int]:
    """The namespace the connection means, and how many DaskJobs it holds."""
    from ...asyncio import list_jobs

    client = await connect(target)
    try:
        namespace = default_namespace(target, client)
        return namespace, len(await list_jobs(namespace, client=client))
    finally:
        await client.close()


def _namespace_exists(api: Any, namespace: str) -> bool | None:
    """Whether ``namespace`` exists; None when the user may not read it (namespaced rights,
    as the chart's edit role grants, need not include that)."""
    import kr8s
    from kr8s.objects import Namespace

    try:
        Namespace.get(namespace, api=api)
    except kr8s.NotFoundError:
        return False
    except kr8s.ServerError as exc:
        if exc.response is not None and exc.response.status_code == 403:
            return None
        raise
    return True


def _failure(exc: Exception) -> str:
    """What a failed test says: our errors carry their hint (what to do next)."""
    hint = getattr(exc, "hint", "")
    message = str(exc) if isinstance(exc, DaskKubeJobsError) else f"{type(exc).__name__}: {exc}"
    return f"{message} ({hint})" if hint else message
