"""Spec builders: what the seed documents' snippets expect, and errors that name the argument."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

import dask_kube_jobs
from dask_kube_jobs import (
    SpecError,
    crds,
    make_cluster_spec,
    make_job_spec,
    make_scheduler_spec,
    make_worker_spec,
)
from dask_kube_jobs.local.apiserver import objectmeta, structural
from dask_kube_jobs.local.kubelet.env import expand
from dask_kube_jobs.spec import SCRIPT_MAX_BYTES, jupyter_enabled


@functools.cache
def _schema(kind: str) -> dict:
    return crds.load_crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def assert_accepted(manifest: dict) -> None:
    """The manifest is valid for its CRD and nothing in it is pruned."""
    schema = _schema(manifest["kind"])
    assert structural.prune(manifest, schema) == manifest
    assert structural.validate(structural.normalize(manifest, schema), schema) == []


def container(pod_spec: dict) -> dict:
    [only] = pod_spec["containers"]
    return only


# ---------------------------------------------------------------- the seeds' snippets


def test_a_cluster_needs_only_a_name():
    spec = make_cluster_spec(name="mycluster")
    assert spec["apiVersion"] == "kubernetes.dask.org/v1"
    assert spec["kind"] == "DaskCluster"
    assert spec["metadata"] == {"name": "mycluster"}
    assert spec["spec"]["worker"]["replicas"] == 3
    assert container(spec["spec"]["worker"]["spec"])["image"] == "ghcr.io/dask/dask:latest"
    assert_accepted(spec)


def test_keyword_options_of_the_migration_guide():
    spec = make_cluster_spec(name="mycluster", image="ghcr.io/dask/dask:latest", n_workers=3,
                             env={"FOO": "bar"},
                             resources={"requests": {"memory": "2Gi"},
                                        "limits": {"memory": "64Gi"}})
    for pod in (spec["spec"]["worker"]["spec"], spec["spec"]["scheduler"]["spec"]):
        assert container(pod)["env"] == [{"name": "FOO", "value": "bar"}]
        assert container(pod)["resources"] == {"requests": {"memory": "2Gi"},
                                               "limits": {"memory": "64Gi"}}
    assert_accepted(spec)


def test_the_generated_resource_of_the_ga_announcement():
    spec = make_cluster_spec(name="my-cluster", n_workers=3, env={"FOO": "bar"})
    scheduler = spec["spec"]["scheduler"]
    assert scheduler["service"] == {
        "type": "ClusterIP",
        "selector": {"dask.org/cluster-name": "my-cluster", "dask.org/component": "scheduler"},
        "ports": [
            {"name": "tcp-comm", "protocol": "TCP", "port": 8786, "targetPort": "tcp-comm"},
            {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
             "targetPort": "http-dashboard"},
        ],
    }
    sched = container(scheduler["spec"])
    assert sched["name"] == "scheduler"
    assert sched["args"] == ["dask", "scheduler", "--host", "0.0.0.0"]
    assert sched["ports"] == [
        {"name": "tcp-comm", "containerPort": 8786, "protocol": "TCP"},
        {"name": "http-dashboard", "containerPort": 8787, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert sched[probe]["httpGet"] == {"port": "http-dashboard", "path": "/health"}
    worker = container(spec["spec"]["worker"]["spec"])
    assert worker["name"] == "worker"
    assert worker["args"][:4] == ["dask", "worker", "--name", "$(DASK_WORKER_NAME)"]
    assert spec["spec"]["worker"]["replicas"] == 3


def test_nothing_is_set_to_null_when_options_are_omitted():
    spec = make_cluster_spec(name="plain")
    for pod in (spec["spec"]["worker"]["spec"], spec["spec"]["scheduler"]["spec"]):
        assert "env" not in container(pod) and "resources" not in container(pod)


def test_the_middle_way_edits_the_generated_spec():
    spec = make_cluster_spec(name="selector-example", n_workers=2)
    spec["spec"]["worker"]["spec"]["nodeSelector"] = {"disktype": "ssd"}
    assert_accepted(spec)
    merged = make_cluster_spec(name="merge-example")
    merged["spec"]["worker"]["spec"] = {"containers": [{"name": "w", "image": "x"}]}
    assert_accepted(merged)


def test_gpu_workers_with_a_custom_worker_command():
    spec = make_cluster_spec(name="rapids-dask",
                             image="nvcr.io/nvidia/rapidsai/base:25.04-cuda12.8-py3.12",
                             n_workers=3, resources={"limits": {"nvidia.com/gpu": "1"}},
                             worker_command="dask-cuda-worker")
    worker = container(spec["spec"]["worker"]["spec"])
    assert worker["args"][:3] == ["dask-cuda-worker", "--name", "$(DASK_WORKER_NAME)"]
    assert worker["resources"] == {"limits": {"nvidia.com/gpu": "1"}}
    assert_accepted(spec)


@pytest.mark.parametrize("command, argv", [
    ("dask worker --nthreads 2", ["dask", "worker", "--nthreads", "2"]),
    (["dask", "worker"], ["dask", "worker"]),
    ("dask-worker --nthreads 2", ["dask", "worker", "--nthreads", "2"]),
], ids=["string", "list", "legacy-script-name"])
def test_worker_commands_use_the_current_dask_cli(command, argv):
    args = container(make_worker_spec(worker_command=command)["spec"])["args"]
    assert args == argv + ["--name", "$(DASK_WORKER_NAME)", "--dashboard",
                           "--dashboard-address", "8788"]


def test_upstream_positional_order_is_kept():
    spec = make_cluster_spec("pos", "my/image:1", 4)
    assert spec["spec"]["worker"]["replicas"] == 4
    assert container(spec["spec"]["scheduler"]["spec"])["image"] == "my/image:1"
    worker = make_worker_spec("my/image:1", 2)
    assert worker["replicas"] == 2


def test_scheduler_options():
    sched = make_scheduler_spec("demo", scheduler_service_type="LoadBalancer", jupyter=True)
    assert sched["service"]["type"] == "LoadBalancer"
    assert container(sched["spec"])["args"][-1] == "--jupyter"


def test_jupyter_is_read_back_from_the_schedulers_command_line():
    assert jupyter_enabled(make_cluster_spec("lab", jupyter=True))
    assert not jupyter_enabled(make_cluster_spec("lab"))
    hand_written = make_cluster_spec("lab")
    main = container(hand_written["spec"]["scheduler"]["spec"])
    main["command"], main["args"] = ["dask", "scheduler", "--jupyter"], ["--port", "8786"]
    assert jupyter_enabled(hand_written)  # in command or args, as a Pod runs both
    main["args"].append("--no-jupyter")  # click's flag pair: the last one wins
    assert not jupyter_enabled(hand_written)
    # the container named "scheduler" is the one read, wherever it is in the list
    sidecar = {"name": "proxy", "image": "p", "args": ["--jupyter"]}
    hand_written["spec"]["scheduler"]["spec"]["containers"].insert(0, sidecar)
    assert not jupyter_enabled(hand_written)
    assert not jupyter_enabled({"spec": {}}) and not jupyter_enabled({})


def test_env_given_as_a_list_is_passed_through():
    env = [{"name": "A", "value": "1"},
           {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]
    spec = make_cluster_spec(name="envs", env=env)
    assert container(spec["spec"]["worker"]["spec"])["env"] == env
    assert_accepted(spec)


def test_idle_timeout_is_set_on_the_cluster():
    assert make_cluster_spec(name="idle", idle_timeout=300)["spec"]["idleTimeout"] == 300


# ---------------------------------------------------------------- DaskJob


def test_a_job_from_a_command():
    job = make_job_spec("sum", command=["python", "-m", "myjob"], n_workers=2,
                        env={"FOO": "bar"})
    assert job["kind"] == "DaskJob"
    assert job["metadata"] == {"name": "sum"}
    runner = job["spec"]["job"]["spec"]
    assert runner["restartPolicy"] == "Never"
    assert container(runner)["name"] == "job"
    assert container(runner)["args"] == ["python", "-m", "myjob"]
    assert container(runner)["env"] == [{"name": "FOO", "value": "bar"}]
    cluster = job["spec"]["cluster"]["spec"]
    assert cluster["worker"]["replicas"] == 2
    assert cluster["scheduler"]["service"]["selector"]["dask.org/cluster-name"] == "sum"
    assert_accepted(job)


def test_job_policy_fields_are_named_as_in_a_batch_job():
    job = make_job_spec("policy", command="python run.py", backoff_limit=2,
                        active_deadline_seconds=600, ttl_seconds_after_finished=60,
                        suspend=True, keep_cluster_on_failure=True,
                        cluster_metadata={"labels": {"team": "data"}},
                        labels={"app": "nightly"}, annotations={"example.com/owner": "me"},
                        runner_resources={"limits": {"memory": "1Gi"}})
    spec = job["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"],
            spec["ttlSecondsAfterFinished"], spec["suspend"],
            spec["keepClusterOnFailure"]) == (2, 600, 60, True, True)
    assert spec["cluster"]["metadata"] == {"labels": {"team": "data"}}
    assert job["metadata"]["labels"] == {"app": "nightly"}
    assert job["metadata"]["annotations"] == {"example.com/owner": "me"}
    assert container(spec["job"]["spec"])["resources"] == {"limits": {"memory": "1Gi"}}
    assert_accepted(job)


def test_omitted_policy_fields_leave_the_crd_defaults():
    spec = make_job_spec("defaults", command=["true"])["spec"]
    for field in ("backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished",
                  "suspend", "keepClusterOnFailure"):
        assert field not in spec


SCRIPT = """\
import sys
price = "$(FOO) costs $$5"
print(__name__, sys.argv[0], price)
"""


def run_runner(job: dict, tmp_path) -> subprocess.CompletedProcess:
    """Run the runner container's args with its env expanded as the kubelet expands it."""
    runner = container(job["spec"]["job"]["spec"])
    defined = {"FOO": "expanded"}  # as if FOO were defined before the script's variable
    env = {e["name"]: expand(e["value"], defined) for e in runner["env"]}
    argv = [sys.executable if a == "python" else expand(a, env) for a in runner["args"]]
    return subprocess.run(argv, check=False, env={**os.environ, **env}, capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)


def test_a_script_runs_as_main_with_dollar_signs_intact(tmp_path):
    job = make_job_spec("script", script=SCRIPT)
    assert_accepted(job)
    done = run_runner(job, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "__main__ job.py $(FOO) costs $$5"


def test_a_script_file_is_read_and_tracebacks_show_its_lines(tmp_path):
    path = tmp_path / "failing.py"
    path.write_text("x = 1\nraise RuntimeError('boom at line two')\n", encoding="utf-8")
    for script in (str(path), path):
        job = make_job_spec("from-file", script=script)
        done = run_runner(job, tmp_path)
        assert done.returncode == 1
        assert 'File "failing.py", line 2' in done.stderr
        assert "raise RuntimeError('boom at line two')" in done.stderr


# ---------------------------------------------------------------- errors name the argument


def raises(argument: str, fn, *args, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        fn(*args, **kwargs)
    assert info.value.argument == argument
    assert str(info.value).startswith(argument)
    assert isinstance(info.value, ValueError)
    return info.value


def test_a_typo_in_a_resource_name_suggests_the_right_one():
    err = raises("resources['requests']", make_cluster_spec, name="c",
                 resources={"requests": {"memroy": "2Gi"}})
    assert "'memroy'" in str(err) and "did you mean 'memory'" in str(err)


def test_a_typo_in_a_resource_section_is_reported():
    err = raises("resources", make_cluster_spec, name="c", resources={"limit": {"cpu": 1}})
    assert "did you mean 'limits'" in str(err)


@pytest.mark.parametrize("quantity", ["2 Gi", "-1", "lots", True, None],
                         ids=["space", "negative", "word", "bool", "none"])
def test_a_bad_quantity_is_reported_with_its_resource(quantity):
    raises("resources['limits']['memory']", make_cluster_spec, name="c",
           resources={"limits": {"memory": quantity}})


@pytest.mark.parametrize("name", ["My-Cluster", "1cluster", "under_score", "a" * 54, "",
                                  "ends-"],
                         ids=["upper-case", "leading-digit", "underscore", "too-long", "empty",
                              "trailing-dash"])
def test_bad_names_are_rejected(name):
    raises("name", make_cluster_spec, name=name)
    raises("name", make_job_spec, name, command=["true"])


def test_the_longest_allowed_name_keeps_the_scheduler_service_a_dns_label():
    name = "a" * 53
    service = f"{name}-scheduler"
    assert len(service) == 63
    assert objectmeta.is_dns1035_label(service) == []
    make_cluster_spec(name=name)


@pytest.mark.parametrize("kwargs, argument", [
    ({"n_workers": -1}, "n_workers"),
    ({"n_workers": 2.5}, "n_workers"),
    ({"n_workers": True}, "n_workers"),
    ({"idle_timeout": -5}, "idle_timeout"),
    ({"image": ""}, "image"),
    ({"image": "bad image"}, "image"),
    ({"scheduler_service_type": "Ingress"}, "scheduler_service_type"),
    ({"worker_command": []}, "worker_command"),
    ({"worker_command": ["dask", 2]}, "worker_command"),
    ({"jupyter": "yes"}, "jupyter"),
    ({"env": "FOO=bar"}, "env"),
    ({"env": {"FOO": None}}, "env['FOO']"),
    ({"env": {"BAD NAME": "x"}}, "env['BAD NAME']"),
    ({"env": [{"value": "x"}]}, "env[0]"),
    ({"env": [{"name": "A", "vaule": "x"}]}, "env[0]"),
    ({"resources": ["cpu"]}, "resources"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_cluster_arguments_are_checked(kwargs, argument):
    raises(argument, make_cluster_spec, **{"name": "c", **kwargs})


@pytest.mark.parametrize("kwargs, argument", [
    ({}, "command"),
    ({"command": ["a"], "script": "print(1)"}, "command"),
    ({"command": []}, "command"),
    ({"script": "def broken(:\n"}, "script"),
    ({"script": "missing_file.py"}, "script"),
    ({"script": "   "}, "script"),
    ({"script": "x = 1\n" * (SCRIPT_MAX_BYTES // 6 + 1)}, "script"),
    ({"command": ["a"], "backoff_limit": -1}, "backoff_limit"),
    ({"command": ["a"], "active_deadline_seconds": 0}, "active_deadline_seconds"),
    ({"command": ["a"], "ttl_seconds_after_finished": "60"}, "ttl_seconds_after_finished"),
    ({"command": ["a"], "suspend": 1}, "suspend"),
    ({"command": ["a"], "keep_cluster_on_failure": "no"}, "keep_cluster_on_failure"),
    ({"command": ["a"], "cluster_metadata": {"name": "x"}}, "cluster_metadata"),
    ({"command": ["a"], "cluster_metadata": {"labels": {"a": "b c"}}},
     "cluster_metadata['labels']['a']"),
    ({"command": ["a"], "labels": {"bad key!": "x"}}, "labels"),
    ({"command": ["a"], "annotations": {"k": 1}}, "annotations['k']"),
    ({"command": ["a"], "runner_resources": {"limits": {"gpu": 1}}},
     "runner_resources['limits']"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_job_arguments_are_checked(kwargs, argument):
    raises(argument, make_job_spec, "job", **kwargs)


def test_an_oversized_script_says_what_to_do_instead():
    err = raises("script", make_job_spec, "big", script="#" * (SCRIPT_MAX_BYTES + 1))
    assert "command=" in str(err)


def test_builders_are_exported_from_the_package():
    for name in ("make_cluster_spec", "make_worker_spec", "make_scheduler_spec",
                 "make_job_spec", "SpecError", "set_result"):
        assert name in dask_kube_jobs.__all__
        assert getattr(dask_kube_jobs, name) is not None
    assert dask_kube_jobs.__version__
    from dask_kube_jobs.resources import DaskJob

    assert dask_kube_jobs.DaskJob is DaskJob
