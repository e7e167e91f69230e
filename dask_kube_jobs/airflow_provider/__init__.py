"""The Airflow provider of dask-kube-jobs: run DaskJobs from Airflow DAGs.

Registered through the ``apache_airflow_provider`` entry point, which calls
:func:`get_provider_info`. This module imports nothing heavy (not Airflow, not kr8s): Airflow
reads provider metadata in every process, including ones that never run a DaskJob.

>>> from dask_kube_jobs.airflow_provider.operators.daskjob import DaskJobOperator  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

__all__ = ["get_provider_info"]

_PKG = "dask_kube_jobs.airflow_provider"
_INTEGRATION = "Dask Kube Jobs"


def _field(label: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description,
            "schema": {"type": [kind, "null"], **schema}}


def doc_url(page: str) -> str:
    """The address of ``docs/<page>`` in this project's documentation: the ``Documentation``
    URL of the installed distribution's metadata (pyproject's ``[project.urls]``)."""
    urls = importlib.metadata.metadata("dask-kube-jobs").get_all("Project-URL") or []
    docs = next(url for label, _, url in (u.partition(", ") for u in urls)
                if label == "Documentation")
    return f"{docs.rstrip('/')}/{page}"


def get_provider_info() -> dict[str, Any]:
    """Provider metadata for Airflow's ProvidersManager (``airflow providers list``)."""
    return {
        "package-name": "dask-kube-jobs",
        "name": "Dask Kube Jobs",
        "description": "Run DaskJobs (a Dask cluster plus a runner Pod) on Kubernetes from "
                       "Airflow, blocking or deferred.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": _INTEGRATION, "tags": ["software"],
                          "external-doc-url": doc_url("airflow-provider.md")}],
        "operators": [{"integration-name": _INTEGRATION,
                       "python-modules": [f"{_PKG}.operators.daskjob",
                                          f"{_PKG}.operators.daskcluster"]}],
        "sensors": [{"integration-name": _INTEGRATION,
                     "python-modules": [f"{_PKG}.sensors.daskjob",
                                        f"{_PKG}.sensors.daskcluster"]}],
        "hooks": [{"integration-name": _INTEGRATION,
                   "python-modules": [f"{_PKG}.hooks.daskjob"]}],
        "triggers": [{"integration-name": _INTEGRATION,
                      "python-modules": [f"{_PKG}.triggers.daskjob",
                                         f"{_PKG}.triggers.daskcluster"]}],
        "task-decorators": [{"name": "daskjob",
                             "class-name": f"{_PKG}.decorators.daskjob.daskjob_task"}],
        "extra-links": [f"{_PKG}.links.DaskDashboardLink"],
        "connection-types": [{
            "hook-class-name": f"{_PKG}.hooks.daskjob.DaskKubeJobsHook",
            "hook-name": "Dask Kube Jobs",
            "connection-type": "dask_kube_jobs",
            "conn-fields": {
                "in_cluster": _field("In cluster configuration", "boolean",
                                     "Use the Pod's service account", default=False),
                "kube_config_path": _field("Kube config path", "string",
                                           "Path to a kubeconfig file"),
                "kube_config": _field("Kube config (YAML or JSON)", "string",
                                      "The kubeconfig itself, as YAML or JSON text"),
                "cluster_context": _field("Cluster context", "string",
                                          "The kubeconfig context to use"),
                "namespace": _field("Namespace", "string",
                                    "Default namespace of the DaskJobs"),
                "disable_verify_ssl": _field("Disable SSL", "boolean",
                                             "Do not verify the API server's certificate",
                                             default=False),
                "dashboard_url_template": _field(
                    "Dashboard URL template", "string",
                    "e.g. https://dask.example.com/{namespace}/{cluster}/status; fields: "
                    "{namespace} {cluster} {job} {scheduler} {port}"),
                "default_profile": _field(
                    "Default cluster profile", "string",
                    "The DaskClusterProfile of the clusters a task makes when it names none"),
            },
            "ui-field-behaviour": {"hidden-fields": ["host", "schema", "login", "password",
                                                     "port", "extra"],
                                   "relabeling": {}, "placeholders": {}},
        }],
    }
