"""DaskJobTrigger with a real event loop against the local control plane."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from dask_kube_jobs.airflow_provider.triggers.daskjob import DaskJobTrigger

from .helpers import DroppingProxy, create_job, job_manifest

pytestmark = pytest.mark.timeout(240)

QUICK = "from dask.distributed import Client\nfrom dask_kube_jobs import set_result\n" \
        "c = Client()\nprint('runner says hello', flush=True)\nset_result({'ok': 1})\n"
SLOW = "import time\nfrom dask_kube_jobs import set_result\n" \
       "for i in range(8):\n    print(f'tick {i}', flush=True)\n    time.sleep(1)\n" \
       "set_result({'ticks': 8})\n"


async def events_of(trigger: DaskJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


async def test_a_successful_job_yields_exactly_one_event_with_its_result(
        local_control_plane: Any, namespace: str, dkj_connection: Any,
        capfd: pytest.CaptureFixture[str]) -> None:
    job = await create_job(local_control_plane.kubeconfig, namespace,
                           job_manifest("trig-ok", QUICK))
    trigger = DaskJobTrigger(name="trig-ok", namespace=namespace,
                             uid=job["metadata"]["uid"])
    events = await events_of(trigger)
    assert len(events) == 1
    assert events[0]["status"] == "success" and events[0]["result"] == {"ok": 1}
    # the log was followed into the trigger's logger while waiting
    assert "[trig-ok] runner says hello" in capfd.readouterr().out


async def test_a_missing_job_is_a_deleted_event_not_a_crash(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    events = await events_of(DaskJobTrigger(name="never-created", namespace=namespace))
    assert [e["status"] for e in events] == ["deleted"]


async def test_a_job_deleted_while_waiting_is_a_deleted_event(
        local_control_plane: Any, namespace: str, dkj_connection: Any, kubectl: Any) -> None:
    await create_job(local_control_plane.kubeconfig, namespace,
                     job_manifest("trig-del", "import time; time.sleep(120)"))
    task = asyncio.create_task(events_of(DaskJobTrigger(name="trig-del", namespace=namespace)))
    await asyncio.sleep(2)
    await asyncio.to_thread(kubectl, "delete", "daskjob", "trig-del", "--wait=false")
    events = await asyncio.wait_for(task, 60)
    assert [e["status"] for e in events] == ["deleted"]


async def test_a_deadline_is_a_timeout_event(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    import time

    await create_job(local_control_plane.kubeconfig, namespace,
                     job_manifest("trig-late", "import time; time.sleep(120)"))
    events = await events_of(DaskJobTrigger(name="trig-late", namespace=namespace,
                                            deadline=time.time() + 3))
    assert [e["status"] for e in events] == ["timeout"]


async def test_the_wait_survives_dropped_connections(
        local_control_plane: Any, namespace: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load(Path(local_control_plane.kubeconfig).read_text())
    server = urlparse(config["clusters"][0]["cluster"]["server"])
    proxy = DroppingProxy(server.hostname or "127.0.0.1", server.port or 443)
    port = await proxy.start()
    config["clusters"][0]["cluster"]["server"] = f"https://{server.hostname}:{port}"
    proxied = tmp_path / "proxied-kubeconfig.yaml"
    proxied.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT", json.dumps(
        {"conn_type": "dask_kube_jobs",
         "extra": {"kube_config_path": str(proxied), "namespace": namespace}}))
    try:
        await create_job(local_control_plane.kubeconfig, namespace,
                         job_manifest("trig-drop", SLOW))
        task = asyncio.create_task(events_of(DaskJobTrigger(name="trig-drop",
                                                            namespace=namespace)))
        for _ in range(3):
            await asyncio.sleep(3)
            proxy.drop_all()
        events = await asyncio.wait_for(task, 180)
    finally:
        await proxy.close()
    assert len(events) == 1 and events[0]["status"] == "success", events
    assert events[0]["result"] == {"ticks": 8}
    assert proxy.connections > 3  # the watch and the log stream really were re-opened
    ticks = [line.split("[trig-drop] ")[1].split()[:2] for line in capfd.readouterr().out
             .splitlines() if "[trig-drop] tick " in line]
    # the resumed log streams skipped what was seen: no line twice, none lost
    assert ticks == [["tick", str(i)] for i in range(8)], ticks


async def test_on_kill_deletes_the_job(local_control_plane: Any, namespace: str,
                                       dkj_connection: Any) -> None:
    from dask_kube_jobs import kube
    from dask_kube_jobs.contract.api_resources import DASKJOBS

    job = await create_job(local_control_plane.kubeconfig, namespace,
                           job_manifest("trig-kill", "import time; time.sleep(120)"))
    await DaskJobTrigger(name="trig-kill", namespace=namespace,
                         uid=job["metadata"]["uid"]).on_kill()
    client = await kube.Client.connect(local_control_plane.kubeconfig)
    try:
        for _ in range(100):
            obj = await client.get(DASKJOBS, namespace, "trig-kill")
            if obj is None:
                break
            assert obj["metadata"].get("deletionTimestamp")
            await asyncio.sleep(0.2)
    finally:
        await client.close()


def test_the_trigger_serializes_only_primitives() -> None:
    classpath, kwargs = DaskJobTrigger(name="j", namespace="ns", uid="u", deadline=1.5).serialize()
    assert classpath == "dask_kube_jobs.airflow_provider.triggers.daskjob.DaskJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert DaskJobTrigger(**kwargs).serialize() == (classpath, kwargs)


async def test_a_forbidden_watch_falls_back_to_polling_with_get(
        local_control_plane: Any, namespace: str, kubectl: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    # RBAC as some clusters hand out: read a DaskJob by name, but neither list nor watch them.
    await asyncio.to_thread(kubectl, "create", "role", "job-reader", "--verb=get",
                            "--resource=daskjobs.kubernetes.dask.org")
    await asyncio.to_thread(kubectl, "create", "role", "log-reader", "--verb=get,list",
                            "--resource=pods,pods/log")
    for role in ("job-reader", "log-reader"):
        await asyncio.to_thread(kubectl, "create", "rolebinding", role, f"--role={role}",
                                "--user=reader")
    config = local_control_plane.mint_kubeconfig(tmp_path / "reader.yaml", user="reader",
                                                 namespace=namespace)
    monkeypatch.setenv("AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT", json.dumps(
        {"conn_type": "dask_kube_jobs", "extra": {"kube_config_path": config,
                                                  "namespace": namespace}}))
    assert "no" in (await asyncio.to_thread(
        kubectl, "auth", "can-i", "watch", "daskjobs.kubernetes.dask.org", "--as=reader",
        check=False)).stdout
    await create_job(local_control_plane.kubeconfig, namespace, job_manifest("trig-poll", QUICK))
    events = await events_of(DaskJobTrigger(name="trig-poll", namespace=namespace,
                                            poll_interval=0.5))
    assert len(events) == 1 and events[0]["status"] == "success", events
    assert events[0]["result"] == {"ok": 1}
    out = capfd.readouterr().out
    assert "Watching DaskJob" in out and "is forbidden" in out and "polling it with GET every " \
        "0.5s" in out, out[-3000:]
    assert "[trig-poll] runner says hello" in out


async def test_a_job_nobody_may_read_is_an_error_event_not_a_poll(
        local_control_plane: Any, namespace: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    config = local_control_plane.mint_kubeconfig(tmp_path / "nobody.yaml", user="nobody",
                                                 namespace=namespace)
    monkeypatch.setenv("AIRFLOW_CONN_DASK_KUBE_JOBS_DEFAULT", json.dumps(
        {"conn_type": "dask_kube_jobs", "extra": {"kube_config_path": config}}))
    await create_job(local_control_plane.kubeconfig, namespace,
                     job_manifest("trig-secret", "print(1)"))
    events = await asyncio.wait_for(events_of(DaskJobTrigger(name="trig-secret",
                                                             namespace=namespace)), 30)
    assert [e["status"] for e in events] == ["error"]
    assert "403" in events[0]["message"] and "forbidden" in events[0]["message"].lower()


async def test_a_startup_deadline_that_passed_while_nobody_watched_does_not_fire_falsely(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    """apache/airflow#40018: after a triggerer restart the deadline has long passed, but the
    runner is running: the real state, read again, says so, and the wait goes on."""
    import time

    from dask_kube_jobs import kube
    from dask_kube_jobs.contract.api_resources import DASKCLUSTERS
    from dask_kube_jobs.contract.cluster_status import scheduler_ready

    job = await create_job(local_control_plane.kubeconfig, namespace,
                           job_manifest("trig-late-start", SLOW))
    client = await kube.Client.connect(local_control_plane.kubeconfig)
    try:
        for _ in range(300):  # until the job started: its runner Pod runs, its scheduler is ready
            pods, _ = await client.list(kube.PODS, namespace,
                                        label_selector="dask.org/job-name=trig-late-start")
            cluster = await client.get(DASKCLUSTERS, namespace, "trig-late-start")
            if any((p.get("status") or {}).get("phase") == "Running" for p in pods) and \
                    cluster and scheduler_ready(cluster.get("status")):
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError("the job never started")
    finally:
        await client.close()
    events = await events_of(DaskJobTrigger(name="trig-late-start", namespace=namespace,
                                            uid=job["metadata"]["uid"],
                                            startup_deadline=time.time() - 60))
    assert [e["status"] for e in events] == ["success"], events
    assert events[0]["result"] == {"ticks": 8}
