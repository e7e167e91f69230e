"""A container cannot reach the control plane's credentials and runs as its own user; the
kubelet's endpoints answer only the API server.

The kubelet here runs as root (as in CI), so containers run as unprivileged uids in mount
namespaces that mask the kubelet's state directory (``local/kubelet/sandbox.py``). A Pod tries
every path to the secrets it can think of: the files themselves, the kubelet's and another
Pod's ``/proc/<pid>/root``, ``environ`` and ``cwd``; each must fail.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from pathlib import Path

import pytest

from dask_kube_jobs.local.kubelet.sandbox import can_switch_user, default_uid
from dask_kube_jobs.local.testing import Kubectl

from .kubelet_support import NODE, Plane, apply, get, logs, pod, wait_phase

pytestmark = [pytest.mark.kubectl,
              pytest.mark.skipif(not can_switch_user(), reason="the kubelet must run as root")]

PROBE = r"""
import json, os, sys
def attempt(path):
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        return "READ"
    except OSError as exc:
        return type(exc).__name__
out = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
       "secrets": {p: attempt(p) for p in json.loads(os.environ["SECRETS"])},
       "own_token": attempt("/var/run/secrets/kubernetes.io/serviceaccount/token"),
       "kubeconfig": attempt(os.environ["KUBECONFIG"])}
for name in ("HOME", "TMPDIR"):
    with open(os.path.join(os.environ[name], f"w{os.getuid()}"), "w") as fh:
        fh.write("ok")
with open(f"/scratch/w{os.getuid()}", "w") as fh:
    fh.write("ok")
out["scratch_group"] = os.stat(f"/scratch/w{os.getuid()}").st_gid
print(json.dumps(out))
"""


def _secrets(kplane: Plane, other_pid: int) -> list[str]:
    cp = kplane.cp.state
    files = [str(cp.admin_kubeconfig), str(cp.key), str(cp.pki / "ca.key"),
             str(cp.node_kubeconfig), str(cp.objects), str(kplane.cp.kubeconfig),
             str(kplane.state_dir / "pki" / "kubelet.key"), str(kplane.state_dir / "pki" / "ca.key")]
    kubelet = kplane.kubelet.pid
    out = [*files, f"/proc/{kubelet}/environ"]
    out += [f"/proc/{kubelet}/root{f}" for f in files] + [f"/proc/{kubelet}/cwd/x"]
    token = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    out += [f"/proc/{other_pid}/root{token}", f"/proc/{other_pid}/environ"]
    # the other Pod's token on the host, in the kubelet's state directory
    out += [str(p / ".dkj" / "serviceaccount" / "token")
            for p in (kplane.state_dir / "pods").iterdir() if "_other_" in p.name]
    return out


def test_containers_run_as_their_users_and_cannot_read_credentials(kplane: Plane,
                                                                   kk: Kubectl) -> None:
    apply(kk, pod("other", [{"name": "c", "command": ["sleep", "60"]}],
                  terminationGracePeriodSeconds=0))
    wait_phase(kk, "other", ("Running",), 20)
    other_pid = int(get(kk, "other")["status"]["containerStatuses"][0]["containerID"]
                    .removeprefix("process://"))
    for path in _secrets(kplane, other_pid)[:6]:
        assert os.path.exists(path), path  # the test looks at the right places
    env = [{"name": "SECRETS", "value": json.dumps(_secrets(kplane, other_pid))}]
    mounts = [{"name": "scratch", "mountPath": "/scratch"}]
    apply(kk, pod("probe", [
        {"name": "default", "command": ["python", "-c", PROBE], "env": env,
         "volumeMounts": mounts},
        {"name": "chosen", "command": ["python", "-c", PROBE],
         "env": env, "volumeMounts": mounts,
         "securityContext": {"runAsUser": 4321, "runAsGroup": 4322}},
    ], restartPolicy="Never", securityContext={"fsGroup": 4323},
        volumes=[{"name": "scratch", "emptyDir": {}}]))
    st = wait_phase(kk, "probe", ("Succeeded", "Failed"), 40)
    assert st["phase"] == "Succeeded", (st, logs(kk, "probe", "-c", "default"),
                                        logs(kk, "probe", "-c", "chosen"))
    uid = default_uid(get(kk, "probe")["metadata"]["uid"])
    default = json.loads(logs(kk, "probe", "-c", "default").strip().splitlines()[-1])
    chosen = json.loads(logs(kk, "probe", "-c", "chosen").strip().splitlines()[-1])
    assert (default["uid"], default["gid"], default["groups"]) == (uid, uid, sorted([uid, 4323]))
    assert (chosen["uid"], chosen["gid"], chosen["groups"]) == (4321, 4322, [4322, 4323])
    for out in (default, chosen):
        assert out["own_token"] == "READ" and out["kubeconfig"] == "READ"
        readable = {p: r for p, r in out["secrets"].items() if r == "READ"}
        assert not readable, readable
        assert out["scratch_group"] == 4323  # fsGroup owns the emptyDir; new files join it


def _kubelet_get(port: int, path: str, cert: tuple[Path, Path] | None) -> int | str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except (ssl.SSLError, ConnectionError) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def test_kubelet_endpoints_answer_only_the_api_servers_client_certificate(kplane: Plane) -> None:
    node = Kubectl(kplane.kubeconfig)("get", "node", NODE, "-o", "json").json()
    port = int(node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"])
    pki = kplane.cp.state.pki
    client = (pki / "kube-apiserver-kubelet-client.crt", pki / "kube-apiserver-kubelet-client.key")
    logs_path = "/containerLogs/default/no-such-pod/c"
    assert _kubelet_get(port, "/healthz", None) == 200
    assert _kubelet_get(port, logs_path, None) == 401
    assert _kubelet_get(port, "/portForward/default/no-such-pod", None) == 401
    # a certificate of the cluster CA that is not a client certificate does not do either
    assert _kubelet_get(port, logs_path, (pki / "apiserver.crt", pki / "apiserver.key")) != 404
    assert _kubelet_get(port, logs_path, client) == 404  # past authentication: no such Pod
