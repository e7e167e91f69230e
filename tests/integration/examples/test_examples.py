"""Every manifest in examples/ applied with real kubectl to the local control plane, real Dask.

Files are applied as they are (``kubectl apply -f examples/<file>``) wherever this 2-CPU machine
allows; where a seed asks for more than it has, the test says so and patches the count after
loading, leaving the file as the seed wrote it. The commands examples/README.md shows are
these tests' steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dask_kube_jobs import KubeCluster
from dask_kube_jobs.contract import cluster_status
from dask_kube_jobs.local.testing import Kubectl

from ..operator.test_daskjob import gone, job_done, wait_for

pytestmark = pytest.mark.timeout(300)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
Obj = dict[str, Any]


def example(name: str) -> Path:
    path = EXAMPLES / name
    assert path.is_file(), path
    return path


def load(name: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(example(name).read_text()) if d]


def apply_file(kubectl: Kubectl, name: str) -> None:
    kubectl("apply", "-f", str(example(name)))


def delete_file(kubectl: Kubectl, name: str) -> None:
    kubectl("delete", "-f", str(example(name)), "--ignore-not-found", "--timeout=60s", check=False)


@pytest.fixture
def cleanup(kubectl: Kubectl) -> Iterator[Callable[[str], None]]:
    """Register an example file to delete (with everything it made) when the test ends."""
    files: list[str] = []
    yield files.append
    for name in reversed(files):
        delete_file(kubectl, name)


def pods(kubectl: Kubectl, selector: str) -> list[Obj]:
    items = kubectl("get", "pods", "-l", selector, "-o", "json").json()["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def ready(pod: Obj) -> bool:
    return pod["status"].get("phase") == "Running" and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def ready_workers(kubectl: Kubectl, group: str, n: int, timeout: float = 120) -> list[Obj]:
    """Wait until ``group`` has exactly ``n`` worker Pods, all ready; returns them."""
    def probe() -> tuple[list[Obj]] | None:  # a tuple, so that zero workers is truthy too
        found = pods(kubectl, f"dask.org/workergroup-name={group}")
        return (found,) if len(found) == n and all(ready(p) for p in found) else None
    try:
        return wait_until(f"{n} ready workers in {group}", probe, timeout)[0]  # type: ignore[no-any-return]
    except AssertionError:
        states = [(p["metadata"]["name"], p["status"].get("phase")) for p in
                  pods(kubectl, f"dask.org/workergroup-name={group}")]
        raise AssertionError(f"{group} never had {n} ready workers: {states}") from None


def cluster_running(kubectl: Kubectl, name: str, workers: int, timeout: float = 120) -> Obj:
    return wait_for(kubectl, "daskcluster", name, lambda o: cluster_status.scheduler_ready(o.get("status"))
                    and o["status"].get("readyWorkers") == workers, timeout=timeout)


def run_client(kubectl: Kubectl, cluster: str, script: str, *args: str) -> str:
    """Run a Dask client in a subprocess against the cluster's scheduler Pod; returns stdout."""
    ip = kubectl("get", "pod", f"{cluster}-scheduler", "-o", "jsonpath={.status.podIP}").stdout
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script), f"tcp://{ip}:8786", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def events(kubectl: Kubectl, **fields: str) -> list[Obj]:
    selector = ",".join(f"{k}={v}" for k, v in fields.items())
    return kubectl("get", "events", "--field-selector", selector, "-o", "json").json()["items"]  # type: ignore[no-any-return]


SUM = """
    import sys
    from dask.distributed import Client
    import dask.array as da
    client = Client(sys.argv[1], timeout=30)
    client.wait_for_workers(int(sys.argv[2]), timeout=60)
    total = int(da.ones((2000, 2000), chunks=(500, 500)).sum().compute())
    print(f"total={total} workers={len(client.scheduler_info()['workers'])}")
"""


# -- 1. the migration guide's DaskCluster (seed 000) ---------------------------------------------
def test_migration_guide_cluster(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("migration-cluster.yaml")
    apply_file(kubectl, "migration-cluster.yaml")  # exactly as the guide prints it
    assert kubectl("get", "daskcluster", "example", "-o", "jsonpath={.metadata.labels.foo}").stdout == "bar"
    wait_until("the scheduler to be ready", lambda: [p for p in pods(
        kubectl, "dask.org/cluster-name=example,dask.org/component=scheduler") if ready(p)])
    # Each worker asks for 2 CPUs; this node has 2, so one worker runs and the other waits with
    # kube-scheduler's reason, as it would on a 2-CPU node of a real cluster.
    node_cpu = kubectl("get", "nodes", "-o", "jsonpath={.items[0].status.allocatable.cpu}").stdout
    if node_cpu == "2":
        def cpu_bound() -> bool:
            workers = pods(kubectl, "dask.org/workergroup-name=example-default")
            pending = [p for p in workers if p["status"].get("phase") == "Pending" and any(
                c["type"] == "PodScheduled" and "Insufficient cpu" in c.get("message", "")
                for c in p["status"].get("conditions", []))]
            # never both running; usually one runs (unless another test's Pods still hold CPU)
            return len(workers) == 2 and len(pending) >= 1 and sum(map(ready, workers)) <= 1
        wait_until("a worker Pending with 'Insufficient cpu'", cpu_bound)
        kubectl("scale", "daskworkergroup", "example-default", "--replicas=1")
        replicas = 1
    else:
        replicas = 2
    workers = ready_workers(kubectl, "example-default", replicas)
    cluster = cluster_running(kubectl, "example", replicas)
    assert cluster["status"]["schedulerAddress"].startswith("tcp://example-scheduler.")
    worker = workers[0]
    container = worker["spec"]["containers"][0]
    assert worker["spec"]["restartPolicy"] == "Never"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "6G"}
    assert {"name": "EXTRA_PIP_PACKAGES", "value": "git+https://github.com/dask/distributed"} in container["env"]
    # the retired `dask-worker` / `dask-scheduler` spellings ran as `dask worker` / `dask scheduler`
    assert any(e["reason"] == "DeprecatedCommand" and "dask worker" in e["message"]
               for e in events(kubectl, **{"involvedObject.name": worker["metadata"]["name"]}))
    svc = kubectl("get", "svc", "example-scheduler", "-o", "json").json()
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [8786, 8787]
    out = run_client(kubectl, "example", SUM, str(replicas))
    assert f"total=4000000 workers={replicas}" in out
    # cascade deletion: deleting the DaskCluster removes its group, Pods and Service
    kubectl("delete", "-f", str(example("migration-cluster.yaml")), "--timeout=60s")
    assert gone(kubectl, "daskworkergroup", "example-default")
    assert gone(kubectl, "svc", "example-scheduler")
    wait_until("the Pods to go", lambda: not pods(kubectl, "dask.org/cluster-name=example"), 60)


# -- 2. KubeCluster-style cluster + DaskAutoscaler (seed 004) ------------------------------------
def test_autoscaled_cluster(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("autoscaled-cluster.yaml")
    cluster_doc, autoscaler_doc = load("autoscaled-cluster.yaml")
    assert (cluster_doc["kind"], autoscaler_doc["kind"]) == ("DaskCluster", "DaskAutoscaler")
    minimum, maximum = autoscaler_doc["spec"]["minimum"], autoscaler_doc["spec"]["maximum"]
    assert (minimum, maximum) == (1, 100)
    # The announcement's printout carries the obsolete spec.worker.cluster: it applies unchanged
    # under kubectl's strict validation (the CRD accepts and ignores it).
    assert cluster_doc["spec"]["worker"]["cluster"] == "my-cluster"
    strict = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-",
                     input=json.dumps(cluster_doc), check=False)
    assert strict.returncode == 0, strict.stderr
    apply_file(kubectl, "autoscaled-cluster.yaml")
    wait_for(kubectl, "daskcluster", "my-cluster", lambda o: (o.get("status") or {}).get("phase") == "Running")
    scheduler = kubectl("get", "pod", "my-cluster-scheduler", "-o", "json").json()
    assert {"name": "FOO", "value": "bar"} in scheduler["spec"]["containers"][0]["env"]

    def decided(o: Obj) -> bool:
        status = o.get("status") or {}
        return status.get("workerGroup") == "my-cluster-default" and "to" in (status.get("lastDecision") or {})
    status = wait_for(kubectl, "daskautoscaler", "my-cluster", decided, timeout=90)["status"]
    assert minimum <= status["lastDecision"]["to"] <= maximum
    assert status["lastDecision"]["reason"]

    def group_replicas() -> int:
        return int(kubectl("get", "daskworkergroup", "my-cluster-default",
                           "-o", "jsonpath={.spec.worker.replicas}").stdout)
    assert minimum <= group_replicas() <= maximum
    # An idle scheduler wants no workers, so the group shrinks to the minimum. The default
    # stabilization window is 60 s; shorten it (our optional field) to see it happen quickly.
    kubectl("patch", "daskautoscaler", "my-cluster", "--type=merge", "-p",
            json.dumps({"spec": {"intervalSeconds": 1, "scaleDownStabilizationSeconds": 3}}))
    wait_until("the idle cluster to shrink to the minimum", lambda: group_replicas() == minimum, 90)
    ready_workers(kubectl, "my-cluster-default", minimum)
    status = wait_for(kubectl, "daskautoscaler", "my-cluster",
                      lambda o: (o.get("status") or {}).get("currentWorkers") == minimum)["status"]
    assert status["lastDecision"]["to"] == minimum
    assert any(e["reason"] == "Scaled" for e in events(
        kubectl, **{"involvedObject.name": "my-cluster", "involvedObject.kind": "DaskAutoscaler"}))
    out = run_client(kubectl, "my-cluster", SUM, str(minimum))
    assert f"total=4000000 workers={minimum}" in out


# -- 3. the RAPIDS GPU cluster (seed 003) on a machine with no GPU --------------------------------
def test_rapids_gpu_cluster_waits_for_a_gpu(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    node = kubectl("get", "nodes", "-o", "json").json()["items"][0]
    if "nvidia.com/gpu" in node["status"].get("allocatable", {}):
        pytest.skip("this machine has GPUs; the example would really run")
    cleanup("rapids-gpu-cluster.yaml")
    apply_file(kubectl, "rapids-gpu-cluster.yaml")
    # the scheduler needs no GPU: it runs and becomes ready
    wait_until("the scheduler to be ready", lambda: [p for p in pods(
        kubectl, "dask.org/cluster-name=rapids-dask-cluster,dask.org/component=scheduler") if ready(p)])
    reason = "Insufficient nvidia.com/gpu"

    def unschedulable() -> list[Obj] | None:
        workers = pods(kubectl, "dask.org/workergroup-name=rapids-dask-cluster-default")
        stuck = [p for p in workers if p["status"].get("phase") == "Pending" and any(
            c["type"] == "PodScheduled" and c["status"] == "False" and c.get("reason") == "Unschedulable"
            and reason in c.get("message", "") for c in p["status"].get("conditions", []))]
        return workers if len(workers) == 2 and len(stuck) == 2 else None
    workers = wait_until("both GPU workers Pending with the scheduler's reason", unschedulable)
    for pod in workers:
        name = pod["metadata"]["name"]
        assert pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
        assert not pod["spec"].get("nodeName")
        assert not pod["status"].get("containerStatuses")  # nothing was started
        failed = wait_until(f"a FailedScheduling Event for {name}", lambda name=name: [
            e for e in events(kubectl, **{"involvedObject.name": name, "reason": "FailedScheduling"})
            if reason in e["message"]])
        assert failed[0]["type"] == "Warning"
        assert "0/1 nodes are available: 1 Insufficient nvidia.com/gpu." in failed[0]["message"]
    cluster = kubectl("get", "daskcluster", "rapids-dask-cluster", "-o", "json").json()
    assert (cluster.get("status") or {}).get("readyWorkers", 0) == 0
    # still Pending a little later: nothing pretends a GPU appeared
    time.sleep(3)
    assert all(p["status"].get("phase") == "Pending"
               for p in pods(kubectl, "dask.org/workergroup-name=rapids-dask-cluster-default"))


# -- 4. the upstream-shaped DaskJob (seed 004's DaskJob) ------------------------------------------
def test_simple_job(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("simple-job.yaml")
    apply_file(kubectl, "simple-job.yaml")
    job = wait_for(kubectl, "daskjob", "simple-job", job_done, timeout=180)
    status = job["status"]
    assert status["jobStatus"] == "Successful", status
    assert status["exitCode"] == 0
    log = kubectl("logs", status["jobRunnerPodName"]).stdout
    assert "computed on 2 workers" in log and "sum=" in log, log
    assert gone(kubectl, "daskcluster", "simple-job")
    row = kubectl("get", "daskjob", "simple-job").stdout.splitlines()[1].split()
    assert row[:2] == ["simple-job", "Successful"]


# -- 5. a failing DaskJob ---------------------------------------------------------------------------
def test_failing_job(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("failing-job.yaml")
    apply_file(kubectl, "failing-job.yaml")
    job = wait_for(kubectl, "daskjob", "failing-job", job_done, timeout=180)
    status = job["status"]
    assert status["jobStatus"] == "Failed", status
    assert status["exitCode"] == 3
    assert status["reason"] == "Error"
    assert "ERROR: no input rows to process, giving up" in status["logTail"]
    assert "input has 0 rows" in status["logTail"]  # it did reach its cluster first
    assert gone(kubectl, "daskcluster", "failing-job")
    row = kubectl("get", "daskjob", "failing-job").stdout.splitlines()[1].split()
    assert row[:2] == ["failing-job", "Failed"]
    assert any(e["type"] == "Warning" for e in events(
        kubectl, **{"involvedObject.name": "failing-job", "involvedObject.kind": "DaskJob"}))


# -- 6. two worker groups ---------------------------------------------------------------------------
ON_HIGHMEM = """
    import sys
    from dask.distributed import Client, get_worker
    client = Client(sys.argv[1], timeout=30)
    client.wait_for_workers(2, timeout=60)
    where = lambda i: get_worker().name
    big = client.gather([client.submit(where, i, resources={"MEMORY": 1e9}, pure=False) for i in range(4)])
    print("highmem-tasks-ran-on", sorted(set(big)))
"""


def test_two_worker_groups(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("two-worker-groups.yaml")
    cluster_doc, group_doc = load("two-worker-groups.yaml")
    assert group_doc["kind"] == "DaskWorkerGroup" and group_doc["spec"]["cluster"] == "two-groups"
    apply_file(kubectl, "two-worker-groups.yaml")
    default = ready_workers(kubectl, "two-groups-default", 1)
    highmem = ready_workers(kubectl, "two-groups-highmem", 1)
    cluster_running(kubectl, "two-groups", 2)
    assert default[0]["metadata"]["labels"]["example.dask.org/memory-class"] == "standard"
    assert highmem[0]["metadata"]["labels"]["example.dask.org/memory-class"] == "highmem"
    for pod in default + highmem:
        assert pod["metadata"]["labels"]["dask.org/cluster-name"] == "two-groups"
    assert default[0]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "1Gi"}
    assert highmem[0]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "2Gi"}
    owner = kubectl("get", "daskworkergroup", "two-groups-highmem", "-o", "json").json()["metadata"]["ownerReferences"]
    assert owner[0]["kind"] == "DaskCluster" and owner[0]["name"] == "two-groups"
    # tasks that ask for the MEMORY resource run only on the highmem worker
    out = run_client(kubectl, "two-groups", ON_HIGHMEM)
    assert f"highmem-tasks-ran-on ['{highmem[0]['metadata']['name']}']" in out, out
    # each group scales on its own
    kubectl("scale", "daskworkergroup", "two-groups-highmem", "--replicas=0")
    ready_workers(kubectl, "two-groups-highmem", 0)
    assert [p["metadata"]["name"] for p in ready_workers(kubectl, "two-groups-default", 1)] == \
        [default[0]["metadata"]["name"]]
    # deleting the cluster alone takes the extra group with it
    kubectl("delete", "daskcluster", "two-groups", "--timeout=60s")
    assert gone(kubectl, "daskworkergroup", "two-groups-highmem")
    wait_until("the Pods to go", lambda: not pods(kubectl, "dask.org/cluster-name=two-groups"), 60)


# -- 7. runner.py in a ConfigMap, returning a result ----------------------------------------------
def test_result_job_runs_runner_py(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    configmap, job_doc = load("result-job.yaml")
    assert configmap["kind"] == "ConfigMap" and job_doc["kind"] == "DaskJob"
    assert configmap["data"]["runner.py"] == example("runner.py").read_text(), \
        "examples/result-job.yaml must embed examples/runner.py verbatim"
    cleanup("result-job.yaml")
    apply_file(kubectl, "result-job.yaml")
    job = wait_for(kubectl, "daskjob", "result-job", job_done, timeout=180)
    status = job["status"]
    log = kubectl("logs", status["jobRunnerPodName"]).stdout
    assert status["jobStatus"] == "Successful", (status, log)
    assert "all workers took part; result recorded" in log, log
    result = status["result"]
    result = json.loads(result) if isinstance(result, str) else result
    assert result["sum"] == 2 * 4000 * 4000 and result["workers"] == 2
    assert len(result["chunks"]) == 2 and all(n > 0 for n in result["chunks"].values()), result
    assert sum(result["chunks"].values()) == 16
    assert all(name.startswith("result-job-default-") for name in result["chunks"])
    assert gone(kubectl, "daskcluster", "result-job")


# -- 8. a DaskJob on an existing cluster (spec.clusterRef) ------------------------------------------
def test_job_on_shared_cluster(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cluster_doc, job_doc = load("job-on-shared-cluster.yaml")
    assert job_doc["spec"]["clusterRef"] == {"name": cluster_doc["metadata"]["name"]}
    assert "cluster" not in job_doc["spec"]
    cleanup("job-on-shared-cluster.yaml")
    apply_file(kubectl, "job-on-shared-cluster.yaml")  # the job may start waiting for its cluster
    job = wait_for(kubectl, "daskjob", "sum-on-shared", job_done, timeout=180)
    status = job["status"]
    log = kubectl("logs", status["jobRunnerPodName"]).stdout
    assert status["jobStatus"] == "Successful", (status, log)
    assert status["clusterName"] == "shared"
    ns = kubectl("get", "daskjob", "sum-on-shared", "-o", "jsonpath={.metadata.namespace}").stdout
    assert f"sum=5050 on tcp://shared-scheduler.{ns}.svc.cluster.local:8786" in log, log
    # nothing was made for the job, and the job's end removed nothing of the shared cluster
    assert kubectl("get", "daskclusters", "-o", "name").stdout.split() == \
        ["daskcluster.kubernetes.dask.org/shared"]
    cluster = kubectl("get", "daskcluster", "shared", "-o", "json").json()
    assert cluster_status.scheduler_ready(cluster["status"]) and not cluster["metadata"].get("deletionTimestamp")
    assert cluster["status"]["readyWorkers"] == 1
    reasons = [e["reason"] for e in events(kubectl, **{"involvedObject.name": "sum-on-shared"})]
    assert "ClusterCreated" not in reasons and "ClusterDeleted" not in reasons, reasons


# -- a DaskJob whose cluster is a DaskClusterProfile's -----------------------------------------------
def test_job_with_profile(kubectl: Kubectl, cleanup: Callable[[str], None]) -> None:
    cleanup("profile.yaml")
    cleanup("job-with-profile.yaml")
    apply_file(kubectl, "profile.yaml")
    apply_file(kubectl, "job-with-profile.yaml")
    job = wait_for(kubectl, "daskjob", "job-with-profile", job_done, timeout=180)
    status = job["status"]
    assert status["jobStatus"] == "Successful", status
    assert status["profile"]["name"] == "standard"
    assert status["profile"]["options"] == {"workers": 1, "worker_memory": "768Mi",
                                            "image": "ghcr.io/dask/dask:latest"}
    log = kubectl("logs", status["jobRunnerPodName"]).stdout
    # the profile's env reached the worker; one worker, as the option asked
    assert "sum=328350 on 1 workers, work stealing {'True'}" in log, log


# -- 9. JupyterLab on the scheduler, behind a token from a Secret ---------------------------------
def test_cluster_with_jupyter_asks_for_the_token(kubectl: Kubectl, namespace: str,
                                                 cleanup: Callable[[str], None]) -> None:
    secret, cluster_doc = load("cluster-with-jupyter.yaml")
    token = json.loads(secret["stringData"]["jupyter_server_config.json"])[
        "PasswordIdentityProvider"]["token"]
    cleanup("cluster-with-jupyter.yaml")
    apply_file(kubectl, "cluster-with-jupyter.yaml")
    # attached by name, as the file's comment says; it reads --jupyter from the scheduler's args
    with KubeCluster.from_name("jupyter-cluster", namespace=namespace, quiet=True,
                               kubeconfig=kubectl.kubeconfig) as cluster, \
            httpx.Client(timeout=30) as http:
        link = cluster.jupyter_link
        api = link.removesuffix("lab") + "api/status"
        login = http.get(link)  # no token: Jupyter's login page, nothing of the lab
        assert login.status_code == 302 and "/jupyter/login" in login.headers["location"], login
        assert http.get(api).status_code == 403
        assert http.get(f"{link}?token=wrong").status_code == 302
        page = http.get(f"{link}?token={token}")
        assert page.status_code == 200 and "<title>JupyterLab</title>" in page.text, page.text[:300]
        assert http.get(api, headers={"Authorization": f"token {token}"}).json()["started"]
        # the token guards Jupyter only: the dashboard stays as open as on any Dask cluster
        assert http.get(cluster.dashboard_link.replace("/status", "/health")).text == "ok"
