"""Volumes materialised per Pod and visible to the process at their mountPath."""

from __future__ import annotations

import json
import os

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .kubelet_support import apply, logs, pod, wait_phase

pytestmark = pytest.mark.kubectl

SHOW = """
import json, os, stat
def mode(p): return oct(stat.S_IMODE(os.stat(p).st_mode))
def ls(p): return sorted(n for n in os.listdir(p) if not n.startswith(".."))  # ..data as on k8s
out = {
  "cm": open("/etc/cfg/color").read(),
  "cm_items": ls("/etc/picked"),
  "renamed": open("/etc/picked/renamed.txt").read(),
  "renamed_mode": mode("/etc/picked/renamed.txt"),
  "secret": open("/etc/secret/password").read(),
  "secret_mode": mode("/etc/secret/password"),
  "sub": open("/etc/only-color").read(),
  "labels": open("/etc/podinfo/labels").read(),
  "name": open("/etc/podinfo/name").read(),
  "cpu": open("/etc/podinfo/cpu_limit").read(),
  "proj": ls("/etc/projected"),
  "token": open("/etc/projected/token").read().startswith("dkj."),
  "sa": ls("/var/run/secrets/kubernetes.io/serviceaccount"),
  "shared": open("/scratch/from-init").read(),
  "optional": ls("/etc/optional"),
}
try:
    open("/etc/cfg/new", "w")
    out["ro"] = False
except OSError:
    out["ro"] = True
print(json.dumps(out))
"""


def test_volumes_are_visible_at_their_mount_paths(kk: Kubectl) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
          "data": {"color": "blue", "size": "L"}}
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
           "stringData": {"password": "s3cr3t"}}
    volumes = [
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "picked", "configMap": {"name": "cfg", "defaultMode": 0o600,
                                         "items": [{"key": "size", "path": "renamed.txt",
                                                    "mode": 0o640}]}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "cpu_limit", "resourceFieldRef": {"containerName": "main",
                                                       "resource": "limits.cpu",
                                                       "divisor": "1m"}}]}},
        {"name": "proj", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}},
            {"configMap": {"name": "cfg", "items": [{"key": "color", "path": "color"}]}},
            {"secret": {"name": "sec"}}]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "opt", "configMap": {"name": "does-not-exist", "optional": True}},
    ]
    mounts = [
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
        {"name": "picked", "mountPath": "/etc/picked"},
        {"name": "sec", "mountPath": "/etc/secret"},
        {"name": "cfg", "mountPath": "/etc/only-color", "subPath": "color"},
        {"name": "info", "mountPath": "/etc/podinfo"},
        {"name": "proj", "mountPath": "/etc/projected"},
        {"name": "scratch", "mountPath": "/scratch"},
        {"name": "opt", "mountPath": "/etc/optional"},
    ]
    apply(kk, cm, sec, pod("vols", [{"name": "main", "command": ["python", "-c", SHOW],
                                     "volumeMounts": mounts,
                                     "resources": {"limits": {"cpu": "500m"}}}],
                           initContainers=[{"name": "prep", "command": [
                               "sh", "-c", "echo hello-from-init > /scratch/from-init"],
                               "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
                           volumes=volumes, restartPolicy="Never",
                           # the container's uid reads root's files of mode 0640 and 0400
                           # through fsGroup, which adds group read (0400 becomes 0440)
                           securityContext={"fsGroup": 4000},
                           meta={"labels": {"app": "demo", "tier": "gold"}}))
    st = wait_phase(kk, "vols", ("Succeeded", "Failed"), 40)
    out = json.loads(logs(kk, "vols").strip().splitlines()[-1])
    assert st["phase"] == "Succeeded"
    assert out["cm"] == "blue" and out["ro"] is True
    assert out["cm_items"] == ["renamed.txt"] and out["renamed"] == "L"
    assert out["renamed_mode"] == "0o640"
    # a root kubelet applies fsGroup (0400 + group read); one that is not cannot
    assert out["secret"] == "s3cr3t"
    assert out["secret_mode"] == ("0o440" if os.geteuid() == 0 else "0o400")
    assert out["sub"] == "blue"
    assert out["labels"] == 'app="demo"\ntier="gold"'
    assert out["name"] == "vols" and out["cpu"] == "500"
    assert out["proj"] == ["color", "password", "token"] and out["token"]
    assert out["sa"] == ["ca.crt", "namespace", "token"]
    assert out["shared"] == "hello-from-init\n"
    assert out["optional"] == []


def test_two_pods_mount_different_content_at_the_same_path(kk: Kubectl) -> None:
    objs = []
    for name in ("one", "two"):
        objs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c-{name}"},
                     "data": {"who": name}})
        objs.append(pod(f"p-{name}", [{"name": "c", "command": [
            "sh", "-c", "sleep 1; cat /etc/shared-path/who"],
            "volumeMounts": [{"name": "v", "mountPath": "/etc/shared-path"}]}],
            volumes=[{"name": "v", "configMap": {"name": f"c-{name}"}}], restartPolicy="Never"))
    apply(kk, *objs)
    for name in ("one", "two"):
        assert wait_phase(kk, f"p-{name}", ("Succeeded", "Failed"))["phase"] == "Succeeded"
        assert logs(kk, f"p-{name}").strip() == name
