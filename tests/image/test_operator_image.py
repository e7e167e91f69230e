"""The operator image, built from this repository with podman, runs a DaskJob to Successful.

Nothing else builds operator/Dockerfile, so this is what proves the published image works. The
local control plane runs without an operator of its own (``operator=False``): the only operator
is the container. It runs as the chart would run it: the rendered Deployment's command,
arguments, user and hardening (read-only root, tmpfs /tmp, no capabilities, no privilege
escalation), under the chart's RBAC for its ServiceAccount (the chart rendered by helm and
applied without its Deployment), reaching the API server over the host network with a
kubeconfig minted for that ServiceAccount and readable by uid 10001: the steps of the
``podman run`` block of docs/local-control-plane.md. See ``podman.py`` for how the image is
built on a machine that can neither pull nor run a Docker daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name

from dask_kube_jobs.local import LocalControlPlane
from dask_kube_jobs.local.testing import Kubectl
from dask_kube_jobs.operator.limits import parse_quantity

from ..chart.chart import CHART_DIR, FULLNAME, RELEASE_NAMESPACE, objects, one
from ..chart.test_dockerfile import pins
from ..chart.workload import daskjob, job_status, wait_for
from .podman import (
    ROOT,
    Podman,
    build_operator_image,
    missing_tools,
    stand_in_base,
    write_containers_conf,
)

# The first run on a machine makes the stand-in base (about 2.5 minutes); later runs reuse it.
pytestmark = pytest.mark.timeout(1200)

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TAG = f"localhost/dask-kube-jobs-operator:{VERSION}"
TEAM = "team-a"
KUBECONFIG_IN_CONTAINER = "/etc/dask-kube-jobs/kubeconfig"


@dataclass
class Container:
    podman: Podman
    name: str
    admin: Kubectl
    readiness_url: str
    spec: dict[str, Any]  # the chart's container, as rendered

    def logs(self) -> str:
        out = self.podman("logs", self.name, check=False)
        return (out.stdout + out.stderr)[-6000:]

    def run(self, *argv: str) -> Any:
        return self.podman("exec", self.name, *argv, check=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    missing = missing_tools()
    if missing:
        pytest.fail(f"the image test needs {', '.join(missing)}: "
                    "apt-get install mmdebstrap podman runc (.ci/run does)")
    return Podman(write_containers_conf(tmp_path_factory.mktemp("podman") / "containers.conf"))


@pytest.fixture(scope="module")
def image(podman: Podman) -> str:
    return build_operator_image(podman, stand_in_base(podman), TAG, VERSION)


def podman_run_options(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    """The chart's securityContexts, /tmp emptyDir and memory limit, as podman options."""
    pod_ctx, ctx = pod["securityContext"], container["securityContext"]
    opts = [f"--user={pod_ctx['runAsUser']}:{pod_ctx['runAsGroup']}"]
    memory = container.get("resources", {}).get("limits", {}).get("memory")
    if memory:
        opts.append(f"--memory={int(parse_quantity(memory))}")
    if ctx.get("readOnlyRootFilesystem"):
        opts.append("--read-only")
    if ctx.get("allowPrivilegeEscalation") is False:
        opts.append("--security-opt=no-new-privileges")
    opts += [f"--cap-drop={cap.lower()}" for cap in ctx.get("capabilities", {}).get("drop", [])]
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    opts += [f"--tmpfs={m['mountPath']}" for m in container.get("volumeMounts", [])
             if m["name"] in empty_dirs]
    return opts


@pytest.fixture(scope="module")
def container(podman: Podman, image: str, request: pytest.FixtureRequest) -> Iterator[Container]:
    root = Path(tempfile.mkdtemp(prefix="dkj-image-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    health, ready = free_port(), free_port()  # host network: no fixed port may clash
    rendered = objects({"operator": {"healthPort": health, "readinessPort": ready}})
    deployment = one(rendered, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (spec,) = pod["containers"]
    with LocalControlPlane(root / "kubeconfig.yaml", state_dir=root / "state",
                           operator=False) as plane:
        admin = Kubectl(plane.kubeconfig)
        for ns in (RELEASE_NAMESPACE, TEAM):
            admin("create", "namespace", ns)
        admin("apply", "-f", str(CHART_DIR / "crds"))
        admin("wait", "--for=condition=Established", "crd", "--all", timeout=90)
        rbac = [o for o in rendered if o is not deployment]
        admin("apply", "-f", "-", namespace=RELEASE_NAMESPACE,
              input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac}))
        kubeconfig = plane.mint_kubeconfig(root / "operator.kubeconfig",
                                           service_account=f"{RELEASE_NAMESPACE}/{FULLNAME}")
        os.chmod(kubeconfig, 0o644)  # the container's uid 10001 reads it; it holds a SA token only
        name = f"dkj-operator-{uuid.uuid4().hex[:8]}"
        env = {e["name"]: e["value"] for e in spec.get("env", []) if "value" in e}
        env.update(POD_NAME=name, POD_NAMESPACE=RELEASE_NAMESPACE,
                   KUBECONFIG=KUBECONFIG_IN_CONTAINER)
        podman("run", "--detach", f"--name={name}", "--network=host",
               *podman_run_options(pod, spec),
               f"--volume={kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
               *[f"--env={k}={v}" for k, v in env.items()],
               image, *spec["command"], *spec["args"])
        running = Container(podman, name, admin, f"http://127.0.0.1:{ready}/readyz", spec)
        try:
            yield running
        finally:
            print(f"--- operator container {name} ---\n{running.logs()}")
            podman("rm", "--force", "--time=10", name, check=False)


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def proc_status(container: Container) -> dict[str, str]:
    out = container.run("cat", "/proc/1/status")
    assert out.returncode == 0, out.stderr
    return dict(line.split(":\t", 1) for line in out.stdout.splitlines() if ":\t" in line)


def test_the_image_carries_the_project_version_and_runs_as_uid_10001(
        podman: Podman, image: str) -> None:
    (meta,) = json.loads(podman("image", "inspect", image).stdout)
    assert meta["Config"]["Labels"]["org.opencontainers.image.version"] == VERSION
    assert meta["Config"]["User"] == "10001:10001"
    out = podman("run", "--rm", image, "python", "-c",
                 "import importlib.metadata as m, os; "
                 "print(os.getuid(), os.getgid(), m.version('dask-kube-jobs'))")
    assert out.stdout.split() == ["10001", "10001", VERSION]


def test_the_image_holds_exactly_the_pinned_dependencies(podman: Podman, image: str) -> None:
    out = podman("run", "--rm", image, "python", "-m", "pip", "list", "--format=json")
    installed = {canonicalize_name(d["name"]): d["version"] for d in json.loads(out.stdout)}
    installed.pop("dask-kube-jobs")
    for base_tool in ("pip", "setuptools", "wheel"):  # the base image's own
        installed.pop(base_tool, None)
    assert installed == pins()


def test_the_containerised_operator_becomes_ready_under_the_charts_hardening(
        container: Container) -> None:
    wait_for("the operator's /readyz to answer 200", lambda: readyz(container.readiness_url) == 200,
             timeout=120, every=1)
    status = proc_status(container)
    assert status["Uid"].split()[0] == "10001" and status["Gid"].split()[0] == "10001"
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    limit = container.run("sh", "-c", "cat /sys/fs/cgroup/memory.max "
                          "|| cat /sys/fs/cgroup/memory/memory.limit_in_bytes")
    chart_limit = parse_quantity(container.spec["resources"]["limits"]["memory"])
    assert limit.stdout.split()[-1] == str(int(chart_limit)), limit
    write_root = container.run("python", "-c", "open('/probe', 'w')")
    assert write_root.returncode != 0 and "Read-only file system" in write_root.stderr
    assert container.run("python", "-c", "open('/tmp/probe', 'w')").returncode == 0


def test_a_daskjob_reaches_successful_through_the_containerised_operator(
        container: Container) -> None:
    name = "through-the-image"
    container.admin("create", "-f", "-", input=json.dumps(daskjob(name)), namespace=TEAM)
    status = wait_for(f"DaskJob {name} to finish", lambda: (
        s if (s := job_status(container.admin, name, TEAM)).get("jobStatus")
        in ("Successful", "Failed") else None), timeout=240, every=1)
    assert status["jobStatus"] == "Successful", json.dumps(status, indent=1) + container.logs()
    assert name in container.logs()  # the container's operator did it: the plane runs none
