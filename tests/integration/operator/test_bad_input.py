"""Every DaskJob and DaskCluster of examples/ and docs/, mutated the ways users get them wrong.

Each mutated object must either be refused at admission with the field named, or reach a
terminal or explained state within a bounded time on default settings: a DaskJob Failed with
a specific reason (or waiting with the reason in its status), a DaskCluster with a condition
in the API server's or the container's words. All of them are created at once, then deleted,
and nothing may be left behind: no Pods, Services or worker groups.
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from dask_kube_jobs.local.testing import Kubectl

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[3]
Obj = dict[str, Any]


def documented_manifests() -> list[tuple[str, Obj]]:
    """(where, manifest) of each DaskJob/DaskCluster in examples/*.yaml and docs' yaml blocks."""
    found: list[tuple[str, Obj]] = []
    texts = [(p.name, p.read_text()) for p in sorted((REPO / "examples").glob("*.yaml"))]
    for page in sorted((REPO / "docs").glob("*.md")):
        for i, block in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)):
            texts.append((f"{page.name}#{i}", block))
    for where, text in texts:
        try:
            docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
        except yaml.YAMLError:
            continue  # a values.yaml fragment or similar: not a manifest
        # A manifest naming a DaskClusterProfile is shaped by a profile this test does not
        # install (test_profiles.py and the examples' test run those, with their profile).
        found += [(where, d) for d in docs if d.get("kind") in ("DaskJob", "DaskCluster")
                  and "profile" not in (d.get("spec") or {})]
    return found


def documented_companions() -> list[Obj]:
    """The ConfigMaps and Secrets examples/*.yaml create beside their DaskJobs and DaskClusters
    (a scheduler that mounts one cannot start without it, mutated or not)."""
    return [d for p in sorted((REPO / "examples").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text())
            if isinstance(d, dict) and d.get("kind") in ("ConfigMap", "Secret")]


def cluster_spec_of(obj: Obj) -> Obj:
    spec = obj["spec"]
    return spec["cluster"]["spec"] if obj["kind"] == "DaskJob" else spec


def needs_gpu(pod_spec: Obj) -> bool:
    return "nvidia.com/gpu" in json.dumps(pod_spec)


# -- the mutations: (name, applies to, mutate, expected outcome) --------------------------------
def _runner_image(obj: Obj) -> None:
    obj["spec"]["job"]["spec"]["containers"][0]["image"] = ""


def _service_type(obj: Obj) -> None:
    cluster_spec_of(obj)["scheduler"].setdefault("service", {})["type"] = "Bogus"


def _worker_port(obj: Obj) -> None:
    cluster_spec_of(obj)["worker"]["spec"]["containers"][0]["ports"] = [{"containerPort": 70000}]


def _many_workers(obj: Obj) -> None:
    cluster_spec_of(obj)["worker"]["replicas"] = 1_000_000


def _scheduler_crash(obj: Obj) -> None:
    container = cluster_spec_of(obj)["scheduler"]["spec"]["containers"][0]
    container.pop("command", None)
    container["args"] = ["python", "-c", "import sys; print('no scheduler today'); sys.exit(7)"]


def job_failed(reason: str, words: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        st = obj.get("status") or {}
        return st.get("jobStatus") == "Failed" and st.get("reason") == reason and \
            words in (st.get("message") or "")
    return check


def job_waits(reason: str, words: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        st = obj.get("status") or {}
        return st.get("reason") == reason and words in (st.get("message") or "")
    return check


def cluster_condition(ctype: str, status: str, reason: str, words: str) -> Callable[[Obj], bool]:
    def check(obj: Obj) -> bool:
        return any(c.get("type") == ctype and c.get("status") == status and
                   c.get("reason") == reason and words in (c.get("message") or "")
                   for c in (obj.get("status") or {}).get("conditions") or [])
    return check


MUTATIONS: dict[str, tuple[Callable[[Obj], None], dict[str, Callable[[Obj], bool]]]] = {
    "runner-image": (_runner_image, {
        "DaskJob": job_failed("InvalidSpec", "spec.containers[0].image")}),
    "service-type": (_service_type, {
        "DaskJob": job_failed("InvalidSpec", "spec.type"),
        "DaskCluster": cluster_condition("Failed", "True", "InvalidSpec", "spec.type")}),
    "worker-port": (_worker_port, {
        "DaskJob": job_failed("InvalidSpec", "containerPort"),
        "DaskCluster": cluster_condition("Failed", "True", "InvalidSpec", "containerPort")}),
    "many-workers": (_many_workers, {
        "DaskJob": job_waits("LimitExceeded", "1000000"),
        "DaskCluster": cluster_condition("Admitted", "False", "LimitExceeded", "1000000")}),
    "scheduler-crash": (_scheduler_crash, {
        "DaskJob": job_failed("SchedulerFailed", "exited with code 7"),
        "DaskCluster": cluster_condition("SchedulerReady", "False", "SchedulerFailed",
                                         "exited with code 7 (Error); its log ends: "
                                         "no scheduler today")}),
}


def cases() -> list[tuple[str, str, Obj, Callable[[Obj], bool]]]:
    out = []
    for n, (where, manifest) in enumerate(documented_manifests()):
        for mutation, (mutate, expect) in MUTATIONS.items():
            check = expect.get(manifest["kind"])
            if check is None:
                continue
            if "clusterRef" in manifest["spec"]:
                # A job on an existing cluster has no cluster to break; its cluster is another
                # documented manifest, mutated on its own. Alone here, it waits for that cluster.
                if mutation != "runner-image":
                    continue
                check = job_waits("ClusterNotFound", "(spec.clusterRef) does not exist")
            elif mutation == "scheduler-crash" and needs_gpu(cluster_spec_of(manifest)["scheduler"]):
                continue  # its scheduler never starts on a machine without a GPU
            obj = copy.deepcopy(manifest)
            mutate(obj)
            obj["metadata"] = {"name": f"bad{n}-{mutation}"}
            out.append((f"{where}:{manifest['metadata']['name']}:{mutation}", obj["kind"], obj, check))
    return out


def test_the_documented_manifests_are_found() -> None:
    found = documented_manifests()
    kinds = {m["kind"] for _, m in found}
    assert kinds == {"DaskJob", "DaskCluster"} and len(found) >= 6, found


def test_every_documented_manifest_mutated_ends_or_says_why(kubectl: Kubectl) -> None:
    todo = cases()
    for companion in documented_companions():
        kubectl("create", "-f", "-", input=json.dumps(companion))
    # One kubectl per step, not one per object: 41 kubectl processes a second would load the
    # machine the operator under test shares. Each object is still created and read by name.
    items = [obj for _, _, obj, _ in todo]
    out = kubectl("create", "-f", "-", "-o", "name", check=False,
                  input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    created = set(out.stdout.split())
    refused = [obj["metadata"]["name"] for obj in items
               if f"{obj['kind'].lower()}.kubernetes.dask.org/{obj['metadata']['name']}" not in created]
    assert out.returncode == 0 and not refused, f"refused: {refused}\n{out.stderr}"
    pending = {label: (kind, obj["metadata"]["name"], check) for label, kind, obj, check in todo}
    last: dict[str, Obj] = {}
    deadline = time.monotonic() + 150
    while pending and time.monotonic() < deadline:
        listed = kubectl("get", "daskjobs,daskclusters", "-o", "json", check=False)
        if listed.returncode == 0:
            by_key = {(o["kind"], o["metadata"]["name"]): o for o in listed.json()["items"]}
            for label, (kind, name, check) in list(pending.items()):
                if (kind, name) in by_key:
                    last[label] = by_key[kind, name]
                    if check(last[label]):
                        del pending[label]
        time.sleep(1)
    assert not pending, "\n".join(
        f"{label}: {json.dumps((last.get(label) or {}).get('status'), indent=1)[:1500]}"
        for label in pending)

    kubectl("delete", "daskjobs,daskclusters", "--all", "--wait=false")
    deadline = time.monotonic() + 120
    left = ""
    while time.monotonic() < deadline:
        left = kubectl("get", "pods,services,daskworkergroups,daskclusters,daskjobs",
                       "-o", "name").stdout.strip()
        if not left:
            break
        time.sleep(1)
    assert not left, f"left behind after deletion:\n{left}"
