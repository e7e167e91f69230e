"""Provider registration (what ``airflow providers ...`` shows) and connection parsing."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dask_kube_jobs.airflow_provider import get_provider_info
from dask_kube_jobs.airflow_provider._identity import TaskIdentity, label_value
from dask_kube_jobs.airflow_provider.hooks.daskjob import (
    KubeTarget,
    _kubeconfig_file,
    target_from_extras,
)


def airflow_cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "airflow", *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_airflow_lists_the_provider_its_hook_connection_type_trigger_and_link(
        airflow_db: Path) -> None:
    providers = json.loads(airflow_cli("providers", "list", "-o", "json"))
    assert any(p["package_name"] == "dask-kube-jobs" for p in providers)
    hooks = json.loads(airflow_cli("providers", "hooks", "-o", "json"))
    ours = [h for h in hooks if h["connection_type"] == "dask_kube_jobs"]
    assert ours and ours[0]["class"].endswith("hooks.daskjob.DaskKubeJobsHook")
    triggers = airflow_cli("providers", "triggers")
    assert "dask_kube_jobs.airflow_provider.triggers.daskjob" in triggers
    assert "dask_kube_jobs.airflow_provider.triggers.daskcluster" in triggers
    links = airflow_cli("providers", "links")
    assert "dask_kube_jobs.airflow_provider.links.DaskDashboardLink" in links
    (info,) = json.loads(airflow_cli("providers", "get", "dask-kube-jobs", "--full", "-o",
                                     "json"))
    (sensors,) = info["sensors"]
    assert sensors["python-modules"] == ["dask_kube_jobs.airflow_provider.sensors.daskjob",
                                         "dask_kube_jobs.airflow_provider.sensors.daskcluster"]
    (operators,) = info["operators"]
    assert "dask_kube_jobs.airflow_provider.operators.daskcluster" in operators["python-modules"]
    assert info["task-decorators"] == [{
        "name": "daskjob",
        "class-name": "dask_kube_jobs.airflow_provider.decorators.daskjob.daskjob_task"}]


def test_task_daskjob_resolves_through_the_providers_manager() -> None:
    from airflow.providers.common.compat.sdk import task

    from dask_kube_jobs.airflow_provider.decorators.daskjob import daskjob_task

    assert task.daskjob is daskjob_task


def test_every_module_the_provider_declares_imports_and_defines_its_classes() -> None:
    import importlib

    info = get_provider_info()
    modules = [m for kind in ("operators", "sensors", "hooks", "triggers")
               for entry in info[kind] for m in entry["python-modules"]]
    classes = {name for m in modules for name in vars(importlib.import_module(m))}
    assert {"DaskJobOperator", "DeleteDaskJobOperator", "CreateDaskClusterOperator",
            "DeleteDaskClusterOperator", "DaskJobSensor", "DaskClusterSensor",
            "DaskJobTrigger", "DaskClusterTrigger", "DaskKubeJobsHook"} <= classes


def test_provider_info_declares_the_kubernetes_connection_fields() -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert {"in_cluster", "kube_config_path", "kube_config", "cluster_context", "namespace",
            "disable_verify_ssl", "dashboard_url_template"} <= set(conn["conn-fields"])


def test_connection_extras_are_read_bare_or_prefixed() -> None:
    assert target_from_extras({"namespace": "a", "in_cluster": "True"}) == \
        KubeTarget(namespace="a", in_cluster=True)
    assert target_from_extras({"extra__dask_kube_jobs__cluster_context": "prod",
                               "extra__dask_kube_jobs__disable_verify_ssl": True}) == \
        KubeTarget(cluster_context="prod", disable_verify_ssl=True)
    assert target_from_extras({"default_profile": "standard"}).default_profile == "standard"


def test_an_inline_kubeconfig_is_written_private_and_insecure_when_asked() -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1",
                                                      "certificate-authority-data": "eA=="}}],
              "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
              "users": [{"name": "u", "user": {"token": "t"}}]}
    path = _kubeconfig_file(target_from_extras({"kube_config": config,
                                                "disable_verify_ssl": "true"}))
    assert path and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    cluster = yaml.safe_load(Path(path).read_text())["clusters"][0]["cluster"]
    assert cluster["insecure-skip-tls-verify"] is True
    assert "certificate-authority-data" not in cluster


def test_identity_labels_are_valid_and_names_fit_a_scheduler_service() -> None:
    ident = TaskIdentity("etl." * 30, "Extract_Orders" * 10, "manual__2024-01-01T00:00:00+00:00",
                         map_index=7, try_number=2)
    for value in ident.labels().values():
        assert len(value) <= 63 and value[0].isalnum() and value[-1].isalnum()
    name = ident.job_name()
    assert len(name) <= 53 and name.endswith("-2") and name[0].isalpha()
    assert label_value("a" * 80) != label_value("a" * 81)
    assert TaskIdentity("d", "t", "r", try_number=1).key == \
        TaskIdentity("d", "t", "r", try_number=5).key


def test_an_unknown_connection_id_raises_and_only_the_default_falls_back() -> None:
    from airflow.exceptions import AirflowNotFoundException

    from dask_kube_jobs.airflow_provider.hooks.daskjob import DEFAULT_CONN_ID, DaskKubeJobsHook

    with pytest.raises(AirflowNotFoundException):
        DaskKubeJobsHook("no_such_connection").get_target()
    # the default id with no connection defined: the ambient kubeconfig (a DAG needs none)
    target = DaskKubeJobsHook(DEFAULT_CONN_ID).get_target()
    assert target == type(target)()
