"""Containers as processes: env, command expansion, exit codes and reasons, restarts and
back-off, termination messages, retired Dask commands -- observed through kubectl as on a real
cluster."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.testing import Kubectl

from .kubelet_support import (
    apply,
    events,
    has_event,
    logs,
    pod,
    status_of,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.kubectl

PRINT_ENV = "import json, os, sys; print(json.dumps(dict(os.environ))); print(json.dumps(sys.argv[1:]))"


def test_env_from_every_source(kk: Kubectl) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
          "data": {"color": "blue", "size": "L", "1bad": "skipped"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"},
              "stringData": {"password": "s3cr3t", "user": "bob", "9lives": "x"}}
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "my-db"},
           "spec": {"selector": {"app": "db"}, "ports": [{"name": "pg", "port": 5432}]}}
    container = {
        "name": "main", "command": ["python", "-c", PRINT_ENV],
        "args": ["$(GREETING)-$(MY_POD)", "$$(GREETING)", "$(UNKNOWN)", "plain"],
        "resources": {"limits": {"memory": "256Mi", "cpu": "1500m"}},
        "env": [
            {"name": "GREETING", "value": "hello"},
            {"name": "COMBINED", "value": "$(GREETING) world $(cfg_color)"},
            {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "MY_LABEL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
            {"name": "MY_ANN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
            {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "MY_SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory",
                                                                  "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "OPTIONAL", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope",
                                                                "optional": True}}},
        ],
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "cfg_"},
                    {"secretRef": {"name": "sec"}}],
    }
    apply(kk, cm, secret, svc, pod("env", [container], restartPolicy="Never",
                                   meta={"labels": {"tier": "gold"}, "annotations": {"note": "n1"}}))
    st = wait_phase(kk, "env", ("Succeeded", "Failed"))
    assert st["phase"] == "Succeeded", st
    env_line, argv_line = logs(kk, "env").strip().splitlines()[-2:]
    env, argv = json.loads(env_line), json.loads(argv_line)
    p = kk("get", "pod", "env", "-o", "json").json()
    assert argv == ["hello-env", "$(GREETING)", "$(UNKNOWN)", "plain"]
    assert env["COMBINED"] == "hello world blue"
    assert env["MY_POD"] == "env" and env["MY_NS"] == kk.namespace
    assert env["MY_UID"] == p["metadata"]["uid"]
    assert env["MY_LABEL"] == "gold" and env["MY_ANN"] == "n1"
    assert env["MY_NODE"] == "dkj-local-node" and env["MY_SA"] == "default"
    assert env["MY_IP"] == p["status"]["podIP"] and env["HOST_IP"] == "127.0.0.1"
    assert env["MEM_MI"] == "256" and env["CPU"] == "2"
    assert env["COLOR"] == "blue" and env["PASSWORD"] == "s3cr3t"
    assert "OPTIONAL" not in env
    assert env["cfg_color"] == "blue" and env["cfg_size"] == "L" and env["cfg_1bad"] == "skipped"
    assert env["user"] == "bob" and env["password"] == "s3cr3t" and "9lives" not in env
    assert env["MY_DB_SERVICE_HOST"] == env["MY_DB_PORT_5432_TCP_ADDR"]
    assert env["MY_DB_SERVICE_PORT"] == "5432" and env["MY_DB_SERVICE_PORT_PG"] == "5432"
    assert env["HOSTNAME"] == "env"
    assert "KUBERNETES_SERVICE_HOST" not in env
    assert env["KUBECONFIG"].endswith("/kubeconfig")
    assert env["PATH"].split(":")[0].endswith("/bin")


def test_missing_secret_key_is_a_config_error_until_fixed(kk: Kubectl) -> None:
    container = {"name": "main", "command": ["python", "-c", "import os; print(os.environ['K'])"],
                 "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "later", "key": "k"}}}]}
    apply(kk, pod("cfgerr", [container], restartPolicy="Never"))
    waiting = wait_for(lambda: (status_of(kk, "cfgerr", "main").get("state") or {}).get("waiting", {})
                       .get("reason") == "CreateContainerConfigError" and
                       status_of(kk, "cfgerr", "main")["state"]["waiting"], 20, "config error")
    assert waiting["message"] == 'secret "later" not found'
    assert status_of(kk, "cfgerr")["phase"] == "Pending"
    assert "CreateContainerConfigError" in kk("get", "pod", "cfgerr").stdout
    apply(kk, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"},
               "stringData": {"other": "x"}})
    wait_for(lambda: "couldn't find key k in Secret" in json.dumps(status_of(kk, "cfgerr", "main")),
             20, "missing key message")
    assert f"couldn't find key k in Secret {kk.namespace}/later" in \
        status_of(kk, "cfgerr", "main")["state"]["waiting"]["message"]
    kk("patch", "secret", "later", "--type=merge", "-p", '{"stringData": {"k": "v"}}')
    assert wait_phase(kk, "cfgerr", ("Succeeded",), 20)
    assert logs(kk, "cfgerr").strip() == "v"


def test_an_unparsable_image_waits_as_invalid_image_name(kk: Kubectl) -> None:
    container = {"name": "main", "image": "Dask/Dask:latest",
                 "command": ["python", "-c", "print('should not run')"]}
    apply(kk, pod("badimage", [container], restartPolicy="Never"))
    waiting = wait_for(lambda: (status_of(kk, "badimage", "main").get("state") or {})
                       .get("waiting", {}).get("reason") == "InvalidImageName"
                       and status_of(kk, "badimage", "main")["state"]["waiting"], 20,
                       "InvalidImageName")
    assert waiting["message"] == (
        'Failed to apply default image tag "Dask/Dask:latest": couldn\'t parse image name '
        '"Dask/Dask:latest": invalid reference format: repository name (Dask) must be '
        "lowercase")
    assert wait_for(lambda: has_event(kk, "badimage", "InspectFailed", "Dask/Dask"), 20,
                    "the InspectFailed event")
    assert status_of(kk, "badimage")["phase"] == "Pending"
    assert "InvalidImageName" in kk("get", "pod", "badimage").stdout


def test_exit_codes_and_reasons(kk: Kubectl) -> None:
    apply(kk, pod("codes", [
        {"name": "ok", "command": ["sh", "-c", "exit 0"]},
        {"name": "fail", "command": ["sh", "-c", "exit 3"]},
        # "$$" is Kubernetes' escape for "$": the shell sees "kill -TERM $$"
        {"name": "signalled", "command": ["sh", "-c", "kill -TERM $$$$; sleep 5"]},
        {"name": "missing", "command": ["no-such-program-xyz", "--flag"]},
    ], restartPolicy="Never"))
    st = wait_phase(kk, "codes", ("Failed",), 40)
    by_name = {c["name"]: c["state"].get("terminated") for c in st["containerStatuses"]}
    assert by_name["ok"]["exitCode"] == 0 and by_name["ok"]["reason"] == "Completed"
    assert by_name["fail"]["exitCode"] == 3 and by_name["fail"]["reason"] == "Error"
    assert by_name["signalled"]["exitCode"] == 143 and by_name["signalled"]["reason"] == "Error"
    missing = by_name["missing"]
    assert missing["exitCode"] == 127 and missing["reason"] == "StartError"
    assert 'exec: "no-such-program-xyz": executable file not found in $PATH' in missing["message"]
    assert has_event(kk, "codes", "Failed", "no-such-program-xyz")
    assert "containerID" in st["containerStatuses"][0]


def test_oom_killed_with_memory_limit(kk: Kubectl) -> None:
    hog = "x = bytearray(400 * 1024 * 1024)\nx[::4096] = b'a' * len(x[::4096])\nprint('survived')"
    apply(kk, pod("oom", [{"name": "hog", "command": ["python", "-c", hog],
                           "resources": {"limits": {"memory": "100Mi"}}}], restartPolicy="Never"))
    st = wait_phase(kk, "oom", ("Failed", "Succeeded"), 60)
    t = st["containerStatuses"][0]["state"]["terminated"]
    assert t["reason"] == "OOMKilled" and t["exitCode"] == 137, t


def test_restart_back_off_and_crash_loop(kk: Kubectl) -> None:
    apply(kk, pod("crash", [{"name": "c", "command": ["sh", "-c", "echo run; exit 1"]}],
                  restartPolicy="Always"))
    cs = wait_for(lambda: (lambda s: s if (s.get("state") or {}).get("waiting", {}).get("reason")
                           == "CrashLoopBackOff" else None)(status_of(kk, "crash", "c")),
                  30, "CrashLoopBackOff")
    uid = kk("get", "pod", "crash", "-o", "jsonpath={.metadata.uid}").stdout
    msg = cs["state"]["waiting"]["message"]
    assert msg.startswith("back-off ") and f"restarting failed container=c pod=crash_{kk.namespace}({uid})" in msg
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert cs["restartCount"] >= 1
    assert status_of(kk, "crash")["phase"] == "Running"
    assert "CrashLoopBackOff" in kk("get", "pod", "crash").stdout
    wait_for(lambda: status_of(kk, "crash", "c").get("restartCount", 0) >= 3, 30, "restarts")
    assert has_event(kk, "crash", "BackOff", "Back-off restarting failed container c")
    assert "run" in logs(kk, "crash", "--previous")


def test_on_failure_restarts_until_success(kk: Kubectl) -> None:
    script = "test -f $HOME/ran && exit 0; touch $HOME/ran; exit 4"
    apply(kk, pod("onfail", [{"name": "c", "command": ["sh", "-c", script]}],
                  restartPolicy="OnFailure"))
    st = wait_phase(kk, "onfail", ("Succeeded",), 30)
    cs = st["containerStatuses"][0]
    assert cs["restartCount"] == 1 and cs["lastState"]["terminated"]["exitCode"] == 4


def test_termination_messages_are_per_container(kk: Kubectl) -> None:
    def writer(name: str, text: str, path: str | None = None) -> dict[str, object]:
        target = path or "/dev/termination-log"
        c: dict[str, object] = {"name": name, "command": ["sh", "-c", f"sleep 1; echo -n {text} > {target}"]}
        if path:
            c["terminationMessagePath"] = path
        return c

    apply(kk, pod("tm-a", [writer("a1", "alpha-one"), writer("a2", "alpha-two", "/tmp/custom-msg")],
                  restartPolicy="Never"),
          pod("tm-b", [writer("b1", "beta-one"),
                       {"name": "b2", "command": ["sh", "-c", "echo last words; exit 2"],
                        "terminationMessagePolicy": "FallbackToLogsOnError"}],
              restartPolicy="Never"))
    a = wait_phase(kk, "tm-a", ("Succeeded", "Failed"))
    b = wait_phase(kk, "tm-b", ("Succeeded", "Failed"))
    msgs = {c["name"]: c["state"]["terminated"].get("message") for c in
            a["containerStatuses"] + b["containerStatuses"]}
    assert msgs == {"a1": "alpha-one", "a2": "alpha-two", "b1": "beta-one", "b2": "last words\n"}


def test_retired_dask_commands_run_with_a_warning(kk: Kubectl) -> None:
    apply(kk, pod("old", [{"name": "scheduler", "args": ["dask-scheduler", "--version"]}],
                  restartPolicy="Never"))
    st = wait_phase(kk, "old", ("Succeeded", "Failed"), 60)
    assert st["phase"] == "Succeeded", st
    assert has_event(kk, "old", "DeprecatedCommand", '"dask scheduler"')
    ev = next(e for e in events(kk, "old") if e["reason"] == "DeprecatedCommand")
    assert ev["type"] == "Warning" and ev["involvedObject"]["fieldPath"] == "spec.containers{scheduler}"


def test_init_containers_run_in_order_before_apps(kk: Kubectl) -> None:
    apply(kk, pod("init", [{"name": "app", "command": ["sh", "-c", "cat /work/order"],
                            "volumeMounts": [{"name": "w", "mountPath": "/work"}]}],
                  initContainers=[
                      {"name": f"i{i}", "command": ["sh", "-c", f"echo i{i} >> /work/order"],
                       "volumeMounts": [{"name": "w", "mountPath": "/work"}]} for i in (1, 2)],
                  volumes=[{"name": "w", "emptyDir": {}}], restartPolicy="Never"))
    st = wait_phase(kk, "init", ("Succeeded", "Failed"))
    assert st["phase"] == "Succeeded"
    assert logs(kk, "init").split() == ["i1", "i2"]
    assert [c["state"]["terminated"]["reason"] for c in st["initContainerStatuses"]] == ["Completed"] * 2
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Initialized"] == "True"
    apply(kk, pod("init-fail", [{"name": "app", "command": ["true"]}],
                  initContainers=[{"name": "bad", "command": ["sh", "-c", "exit 7"]}],
                  restartPolicy="Never"))
    st = wait_phase(kk, "init-fail", ("Failed",))
    assert st["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 7
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert "Init:Error" in kk("get", "pod", "init-fail").stdout
