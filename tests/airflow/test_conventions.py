"""Airflow's provider conventions: the connection's Test button, one connection argument name
(``dask_kube_jobs_conn_id``, the old ``conn_id`` still working with a deprecation warning), the
provider's documentation link and form labels, and install instructions that name real extras."""

from __future__ import annotations

import inspect
import json
import re
import tomllib
import uuid
import warnings
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning

from dask_kube_jobs.airflow_provider import get_provider_info
from dask_kube_jobs.airflow_provider.decorators.daskjob import (
    DaskJobDecoratedOperator,
    daskjob_task,
)
from dask_kube_jobs.airflow_provider.hooks.daskjob import DaskKubeJobsHook
from dask_kube_jobs.airflow_provider.operators.daskcluster import (
    CreateDaskClusterOperator,
    DeleteDaskClusterOperator,
    connect_to_cluster,
)
from dask_kube_jobs.airflow_provider.operators.daskjob import (
    DaskJobOperator,
    DeleteDaskJobOperator,
)
from dask_kube_jobs.airflow_provider.sensors.daskcluster import DaskClusterSensor
from dask_kube_jobs.airflow_provider.sensors.daskjob import DaskJobSensor
from dask_kube_jobs.airflow_provider.triggers.daskcluster import DaskClusterTrigger
from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger

from ..kubeconfigs import NOWHERE

ROOT = Path(__file__).resolve().parents[2]
CONN_ARG = DaskKubeJobsHook.conn_name_attr

# the smallest valid construction of each class that takes a connection
BUILDERS: dict[str, Any] = {
    "DaskJobOperator": lambda **c: DaskJobOperator(task_id="t", script="print(1)", **c),
    "DeleteDaskJobOperator": lambda **c: DeleteDaskJobOperator(task_id="t", job_name="j", **c),
    "CreateDaskClusterOperator": lambda **c: CreateDaskClusterOperator(task_id="t", **c),
    "DeleteDaskClusterOperator": lambda **c: DeleteDaskClusterOperator(task_id="t",
                                                                       cluster_name="c", **c),
    "DaskJobSensor": lambda **c: DaskJobSensor(task_id="t", job_name="j", **c),
    "DaskClusterSensor": lambda **c: DaskClusterSensor(task_id="t", cluster_name="c", **c),
    "DaskJobTrigger": lambda **c: DaskJobTrigger(name="j", namespace="ns", **c),
    "DaskClusterTrigger": lambda **c: DaskClusterTrigger(name="c", namespace="ns", **c),
}


def test_every_class_and_function_names_the_connection_as_the_hook_does() -> None:
    assert CONN_ARG == "dask_kube_jobs_conn_id"
    for thing in (DaskJobOperator, DeleteDaskJobOperator, CreateDaskClusterOperator,
                  DeleteDaskClusterOperator, DaskJobSensor, DaskClusterSensor, DaskJobTrigger,
                  DaskClusterTrigger, DaskKubeJobsHook, connect_to_cluster):
        parameters = inspect.signature(thing).parameters
        assert parameters[CONN_ARG].default == "dask_kube_jobs_default", thing


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_the_new_name_is_quiet_and_the_old_one_still_works_with_a_warning(name: str) -> None:
    build = BUILDERS[name]
    assert getattr(build(), CONN_ARG) == "dask_kube_jobs_default"
    assert getattr(build(**{CONN_ARG: "mine"}), CONN_ARG) == "mine"  # no warning (errors here)
    with pytest.warns(AirflowProviderDeprecationWarning,
                      match=f"{name}: conn_id= is deprecated.*dask_kube_jobs_conn_id='old'"):
        built = build(conn_id="old")
    assert getattr(built, CONN_ARG) == "old"
    with pytest.raises(ValueError, match="not both"):
        build(conn_id="old", **{CONN_ARG: "mine"})


def test_the_decorator_takes_the_new_name_and_the_old_one_with_a_warning() -> None:
    from airflow.providers.common.compat.sdk import DAG

    def total() -> int:
        return 1

    with DAG(dag_id="conn_names", schedule=None,
             start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:
        daskjob_task(task_id="new", **{CONN_ARG: "mine"})(total)()
        with pytest.warns(AirflowProviderDeprecationWarning, match="conn_id= is deprecated"):
            daskjob_task(task_id="old", conn_id="old")(total)()
    new, old = dag.get_task("new"), dag.get_task("old")
    assert isinstance(new, DaskJobDecoratedOperator) and isinstance(old, DaskJobDecoratedOperator)
    assert (getattr(new, CONN_ARG), getattr(old, CONN_ARG)) == ("mine", "old")


@pytest.mark.parametrize("trigger", [DaskJobTrigger, DaskClusterTrigger])
def test_a_trigger_row_stored_with_the_old_name_still_resumes(trigger: type) -> None:
    classpath, kwargs = trigger(name="j", namespace="ns", **{CONN_ARG: "mine"}).serialize()
    assert kwargs[CONN_ARG] == "mine" and "conn_id" not in kwargs
    old_row = {**{k: v for k, v in kwargs.items() if k != CONN_ARG}, "conn_id": "mine"}
    with pytest.warns(AirflowProviderDeprecationWarning):
        assert trigger(**old_row).serialize() == (classpath, kwargs)


# -- the connection's Test button -------------------------------------------------------------
def button(monkeypatch: pytest.MonkeyPatch, **extra: Any) -> tuple[bool, str]:
    """What Airflow's Test button answers for a connection with these extras, done as the API
    server does it: the form's connection put in the environment under a transient id (as a
    URI), then Airflow's own ``Connection.test_connection`` (the hook found through the
    providers manager)."""
    from airflow.models.connection import Connection

    conn = Connection(conn_id=f"dkj_test_{uuid.uuid4().hex[:8]}", conn_type="dask_kube_jobs",
                      extra=json.dumps(extra))
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn.conn_id.upper()}", conn.get_uri())
    with warnings.catch_warnings():
        # Airflow 3's own Connection.get_hook reads ProvidersManager.hooks, which it deprecates
        warnings.filterwarnings("ignore", "ProvidersManager.hooks is deprecated")
        return conn.test_connection()


def test_the_test_button_passes_for_a_working_connection(
        local_control_plane: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = button(monkeypatch, kube_config_path=str(local_control_plane.kubeconfig),
                         namespace=namespace)
    assert ok, message
    assert message == (f'Connected: the API server serves DaskJobs, and namespace "{namespace}" '
                       "holds 0 of them")


def test_the_test_button_names_a_namespace_that_does_not_exist(
        local_control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ok, message = button(monkeypatch, kube_config_path=str(local_control_plane.kubeconfig),
                         namespace="no-such-namespace")
    assert not ok
    assert message.startswith('namespace "no-such-namespace" does not exist'), message


def test_the_test_button_says_when_the_server_cannot_be_reached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
              "clusters": [{"name": "nowhere", "cluster": {"server": NOWHERE}}],
              "users": [{"name": "u", "user": {"token": "t"}}],
              "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "u"}}]}
    ok, message = button(monkeypatch, kube_config=json.dumps(config))
    assert not ok
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:9" in message, message
    assert "is the cluster running" in message  # the hint: what to check


def test_the_test_button_says_what_rights_are_missing_and_passes_without_namespace_rights(
        local_control_plane: Any, namespace: str, kubectl: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = local_control_plane.mint_kubeconfig(tmp_path / "lister.yaml", user="lister",
                                                 namespace=namespace)
    ok, message = button(monkeypatch, kube_config_path=config, namespace=namespace)
    assert not ok
    assert "forbidden" in message and "(403 Forbidden)" in message, message
    assert "check the kubeconfig's user has rights on daskjobs" in message

    # rights on DaskJobs in the namespace only, as the chart's edit role grants: enough
    kubectl("create", "role", "job-lister", "--verb=list",
            "--resource=daskjobs.kubernetes.dask.org")
    kubectl("create", "rolebinding", "job-lister", "--role=job-lister", "--user=lister")
    ok, message = button(monkeypatch, kube_config_path=config, namespace=namespace)
    assert ok, message
    assert message.endswith("(whether the namespace exists was not checked: the user may not "
                            "read namespaces)"), message


# -- provider metadata and docs ---------------------------------------------------------------
def test_the_provider_links_to_this_projects_docs_and_labels_its_fields_consistently() -> None:
    info = get_provider_info()
    (integration,) = info["integrations"]
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    url = integration["external-doc-url"]
    assert url == urls["Documentation"] + "/airflow-provider.md"
    assert (ROOT / "docs" / url.rsplit("/", 1)[1]).is_file()
    (conn,) = info["connection-types"]
    fields = conn["conn-fields"]
    assert fields["kube_config"]["label"] == "Kube config (YAML or JSON)"
    text = " ".join(f"{f['label']} {f['description']}" for f in fields.values())
    assert "JSON format" not in text and text.count("YAML or JSON") == 2


def test_the_install_line_of_the_provider_page_names_real_extras() -> None:
    page = (ROOT / "docs" / "airflow-provider.md").read_text()
    page = page.split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())
                 ["project"]["optional-dependencies"])
    (line,) = re.findall(r"pip install -e '\.\[([\w,-]+)\]'", page)
    named = set(line.split(","))
    # what the page's walkthrough runs: the provider, `dask-kube-jobs local up`, the operator
    assert named == {"airflow", "local", "operator"} and named <= extras
    listed = set(re.findall(r"^\| `([\w-]+)` \|", page, re.M))
    assert named <= listed <= extras, listed
