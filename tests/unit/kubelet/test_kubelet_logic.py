"""Pure logic of the process kubelet: expansion, env resolution, quantities, back-off, phases,
volume writing and the launch prologue."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.contract.quantity import parse_quantity
from dask_kube_jobs.local.kubelet.container import StartError, prepare_argv
from dask_kube_jobs.local.kubelet.env import (
    ContainerConfigError,
    command_line,
    container_env,
    expand,
    process_env,
    service_env,
)
from dask_kube_jobs.local.kubelet.resources import format_resource_field
from dask_kube_jobs.local.kubelet.status import go_duration, pod_phase
from dask_kube_jobs.local.kubelet.volumes import (
    Mount,
    PodPaths,
    container_mounts,
    launch_script,
    write_atomic,
)


@pytest.mark.parametrize("text, expected", [
    ("$(A)", "a"),
    ("x$(A)y$(B)z", "xaybz"),
    ("$$(A)", "$(A)"),
    ("$$$(A)", "$a"),
    ("$(UNKNOWN)", "$(UNKNOWN)"),
    ("$(A", "$(A"),
    ("$A", "$A"),
    ("$", "$"),
    ("a$$b", "a$b"),
    ("$()", "$()"),
    ("$(A)$(A)", "aa"),
])
def test_expand_follows_kubernetes(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}) == expected


def test_service_env_variables() -> None:
    svc = {"metadata": {"name": "my-svc"},
           "spec": {"clusterIP": "10.0.0.5", "ports": [{"name": "http-web", "port": 80,
                                                         "protocol": "TCP"},
                                                        {"port": 53, "protocol": "UDP"}]}}
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}
    env = service_env([svc, headless])
    assert env["MY_SVC_SERVICE_HOST"] == "10.0.0.5"
    assert env["MY_SVC_SERVICE_PORT"] == "80"
    assert env["MY_SVC_SERVICE_PORT_HTTP_WEB"] == "80"
    assert env["MY_SVC_PORT"] == "tcp://10.0.0.5:80"
    assert env["MY_SVC_PORT_53_UDP"] == "udp://10.0.0.5:53"
    assert env["MY_SVC_PORT_53_UDP_PROTO"] == "udp"
    assert env["MY_SVC_PORT_80_TCP_ADDR"] == "10.0.0.5"
    assert not any(k.startswith("H_") for k in env)


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"a": "1"}},
            "spec": {"nodeName": "n", "serviceAccountName": "sa", **spec}}


async def _fetch_none(plural: str, ns: str, name: str) -> dict[str, Any] | None:
    return None


async def test_container_env_order_and_expansion() -> None:
    objects = {("configmaps", "cm"): {"data": {"X": "from-cm", "Y": "y"}},
               ("secrets", "s"): {"data": {"pw": base64.b64encode(b"hunter2").decode()}}}

    async def fetch(plural: str, ns: str, name: str) -> dict[str, Any] | None:
        assert ns == "ns"
        return objects.get((plural, name))

    container = {"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}}],
                 "env": [{"name": "X", "value": "override-$(Y)"},
                         {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                         {"name": "LBL", "valueFrom": {"fieldRef": {
                             "fieldPath": "metadata.labels['a']"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "REF", "value": "$(PW)/$(MISSING)"}]}
    env = await container_env(_pod(), container, pod_ip="127.244.0.9", host_ip="127.0.0.1",
                              allocatable={}, fetch=fetch, services=[])
    assert env["X"] == "override-y" and env["Y"] == "y"
    assert env["PW"] == "hunter2" and env["LBL"] == "1" and env["IP"] == "127.244.0.9"
    assert env["REF"] == "hunter2/$(MISSING)"


@pytest.mark.parametrize("ref, message", [
    ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
    ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
])
async def test_missing_sources_are_config_errors(ref: dict[str, Any], message: str) -> None:
    container = {"name": "c", "env": [{"name": "V", "valueFrom": ref}]}
    with pytest.raises(ContainerConfigError, match=message):
        await container_env(_pod(), container, pod_ip="", host_ip="", allocatable={},
                            fetch=_fetch_none, services=[])
    ref[next(iter(ref))]["optional"] = True
    env = await container_env(_pod(), container, pod_ip="", host_ip="", allocatable={},
                              fetch=_fetch_none, services=[])
    assert "V" not in env


async def test_service_links_can_be_disabled() -> None:
    svc = {"metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.1", "ports": [{"port": 1}]}}
    env = await container_env(_pod(enableServiceLinks=False), {"name": "c"}, pod_ip="",
                              host_ip="", allocatable={}, fetch=_fetch_none, services=[svc])
    assert env == {}


def test_process_env_base_and_pythonpath() -> None:
    env = process_env({"PYTHONPATH": "/user", "FOO": "1"}, hostname="h", home="/home/p", tmpdir="/t",
                      extra={"PYTHONPATH": "/shim", "KUBECONFIG": "/k"})
    assert env["PYTHONPATH"] == "/shim:/user"
    assert env["HOME"] == "/home/p" and env["HOSTNAME"] == "h" and env["KUBECONFIG"] == "/k"
    assert "KUBERNETES_SERVICE_HOST" not in env
    env = process_env({"PATH": "/only"}, hostname="h", home="/", tmpdir="/t", extra={})
    assert env["PATH"].endswith(":/only") and env["PATH"] != "/only"


def test_command_line_uses_args_without_command() -> None:
    assert command_line({"args": ["dask", "worker", "$(N)"]}, {"N": "w1"}) == ["dask", "worker", "w1"]
    assert command_line({"command": ["a"], "args": ["$$(N)"]}, {"N": "w1"}) == ["a", "$(N)"]


@pytest.mark.parametrize("value, expected", [
    ("500m", "0.5"), ("2", "2"), ("1Gi", str(2**30)), ("1G", "1000000000"), ("100Ki", "102400"),
    ("1e3", "1000"), (3, "3"),
])
def test_parse_quantity(value: Any, expected: str) -> None:
    assert parse_quantity(value) == parse_quantity(expected)


def test_resource_field_ref_rounds_up_and_defaults_to_allocatable() -> None:
    c = {"resources": {"limits": {"cpu": "250m", "memory": "1Gi"}}}
    assert format_resource_field("limits.cpu", c, None, {}) == "1"
    assert format_resource_field("limits.cpu", c, "1m", {}) == "250"
    assert format_resource_field("limits.memory", c, "1Mi", {}) == "1024"
    assert format_resource_field("limits.memory", {}, "1Ki", {"memory": "2048Ki"}) == "2048"
    assert format_resource_field("requests.cpu", {}, None, {}) == "0"


@pytest.mark.parametrize("seconds, text", [
    (10, "10s"), (20, "20s"), (80, "1m20s"), (160, "2m40s"), (300, "5m0s"), (0.5, "500ms"),
])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def _st(state: dict[str, Any], last: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"state": state, "lastState": last or {}}


RUN = {"running": {}}
OK = {"terminated": {"exitCode": 0}}
BAD = {"terminated": {"exitCode": 1}}
WAIT = {"waiting": {"reason": "ContainerCreating"}}
LOOP = {"waiting": {"reason": "CrashLoopBackOff"}}


@pytest.mark.parametrize("policy, statuses, phase", [
    ("Always", [_st(WAIT)], "Pending"),
    ("Always", [_st(RUN), _st(WAIT)], "Pending"),
    ("Always", [_st(RUN)], "Running"),
    ("Always", [_st(LOOP, BAD)], "Running"),
    ("Never", [_st(OK), _st(OK)], "Succeeded"),
    ("Never", [_st(OK), _st(BAD)], "Failed"),
    ("Never", [_st(RUN), _st(BAD)], "Running"),
    ("OnFailure", [_st(OK)], "Succeeded"),
    ("OnFailure", [_st(LOOP, BAD)], "Running"),
])
def test_pod_phase(policy: str, statuses: list[dict[str, Any]], phase: str) -> None:
    assert pod_phase(policy, True, False, statuses) == phase


def test_pod_phase_init() -> None:
    assert pod_phase("Never", False, False, [_st(WAIT)]) == "Pending"
    assert pod_phase("Never", False, True, [_st(WAIT)]) == "Failed"


def test_write_atomic_swaps_and_prunes(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert (target / "a").read_bytes() == b"1" and (target / "dir" / "b").read_bytes() == b"2"
    assert stat.S_IMODE((target / "dir" / "b").stat().st_mode) == 0o600
    first = os.readlink(target / "..data")
    write_atomic(target, {"a": (b"1", 0o644), "dir/b": (b"2", 0o600)})
    assert os.readlink(target / "..data") == first  # unchanged content: no rewrite
    write_atomic(target, {"a": (b"new", 0o644)})
    assert (target / "a").read_bytes() == b"new"
    assert not (target / "dir").exists() and not (target / first).exists()


def test_prepare_argv(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("tool", "dask"):
        exe = bindir / name
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    env = {"PATH": str(bindir)}
    assert prepare_argv(["tool", "x"], env, "/", [], "symlink") == (["tool", "x"], None)
    argv, warning = prepare_argv(["dask-worker", "tcp://s:8786"], env, "/", [], "symlink")
    assert argv == ["dask", "worker", "tcp://s:8786"] and warning and "dask worker" in warning
    with pytest.raises(StartError, match='exec: "missing": executable file not found in \\$PATH'):
        prepare_argv(["missing"], env, "/", [], "symlink")
    with pytest.raises(StartError, match="no command"):
        prepare_argv([], env, "/", [], "symlink")
    # a program inside a volume is found where the volume will be mounted
    mounted = [Mount(bindir, "/opt/scripts", True, False)]
    assert prepare_argv(["/opt/scripts/tool"], env, "/", mounted, "namespace")[0] == \
        ["/opt/scripts/tool"]


def test_container_mounts_include_termination_log_and_service_account(tmp_path: Path) -> None:
    paths = PodPaths(tmp_path / "pods" / "ns_p_u")
    vols = {"data": tmp_path / "data"}
    (tmp_path / "data").mkdir()
    mounts = container_mounts({"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/data", "readOnly": True}]}, vols, paths, sa_mounted=True)
    targets = {m.target: m for m in mounts}
    assert targets["/data"].read_only
    assert targets["/dev/termination-log"].source == paths.termination("c")
    assert targets["/var/run/secrets/kubernetes.io/serviceaccount"].read_only


def test_launch_script_runs_command_in_workdir(tmp_path: Path) -> None:
    err = tmp_path / "err"
    script = launch_script([], "symlink", cgroup=None, workdir=str(tmp_path / "wd"),
                           error_file=err)
    out = subprocess.run(["/bin/sh", "-c", script, "x", "sh", "-c", "pwd; echo $0 \"$1\"",
                          "arg0", "a b"], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [str(tmp_path / "wd"), "arg0 a b"]
