"""DaskJobSensor and DaskClusterSensor outside a DAG run, on the local control plane: poking,
rescheduling and deferring to their triggers, and never deleting what they watch."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from dask_kube_jobs import kube
from dask_kube_jobs.airflow_provider._clusterwait import cluster_event
from dask_kube_jobs.airflow_provider.sensors.daskcluster import DaskClusterSensor
from dask_kube_jobs.airflow_provider.sensors.daskjob import DaskJobSensor
from dask_kube_jobs.airflow_provider.triggers.daskcluster import DaskClusterTrigger
from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger
from dask_kube_jobs.contract.api_resources import DASKCLUSTERS, DASKJOBS
from dask_kube_jobs.errors import DaskJobFailed
from dask_kube_jobs.spec import make_cluster_spec

from .helpers import FakeTI, create_job, job_manifest

pytestmark = pytest.mark.timeout(240)

SHORT = "import time\nfrom dask_kube_jobs import set_result\nprint('sensed', flush=True)\n" \
        "time.sleep(4)\nset_result({'n': 7})\n"
FAILING = "import sys\nprint('about to fail', flush=True)\nsys.exit(3)\n"


async def get(plane: Any, res: Any, namespace: str, name: str) -> dict[str, Any] | None:
    client = await kube.Client.connect(plane.kubeconfig)
    try:
        return await client.get(res, namespace, name)
    finally:
        await client.close()


def test_the_job_sensor_pokes_until_the_result_and_leaves_the_job(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    asyncio.run(create_job(local_control_plane.kubeconfig, namespace,
                           job_manifest("sensed", SHORT)))
    # a running job: "not yet", the answer reschedule mode frees the worker slot on
    rescheduling = DaskJobSensor(task_id="wait", job_name="sensed", mode="reschedule",
                                 poke_interval=5, deferrable=False)
    assert rescheduling.poke({}).is_done is False
    poking = DaskJobSensor(task_id="wait", job_name="sensed", poke_interval=1, timeout=120,
                           deferrable=False)
    assert poking.execute({"ti": FakeTI(task_id="wait")}) == {"n": 7}
    job = asyncio.run(get(local_control_plane, DASKJOBS, namespace, "sensed"))
    assert job is not None and not job["metadata"].get("deletionTimestamp")


def test_a_failed_job_fails_the_sensor_with_its_exit_code_and_stays(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    asyncio.run(create_job(local_control_plane.kubeconfig, namespace,
                           job_manifest("sensed-fail", FAILING)))
    sensor = DaskJobSensor(task_id="wait", job_name="sensed-fail", poke_interval=1, timeout=120,
                           deferrable=False)
    with pytest.raises(DaskJobFailed, match="code 3") as failed:
        sensor.execute({"ti": FakeTI(task_id="wait")})
    assert "about to fail" in (failed.value.log_tail or "")
    assert asyncio.run(get(local_control_plane, DASKJOBS, namespace, "sensed-fail"))


def test_a_missing_job_fails_the_sensor_naming_it(namespace: str, dkj_connection: Any) -> None:
    sensor = DaskJobSensor(task_id="wait", job_name="nowhere", deferrable=False)
    with pytest.raises(AirflowException, match="DaskJob nowhere does not exist"):
        sensor.execute({"ti": FakeTI(task_id="wait")})


async def test_the_deferred_job_sensor_uses_a_trigger_that_never_deletes(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    await create_job(local_control_plane.kubeconfig, namespace,
                     job_manifest("sensed-long", "import time; time.sleep(120)"))
    sensor = DaskJobSensor(task_id="wait", job_name="sensed-long", timeout=60, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        await asyncio.to_thread(sensor.execute, {"ti": FakeTI(task_id="wait")})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DaskJobTrigger) and trigger.delete_on_kill is False
    assert trigger.namespace == namespace and 55 < trigger.deadline - time.time() <= 60
    await trigger.on_kill()  # the user killed the waiting task: the job is not the sensor's
    job = await get(local_control_plane, DASKJOBS, namespace, "sensed-long")
    assert job is not None and not job["metadata"].get("deletionTimestamp")


def test_trigger_events_end_the_deferred_job_sensor_like_pokes() -> None:
    sensor = DaskJobSensor(task_id="wait", job_name="j", timeout=30)
    ctx = {"ti": FakeTI(task_id="wait")}
    assert sensor.execute_complete(ctx, {"status": "success", "name": "j", "namespace": "n",
                                         "result": [1, 2]}) == [1, 2]
    with pytest.raises(DaskJobFailed, match="OOMKilled"):
        sensor.execute_complete(ctx, {"status": "failed", "name": "j", "namespace": "n",
                                      "reason": "OOMKilled", "exit_code": 137})
    with pytest.raises(AirflowSensorTimeout, match="still runs after 30"):
        sensor.execute_complete(ctx, {"status": "timeout", "name": "j", "namespace": "n"})
    with pytest.raises(AirflowException, match="was deleted while being waited for"):
        sensor.execute_complete(ctx, {"status": "deleted", "name": "j", "namespace": "n",
                                      "message": "DaskJob j was deleted while being waited for"})
    soft = DaskJobSensor(task_id="wait", job_name="j", timeout=30, soft_fail=True)
    with pytest.raises(AirflowSkipException):
        soft.execute_complete(ctx, {"status": "timeout", "name": "j", "namespace": "n"})


async def test_the_cluster_sensor_waits_for_a_cluster_that_appears_later(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    sensor = DaskClusterSensor(task_id="ready", cluster_name="later", min_ready_workers=1,
                               timeout=120, deferrable=True)
    assert not (await asyncio.to_thread(sensor.poke, {})).is_done  # not there yet: wait
    with pytest.raises(TaskDeferred) as deferred:
        await asyncio.to_thread(sensor.execute, {"ti": FakeTI(task_id="ready")})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DaskClusterTrigger) and trigger.min_ready_workers == 1
    events = trigger.run()
    waiting = asyncio.create_task(anext(events))
    await asyncio.sleep(1)
    assert not waiting.done()
    client = await kube.Client.connect(local_control_plane.kubeconfig)
    try:
        await client.create(DASKCLUSTERS, namespace, make_cluster_spec("later", n_workers=1))
    finally:
        await client.close()
    event = (await asyncio.wait_for(waiting, 120)).payload
    await events.aclose()
    assert event["status"] == "ready" and event["ready_workers"] >= 1
    result = sensor.execute_complete({}, event)
    assert result["scheduler_address"] == \
        f"tcp://later-scheduler.{namespace}.svc.cluster.local:8786"
    assert result["dashboard_address"].endswith(":8787") and result["name"] == "later"
    # once ready, a poke answers at once, with the same addresses
    poked = await asyncio.to_thread(sensor.poke, {})
    assert poked.is_done and poked.xcom_value["scheduler_address"] == result["scheduler_address"]
    assert await get(local_control_plane, DASKCLUSTERS, namespace, "later")  # never deleted


async def test_the_cluster_trigger_times_out_at_its_deadline(
        namespace: str, dkj_connection: Any) -> None:
    trigger = DaskClusterTrigger(name="absent", namespace=namespace, deadline=time.time() + 1)
    events = [e.payload async for e in trigger.run()]
    assert [e["status"] for e in events] == ["timeout"]
    with pytest.raises(AirflowSensorTimeout, match="absent"):
        DaskClusterSensor(task_id="ready", cluster_name="absent").execute_complete({}, events[0])


def test_a_failed_cluster_fails_the_sensor_with_its_condition() -> None:
    obj = {"metadata": {"name": "c", "namespace": "n"},
           "status": {"phase": "Failed", "conditions": [
               {"type": "InvalidName", "status": "True", "reason": "InvalidName",
                "message": "name too long"}]}}
    event = cluster_event(obj, namespace="n", name="c")
    assert event["status"] == "failed"
    with pytest.raises(AirflowException, match="DaskCluster n/c failed: name too long"):
        DaskClusterSensor(task_id="ready", cluster_name="c").finish(event)
    ready = [{"type": "SchedulerReady", "status": "True"}]
    assert cluster_event({**obj, "status": {"phase": "Running", "readyWorkers": 1,
                                            "conditions": ready}},
                         namespace="n", name="c", min_ready_workers=2)["status"] == "waiting"
    assert cluster_event({**obj, "status": {"phase": "Running", "readyWorkers": 2,
                                            "conditions": ready}},
                         namespace="n", name="c", min_ready_workers=2)["status"] == "ready"
    # Running is upstream's "scheduler made": without SchedulerReady the cluster is not ready.
    starting = cluster_event({**obj, "status": {"phase": "Running", "readyWorkers": 2}},
                             namespace="n", name="c", min_ready_workers=2)
    assert starting["status"] == "waiting" and "scheduler not ready" in starting["message"]


def test_sensor_arguments_are_checked_and_triggers_serialize_primitives() -> None:
    with pytest.raises(ValueError, match="job_name"):
        DaskJobSensor(task_id="wait", job_name="")
    with pytest.raises(ValueError, match="min_ready_workers"):
        DaskClusterSensor(task_id="ready", cluster_name="c", min_ready_workers=-1)
    classpath, kwargs = DaskClusterTrigger(name="c", namespace="n", min_ready_workers=2,
                                           deadline=1.5).serialize()
    assert classpath == "dask_kube_jobs.airflow_provider.triggers.daskcluster.DaskClusterTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert DaskClusterTrigger(**kwargs).serialize() == (classpath, kwargs)
