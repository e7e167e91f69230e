"""DaskJobOperator outside a DAG run: reattach after a worker crash, a later try never reusing a
finished job, kill deleting the job, argument checks. Real jobs on the local control plane."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from dask_kube_jobs.airflow_provider.operators.daskjob import (
    DaskJobOperator,
    DeleteDaskJobOperator,
)
from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger

from .conftest import CONN_ENV
from .helpers import FakeTI, jobs_of

pytestmark = pytest.mark.timeout(240)

#: A job that is still running when a later try looks for it (what reattaching needs)...
SLOW = "import time\nfrom dask_kube_jobs import set_result\n" \
       "print('working', flush=True)\ntime.sleep(6)\nset_result({'done': True})\n"
#: ...and the same result at once, where nothing looks for the job while it runs.
QUICK = "from dask_kube_jobs import set_result\nset_result({'done': True})\n"


def jobs(plane: Any, namespace: str, task_id: str) -> list[dict[str, Any]]:
    return asyncio.run(jobs_of(plane.kubeconfig, namespace, task_id))


def test_a_retry_after_a_worker_crash_reattaches_instead_of_duplicating(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    # Try 1 submits and defers; its worker then "dies": the trigger never runs.
    first = DaskJobOperator(task_id="crashy", script=SLOW, n_workers=1, deferrable=True,
                            on_finish_action="keep")
    ti1 = FakeTI(task_id="crashy", try_number=1)
    with pytest.raises(TaskDeferred) as deferred:
        first.execute({"ti": ti1})
    assert isinstance(deferred.value.trigger, DaskJobTrigger)
    assert ti1.xcoms["job_name"] == deferred.value.trigger.name
    # Try 2 runs blocking on another worker: it must find try 1's running job.
    second = DaskJobOperator(task_id="crashy", script=SLOW, n_workers=1, deferrable=False,
                             on_finish_action="keep")
    ti2 = FakeTI(task_id="crashy", try_number=2)
    assert second.execute({"ti": ti2}) == {"done": True}
    assert ti2.xcoms["job_name"] == ti1.xcoms["job_name"]
    assert len(jobs(local_control_plane, namespace, "crashy")) == 1
    # Try 3 (the user cleared the task): the finished job is not reused; a new one runs.
    third = DaskJobOperator(task_id="crashy", script=QUICK, n_workers=1, deferrable=False,
                            on_finish_action="keep")
    ti3 = FakeTI(task_id="crashy", try_number=3)
    assert third.execute({"ti": ti3}) == {"done": True}
    assert ti3.xcoms["job_name"] != ti1.xcoms["job_name"]
    assert len(jobs(local_control_plane, namespace, "crashy")) == 2


def test_the_same_try_executing_twice_makes_one_job(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    results = []
    for _ in range(2):
        op = DaskJobOperator(task_id="twice", script=QUICK, n_workers=1, deferrable=False,
                             on_finish_action="keep")
        results.append(op.execute({"ti": FakeTI(task_id="twice", try_number=1)}))
    assert results == [{"done": True}] * 2
    assert len(jobs(local_control_plane, namespace, "twice")) == 1


def test_on_kill_deletes_the_running_job(local_control_plane: Any, namespace: str,
                                         dkj_connection: Any) -> None:
    op = DaskJobOperator(task_id="killed", script="import time; time.sleep(300)", n_workers=1,
                         deferrable=False)
    outcome: list[BaseException | Any] = []

    def run() -> None:
        try:
            outcome.append(op.execute({"ti": FakeTI(task_id="killed")}))
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            outcome.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    for _ in range(200):
        if op._job is not None:
            break
        time.sleep(0.1)
    assert op._job is not None
    time.sleep(1)
    op.on_kill()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(outcome[0], AirflowException) and "deleted" in str(outcome[0])
    for _ in range(100):
        if not jobs(local_control_plane, namespace, "killed"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "killed") == []


def test_a_successful_job_is_deleted_by_default(local_control_plane: Any, namespace: str,
                                               dkj_connection: Any) -> None:
    op = DaskJobOperator(task_id="tidy", script="print('hi')", n_workers=1, deferrable=False)
    assert op.execute({"ti": FakeTI(task_id="tidy")}) is None
    for _ in range(100):
        if not jobs(local_control_plane, namespace, "tidy"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "tidy") == []


TEAM_OF_WORKERS = """
import os
from dask.distributed import Client
from dask_kube_jobs import set_result
with Client() as client:
    client.wait_for_workers(1)
    set_result(sorted(set(client.run(lambda: os.environ.get("TEAM")).values())))
"""


def test_a_profile_and_its_options_shape_the_jobs_cluster(
        local_control_plane: Any, namespace: str, dkj_connection: dict[str, Any],
        kubectl: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"{namespace}-teams"
    kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
        "metadata": {"name": name},
        "spec": {"worker": {"replicas": 1}, "options": [
            {"name": "team", "target": "env.TEAM",
             "choice": {"default": "data", "choices": ["data", "ml"]}}]}}))
    # the task's own profile wins over the connection's default
    extra = {**dkj_connection, "default_profile": "not-this-one"}
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "dask_kube_jobs", "extra": extra}))
    try:
        op = DaskJobOperator(task_id="teams", script=TEAM_OF_WORKERS, profile=name,
                             profile_options={"team": "ml"}, deferrable=False,
                             on_finish_action="keep")
        ti = FakeTI(task_id="teams")
        assert op.execute({"ti": ti}) == ["ml"]
        job = kubectl("get", "daskjob", ti.xcoms["job_name"], "-o", "json").json()
        assert job["status"]["profile"]["name"] == name
    finally:
        kubectl("delete", "daskclusterprofile", name, "--wait=false", check=False)


@pytest.mark.parametrize("kwargs", [
    pytest.param({}, id="nothing-to-run"),
    pytest.param({"manifest": {"kind": "DaskJob"}, "script": "print(1)"}, id="manifest-and-keywords"),
    pytest.param({"script": "print(1)", "on_finish_action": "explode"}, id="bad-finish-action"),
])
def test_contradictory_arguments_are_refused_at_parse_time(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DaskJobOperator(task_id="bad", **kwargs)


def test_an_empty_image_is_an_error_naming_the_argument_not_the_default_image() -> None:
    from dask_kube_jobs.spec import SpecError

    with pytest.raises(SpecError, match="image"):
        DaskJobOperator(task_id="e", script="print(1)", image="").build_manifest("e")


@pytest.mark.parametrize("value", ["abc", "2.5", 2.5, [3]])
def test_a_bad_worker_count_names_the_argument(value: Any) -> None:
    from dask_kube_jobs.spec import SpecError

    with pytest.raises(SpecError, match="n_workers"):
        DaskJobOperator(task_id="w", script="print(1)", n_workers=value).build_manifest("w")


def test_a_templated_worker_count_is_read_as_a_number() -> None:
    manifest = DaskJobOperator(task_id="t", script="print(1)", n_workers="2").build_manifest("t")
    assert manifest["spec"]["cluster"]["spec"]["worker"]["replicas"] == 2


def test_a_profile_names_the_jobs_cluster_and_the_connections_default_fills_in() -> None:
    op = DaskJobOperator(task_id="p", script="print(1)", profile="standard",
                         profile_options={"worker_memory": "8Gi"})
    assert "profile" in op.template_fields and "profile_options" in op.template_fields
    spec = op.build_manifest("p", "fallback")["spec"]
    assert spec["profile"] == {"name": "standard", "options": {"worker_memory": "8Gi"}}
    assert "cluster" not in spec  # left to the profile, no default image or worker count
    plain = DaskJobOperator(task_id="d", script="print(1)", n_workers=2)
    spec = plain.build_manifest("d", "fallback")["spec"]
    assert spec["profile"] == {"name": "fallback"}
    assert spec["cluster"] == {"spec": {"worker": {"replicas": 2}}}
    assert "profile" not in plain.build_manifest("d")["spec"]
    shared = DaskJobOperator(task_id="s", script="print(1)", cluster_ref="warm")
    assert "profile" not in shared.build_manifest("s", "fallback")["spec"]  # makes no cluster
    named = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob", "metadata": {},
             "spec": {"job": {"spec": {"containers": [{"name": "j", "image": "i"}]}},
                      "profile": {"name": "own", "options": {"workers": 1}}}}
    spec = DaskJobOperator(task_id="m", manifest=named, profile_options={"workers": 3}
                           ).build_manifest("m", "fallback")["spec"]
    assert spec["profile"] == {"name": "own", "options": {"workers": 3}}


def test_the_deferrable_default_follows_airflow_config() -> None:
    assert DaskJobOperator(task_id="d", script="print(1)").deferrable is False


def pods_in(plane: Any, namespace: str) -> list[str]:
    from dask_kube_jobs import kube

    async def names() -> list[str]:
        client = await kube.Client.connect(plane.kubeconfig)
        try:
            items, _ = await client.list(kube.PODS, namespace)
            return [p["metadata"]["name"] for p in items]
        finally:
            await client.close()

    return asyncio.run(names())


def test_submit_without_waiting_then_delete_takes_the_cluster_and_pods_with_it(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    submit = DaskJobOperator(task_id="submit", script="import time; time.sleep(300)",
                             n_workers=1, wait_for_completion=False)
    ti = FakeTI(task_id="submit")
    started = time.monotonic()
    name = submit.execute({"ti": ti})
    assert time.monotonic() - started < 30  # returned without waiting for a 300 s job
    assert name == ti.xcoms["job_name"] and ti.xcoms["namespace"] == namespace
    assert ti.xcoms["dashboard_url"].endswith("/status")
    [job] = jobs(local_control_plane, namespace, "submit")
    assert job["metadata"]["name"] == name
    for _ in range(150):  # let the job make its cluster and Pods, which the delete must take
        if pods_in(local_control_plane, namespace):
            break
        time.sleep(0.2)
    assert pods_in(local_control_plane, namespace)

    delete = DeleteDaskJobOperator(task_id="delete", job_name=name)
    assert delete.execute({"ti": FakeTI(task_id="delete")}) is True
    # foreground deletion: by the time the task returns, the job and every Pod are gone
    assert jobs(local_control_plane, namespace, "submit") == []
    assert pods_in(local_control_plane, namespace) == []
    # teardown of a job already gone is fine, unless the DAG says it is not
    assert DeleteDaskJobOperator(task_id="again", job_name=name).execute({}) is False
    with pytest.raises(AirflowException, match=f"{name} does not exist.*ignore_missing"):
        DeleteDaskJobOperator(task_id="strict", job_name=name,
                              ignore_missing=False).execute({})


def test_delete_without_waiting_marks_the_job_for_deletion(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    name = DaskJobOperator(task_id="bg", script="import time; time.sleep(300)", n_workers=1,
                           wait_for_completion=False).execute({"ti": FakeTI(task_id="bg")})
    assert DeleteDaskJobOperator(task_id="del", job_name=name, namespace=namespace,
                                 wait_for_deletion=False).execute({}) is True
    for _ in range(150):
        if not jobs(local_control_plane, namespace, "bg"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "bg") == []


@pytest.mark.parametrize("kwargs", [
    pytest.param({"job_name": ""}, id="empty-name"),
    pytest.param({"job_name": "j", "deletion_timeout": 0}, id="zero-timeout"),
])
def test_delete_operator_refuses_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="DeleteDaskJobOperator"):
        DeleteDaskJobOperator(task_id="bad", **kwargs)


def test_a_runner_that_cannot_start_fails_the_task_with_the_reason_and_is_deleted(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    # The cluster asks for more CPUs than any node has: its Pods stay Unschedulable, so the
    # runner (made with the cluster, its Client() waiting for the scheduler) never gets to work.
    op = DaskJobOperator(task_id="stuck", script="print('never')", n_workers=1,
                         resources={"requests": {"cpu": "5000"}}, startup_timeout=3,
                         deferrable=False)
    started = time.monotonic()
    with pytest.raises(AirflowException) as failure:
        op.execute({"ti": FakeTI(task_id="stuck")})
    assert time.monotonic() - started < 60
    message = str(failure.value)
    assert "did not start in time" in message and "Unschedulable" in message, message
    assert "startup_timeout=3s" in message and "deleted" in message
    for _ in range(100):
        if not jobs(local_control_plane, namespace, "stuck"):
            break
        time.sleep(0.2)
    assert jobs(local_control_plane, namespace, "stuck") == []


def test_startup_timeout_must_be_positive() -> None:
    with pytest.raises(ValueError, match="startup_timeout"):
        DaskJobOperator(task_id="bad", script="print(1)", startup_timeout=0)


class DictStateStore:
    """The two calls the operator makes on Airflow 3.3's ``context["task_state_store"]``
    (``TaskStateStoreAccessor``), kept in a dict shared by the tries of one task instance."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        assert value is not None and json.loads(json.dumps(value)) == value  # JSON only
        self.values[key] = value


def test_the_task_state_store_remembers_the_job_and_a_retry_reattaches_by_it(
        local_control_plane: Any, namespace: str, dkj_connection: Any, kubectl: Any) -> None:
    from dask_kube_jobs.airflow_provider._identity import LABEL_KEY
    from dask_kube_jobs.airflow_provider.operators.daskjob import STATE_KEY

    store = DictStateStore()
    first = DaskJobOperator(task_id="stored", script=SLOW, n_workers=1, deferrable=True,
                            on_finish_action="keep")
    with pytest.raises(TaskDeferred) as deferred:
        first.execute({"ti": FakeTI(task_id="stored"), "task_state_store": store})
    name = deferred.value.trigger.name
    [job] = jobs(local_control_plane, namespace, "stored")
    assert store.values[STATE_KEY] == {"name": name, "namespace": namespace,
                                       "uid": job["metadata"]["uid"]}
    # Someone strips the identity label: labels alone would no longer find it, the store does.
    kubectl("label", "daskjob", name, f"{LABEL_KEY}-")
    assert jobs(local_control_plane, namespace, "stored") == []
    second = DaskJobOperator(task_id="stored", script=SLOW, n_workers=1, deferrable=False,
                             on_finish_action="keep")
    ti2 = FakeTI(task_id="stored", try_number=2)
    assert second.execute({"ti": ti2, "task_state_store": store}) == {"done": True}
    assert ti2.xcoms["job_name"] == name
    # A later try finds the remembered job finished: it is never reattached; a new job runs.
    third = DaskJobOperator(task_id="stored", script=QUICK, n_workers=1, deferrable=False,
                            on_finish_action="keep")
    ti3 = FakeTI(task_id="stored", try_number=3)
    assert third.execute({"ti": ti3, "task_state_store": store}) == {"done": True}
    assert ti3.xcoms["job_name"] != name
    assert store.values[STATE_KEY]["name"] == ti3.xcoms["job_name"]
