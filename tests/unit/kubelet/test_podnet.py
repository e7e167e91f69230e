"""Pod networking: address allocation, the service map, and the shim in real Pod-like processes.

Every process here runs with the environment the kubelet gives a Pod (``process_env`` plus the
shim on ``PYTHONPATH``) and a hand-written service map. All addresses are on loopback; the pod
IPs used (127.244.250.x) are far from what a running kubelet hands out first.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local.kubelet.network import (
    PODNET_DIR,
    PodNetwork,
    build_service_map,
    with_shim,
)

A, B, C = "127.244.250.1", "127.244.250.2", "127.244.250.3"


def service(ns: str, name: str, ports: list[dict[str, Any]], cluster_ip: str = "127.96.250.1",
            selector: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": cluster_ip, "ports": ports,
                     "selector": selector if selector is not None else {"svc": name}, **spec}}


def backend(ns: str, name: str, ip: str, labels: dict[str, str],
            ports: list[dict[str, Any]] = (), ready: bool = True, **spec: Any) -> dict[str, Any]:  # type: ignore[assignment]
    """A Pod of this node as its kubelet last reported it."""
    return {"metadata": {"namespace": ns, "name": name, "uid": f"uid-{ns}-{name}",
                         "labels": labels},
            "spec": {"containers": [{"name": "c", "ports": list(ports)}], **spec},
            "status": {"phase": "Running", "podIP": ip,
                       "conditions": [{"type": "Ready", "status": str(ready)}]}}


def write_map(path: Path, services: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
    key = lambda o: (o["metadata"]["namespace"], o["metadata"]["name"])  # noqa: E731
    data = build_service_map({key(s): s for s in services},
                             {p["metadata"]["uid"]: p for p in pods})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[PodNetwork]:
    network = PodNetwork(tmp_path / "kubelet")
    yield network
    network.release_lease()


def pod_env(net: PodNetwork, ip: str, ns: str = "team-a", **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DKJ_", "DASK_"))}
    env.update(net.process_env(ip, ns))
    env.update(extra)
    return with_shim(env)


def run_in_pod(net: PodNetwork, ip: str, code: str, ns: str = "team-a", **extra: str) -> Any:
    """Run ``code`` (which prints JSON last) as a Pod process; returns the parsed JSON."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=pod_env(net, ip, ns, **extra),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- allocation and environment -------------------------------------------------------------
def test_allocate_is_unique_persistent_and_loopback(tmp_path: Path) -> None:
    net = PodNetwork(tmp_path)
    ips = [net.allocate(f"uid-{i}") for i in range(600)]
    assert len(set(ips)) == 600
    prefix = ".".join(str(net.network.network_address).split(".")[:2]) + "."
    assert all(ip.startswith(prefix) and ip.split(".")[3] not in ("0", "255") for ip in ips)
    assert net.allocate("uid-7") == ips[7]
    net.release_lease()  # the kubelet stops...
    again = PodNetwork(tmp_path)  # ...and a restarted one keeps its Pods' addresses
    assert again.allocate("uid-7") == ips[7] and again.pod_ip("uid-8") == ips[8]
    again.release("uid-7")
    fresh = again.allocate("uid-new")
    assert fresh not in ips  # a released address is not handed out again at once
    again.release_lease()
    assert PodNetwork(tmp_path).allocated()["uid-new"] == fresh


def test_process_env(net: PodNetwork) -> None:
    env = net.process_env(A, "ns1")
    assert env == {"DKJ_POD_IP": A, "DKJ_POD_NAMESPACE": "ns1", "DKJ_SERVICE_MAP": str(net.map_file)}
    assert net.map_file.exists()  # written at once, so the shim never waits for it
    assert with_shim({"PYTHONPATH": "/x"})["PYTHONPATH"] == f"{PODNET_DIR}{os.pathsep}/x"


def test_service_map_is_built_from_this_nodes_ready_pods() -> None:
    web = {"app": "web"}
    svc = service("ns", "web", [{"name": "http", "port": 80, "targetPort": "web"},
                                {"name": "metrics", "port": 9000, "targetPort": 9100}],
                  selector=web)
    pods = [
        backend("ns", "web-a", A, {**web, "extra": "x"}, [{"name": "web", "containerPort": 8080}]),
        backend("ns", "web-b", B, web, [{"name": "web", "containerPort": 8081}],
                hostname="web-b", subdomain="web"),
        backend("ns", "web-c", C, web, [{"name": "web", "containerPort": 8082}], ready=False),
        backend("ns", "web-udp", "127.244.250.5", web,
                [{"name": "web", "containerPort": 53, "protocol": "UDP"}]),
        backend("ns", "db", "127.244.250.4", {"app": "db"}, [{"name": "web", "containerPort": 1}]),
        backend("other", "web-x", "127.244.250.6", web, [{"name": "web", "containerPort": 1}]),
    ]
    ending = backend("ns", "web-d", "127.244.250.7", web, [{"name": "web", "containerPort": 1}])
    ending["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    done = backend("ns", "web-e", "127.244.250.8", web, [{"name": "web", "containerPort": 1}])
    done["status"]["phase"] = "Succeeded"
    headless = service("ns", "hl", [{"port": 5000}], cluster_ip="None")
    no_selector = service("ns", "manual", [{"port": 5000}], selector={})
    ext = {"metadata": {"namespace": "ns", "name": "ext"}, "spec": {"type": "ExternalName"}}
    not_ready_too = service("ns", "peers", [{"port": 7000}], selector=web,
                            publishNotReadyAddresses=True)
    data = build_service_map(
        {("ns", "web"): svc, ("ns", "hl"): headless, ("ns", "ext"): ext,
         ("ns", "manual"): no_selector, ("ns", "peers"): not_ready_too},
        {p["metadata"]["uid"]: p for p in [*pods, ending, done]})["services"]
    assert set(data) == {"ns/web", "ns/hl", "ns/manual", "ns/peers"}
    assert data["ns/web"]["portNames"] == {"http": 80, "metrics": 9000}
    # the UDP-only Pod has no TCP port named "web": it serves only the numeric target port
    assert data["ns/web"]["backends"] == [
        {"ip": A, "hostname": None, "pod": "web-a", "ports": {"80": 8080, "9000": 9100}},
        {"ip": B, "hostname": "web-b", "pod": "web-b", "ports": {"80": 8081, "9000": 9100}},
        {"ip": "127.244.250.5", "hostname": None, "pod": "web-udp", "ports": {"9000": 9100}},
    ]
    assert data["ns/hl"] == {"clusterIP": None, "portNames": {}, "backends": []}
    assert data["ns/manual"]["backends"] == []
    assert [b["pod"] for b in data["ns/peers"]["backends"]] == ["web-a", "web-b", "web-c",
                                                               "web-udp"]


# -- the shim in real processes -------------------------------------------------------------
LISTEN = """
    import json, socket, sys, time
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8786))
    s.listen()
    print(json.dumps(s.getsockname()), flush=True)
    conn, peer = s.accept()
    conn.sendall(sys.argv[1].encode())
    conn.close()
"""


def test_two_pods_listen_on_the_same_port(net: PodNetwork) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(LISTEN), name],
                              env=pod_env(net, ip), stdout=subprocess.PIPE, text=True)
             for ip, name in ((A, "pod-a"), (B, "pod-b"))]
    try:
        bound = [json.loads(p.stdout.readline()) for p in procs]  # type: ignore[union-attr]
        assert bound == [[A, 8786], [B, 8786]]
        import socket

        for ip, name in ((A, "pod-a"), (B, "pod-b")):  # the host reaches each Pod
            with socket.create_connection((ip, 8786), timeout=5) as conn:
                assert conn.recv(16) == name.encode()
    finally:
        for p in procs:
            p.kill()
            p.wait()
            p.stdout.close()  # type: ignore[union-attr]


def test_wildcard_forms_and_passive_getaddrinfo(net: PodNetwork) -> None:
    out = run_in_pod(net, A, """
        import json, socket
        res = {}
        s = socket.socket(); s.bind(("", 0)); res["empty"] = s.getsockname()[0]
        d = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        d.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        d.bind(("::", 0)); res["dual"] = d.getsockname()[0]
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            v6.bind(("::", 0)); res["v6only"] = "bound"
        except OSError as e:
            res["v6only"] = e.errno
        res["passive"] = sorted({i[0].name for i in socket.getaddrinfo(None, 80, flags=socket.AI_PASSIVE)})
        srv = socket.create_server(("", 0)); res["create_server"] = srv.getsockname()[0]
        lo = socket.socket(); lo.bind(("127.0.0.1", 0)); res["explicit"] = lo.getsockname()[0]
        res["hostname"] = socket.gethostbyname(socket.gethostname())
        res["podname"] = socket.gethostbyname("my-pod")
        print(json.dumps(res))
    """, HOSTNAME="my-pod")
    import errno

    assert out == {"empty": A, "dual": f"::ffff:{A}", "v6only": errno.EADDRNOTAVAIL,
                   "passive": ["AF_INET"], "create_server": A, "explicit": "127.0.0.1",
                   "hostname": A, "podname": A}


RESOLVE = """
    import json, socket
    def addr(host, port, **kw):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, **kw)
        except socket.gaierror as e:
            return "gaierror"
        return [list(i[4][:2]) for i in infos]
    names = {f"{n}:{p}": addr(n, p) for n, p in [
        ("sched", 8786), ("sched.team-a", 8786), ("sched.team-a.svc", 8786),
        ("sched.team-a.svc.cluster.local", 8786), ("sched.team-a.svc.cluster.local.", 8786),
        ("SCHED.Team-A.svc.cluster.local", 8787), ("sched", "comm"), ("sched", 9999),
        ("sched.team-b", 8786), ("sched.team-b.svc.cluster.local", 8786),
        ("nope.team-a.svc.cluster.local", 1), ("nope.team-a", 1), ("nope.team-a.svc", 1),
        ("hl.team-a", 5000), ("hl-0.hl.team-a.svc.cluster.local", 5000), ("pending", 80),
        ("127-244-250-9.team-a.pod.cluster.local", 80), ("127.0.0.1", 80), ("localhost", 80),
    ]}
    names["by_name"] = socket.gethostbyname("sched.team-a.svc")
    names["by_name_ex"] = socket.gethostbyname_ex("hl")[2]
    names["v6_only"] = addr("sched", 8786, family=socket.AF_INET6)
    print(json.dumps(names))
"""


def test_service_names_resolve_to_backend_and_target_port(net: PodNetwork) -> None:
    write_map(net.map_file, [
        service("team-a", "sched", [{"name": "comm", "port": 8786, "targetPort": "tcp-comm"},
                                    {"name": "dash", "port": 8787, "targetPort": 8788}]),
        service("team-b", "sched", [{"name": "comm", "port": 8786}], cluster_ip="127.96.250.2"),
        service("team-a", "hl", [{"port": 5000, "targetPort": 5001}], cluster_ip="None"),
        service("team-a", "pending", [{"port": 80}], cluster_ip="127.96.250.3"),
    ], [
        backend("team-a", "sched", A, {"svc": "sched"}, [{"name": "tcp-comm",
                                                          "containerPort": 18786}]),
        backend("team-b", "sched", B, {"svc": "sched"}),
        backend("team-a", "hl-0", B, {"svc": "hl"}, hostname="hl-0", subdomain="hl"),
        backend("team-a", "hl-1", C, {"svc": "hl"}),
        backend("team-a", "pending", C, {"svc": "pending"}, ready=False),
    ])
    out = run_in_pod(net, C, RESOLVE, ns="team-a")
    a = [[A, 18786]]
    for name in ("sched", "sched.team-a", "sched.team-a.svc", "sched.team-a.svc.cluster.local",
                 "sched.team-a.svc.cluster.local."):
        assert out[f"{name}:8786"] == a, name
    assert out["SCHED.Team-A.svc.cluster.local:8787"] == [[A, 8788]]
    assert out["sched:comm"] == a  # a Service port given by its name
    assert out["sched:9999"] == [[A, 9999]]  # a port the Service does not map goes through
    assert out["sched.team-b:8786"] == out["sched.team-b.svc.cluster.local:8786"] == [[B, 8786]]
    for name in ("nope.team-a.svc.cluster.local:1", "nope.team-a:1", "nope.team-a.svc:1"):
        assert out[name] == "gaierror", name  # answered locally, never asked of the host's DNS
    assert sorted(out["hl.team-a:5000"]) == [[B, 5000], [C, 5000]]  # headless: no port mapping
    assert out["hl-0.hl.team-a.svc.cluster.local:5000"] == [[B, 5000]]
    assert out["pending:80"] == [["127.96.250.3", 80]]  # no ready backend: the cluster IP
    assert out["127-244-250-9.team-a.pod.cluster.local:80"] == [["127.244.250.9", 80]]
    assert out["127.0.0.1:80"] == [["127.0.0.1", 80]] and ["127.0.0.1", 80] in out["localhost:80"]
    assert out["by_name"] == A and sorted(out["by_name_ex"]) == [B, C]
    assert out["v6_only"] == "gaierror"


def test_map_changes_are_seen_and_short_names_follow_namespace(net: PodNetwork) -> None:
    code = """
        import json, socket, sys, time
        first = socket.getaddrinfo("db", 5432, type=socket.SOCK_STREAM)[0][4][:2]
        print("ready", flush=True)
        sys.stdin.readline()
        second = socket.getaddrinfo("db", 5432, type=socket.SOCK_STREAM)[0][4][:2]
        print(json.dumps([first, second]))
    """
    svc = service("team-b", "db", [{"port": 5432}])
    write_map(net.map_file, [svc], [backend("team-b", "db-0", A, {"svc": "db"})])
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=pod_env(net, C, "team-b"),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"  # type: ignore[union-attr]
    write_map(net.map_file, [svc], [backend("team-b", "db-1", B, {"svc": "db"})])
    out, _ = proc.communicate("go\n", timeout=30)
    assert json.loads(out.strip().splitlines()[-1]) == [[A, 5432], [B, 5432]]


def test_inactive_without_pod_ip_and_chains_user_sitecustomize(net: PodNetwork, tmp_path: Path) -> None:
    user = tmp_path / "user-site"
    user.mkdir()
    (user / "sitecustomize.py").write_text("import os\nos.environ['USER_SITECUSTOMIZE'] = 'ran'\n")
    code = ("import json, os, socket; s = socket.socket(); s.bind(('0.0.0.0', 0));"
            "print(json.dumps([s.getsockname()[0], os.environ.get('USER_SITECUSTOMIZE')]))")
    env = pod_env(net, A)
    env["PYTHONPATH"] += os.pathsep + str(user)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [A, "ran"]
    env.pop("DKJ_POD_IP")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["0.0.0.0", "ran"]


def test_outbound_address_probe_gives_pod_ip_without_traffic(net: PodNetwork) -> None:
    out = run_in_pod(net, B, """
        import json, socket, warnings
        # never let a real connect to a public address happen, even if the shim were missing
        assert socket.socket.connect.__module__ == "sitecustomize", "shim not active"
        warnings.simplefilter("error")
        from distributed.utils import get_ip
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect(("8.8.8.8", 80))
        sent = u.connect_ex(("1.1.1.1", 53))
        print(json.dumps([get_ip(), u.getsockname()[0], sent]))
    """)
    assert out == [B, B, 0]


# -- a real Dask cluster across three Pods ----------------------------------------------------
CLIENT = """
    import json, os
    from dask.distributed import Client
    with Client(os.environ["DASK_SCHEDULER_ADDRESS"], timeout="30s") as client:
        client.wait_for_workers(1, timeout=30)
        workers = sorted(client.scheduler_info()["workers"])
        total = client.submit(sum, range(101)).result()
        where = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.address)
    print(json.dumps({"workers": workers, "total": total, "scheduler": where}))
"""


def test_dask_scheduler_worker_and_client_across_pods(net: PodNetwork, tmp_path: Path) -> None:
    # The Service exposes 8786 and the scheduler Pod listens on 18786: the port is mapped.
    write_map(net.map_file, [service("team-a", "dask-scheduler",
                                     [{"name": "tcp-comm", "port": 8786, "targetPort": "tcp-comm"}])],
              [backend("team-a", "sched", A, {"svc": "dask-scheduler"},
                       [{"name": "tcp-comm", "containerPort": 18786}])])
    address = "tcp://dask-scheduler.team-a.svc.cluster.local:8786"
    logs = {name: open(tmp_path / f"{name}.log", "w+") for name in ("scheduler", "worker")}  # noqa: SIM115
    sched = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "18786",
                              "--dashboard-address", ":0"], env=pod_env(net, A),
                             stdout=logs["scheduler"], stderr=subprocess.STDOUT)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                               "--nthreads", "1", "--no-dashboard"], env=pod_env(net, B),
                              stdout=logs["worker"], stderr=subprocess.STDOUT)
    try:
        out = run_in_pod(net, C, CLIENT, DASK_SCHEDULER_ADDRESS=address)
        assert out["total"] == 5050
        assert out["scheduler"] == f"tcp://{A}:18786"
        assert len(out["workers"]) == 1 and out["workers"][0].startswith(f"tcp://{B}:")
        text = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
        assert re.search(rf"Scheduler at: +tcp://{re.escape(A)}:18786\n", text["scheduler"])
        assert re.search(rf"Start worker at: +tcp://{re.escape(B)}:\d+\n", text["worker"])
    finally:
        for proc in (worker, sched):
            proc.terminate()
        for proc in (worker, sched):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for fh in logs.values():
            fh.close()


# -- the watch loop, against a fake API -------------------------------------------------------
class FakeResponse:
    def __init__(self, body: Any = None, lines: list[str] | None = None, hold: bool = False) -> None:
        self.body, self.lines, self.hold = body, lines or [], hold

    def json(self) -> Any:
        return self.body

    async def aiter_lines(self):  # type: ignore[no-untyped-def]
        for line in self.lines:
            yield line
        if self.hold:
            await asyncio.sleep(3600)


class FakeAPI:
    """Lists and watches Services: one scripted listing per list call (the last one repeats),
    scripted watch streams, then a held stream; ``refuse`` answers every list with a 403."""

    def __init__(self) -> None:
        self.lists: list[list[dict[str, Any]]] = [[]]
        self.streams: list[list[str]] = []
        self.calls: list[tuple[str, str | None]] = []
        self.refuse = False

    @asynccontextmanager
    async def call_api(self, method: str, version: str, url: str, params: dict[str, str] | None = None,
                       stream: bool = False, timeout: Any = None):  # type: ignore[no-untyped-def]
        self.calls.append((url, (params or {}).get("resourceVersion")))
        if self.refuse:
            raise RefusedError(url)
        if not stream:
            items = self.lists.pop(0) if len(self.lists) > 1 else self.lists[0]
            yield FakeResponse({"items": items, "metadata": {"resourceVersion": "10"}})
        elif self.streams:
            yield FakeResponse(lines=self.streams.pop(0))
        else:
            yield FakeResponse(hold=True)


class RefusedError(Exception):
    """What kr8s raises for an error answer: the response is attached."""

    def __init__(self, resource: str) -> None:
        super().__init__("403")
        message = (f'{resource} is forbidden: User "system:node:n" cannot list resource '
                   f'"{resource}" in API group "" at the cluster scope')
        self.response = FakeResponse({"kind": "Status", "code": 403, "reason": "Forbidden",
                                      "message": message})
        self.response.status_code = 403  # type: ignore[attr-defined]
        self.response.text = message  # type: ignore[attr-defined]


def ev(kind: str, obj: dict[str, Any], rv: str) -> str:
    obj = json.loads(json.dumps(obj))
    obj["metadata"]["resourceVersion"] = rv
    return json.dumps({"type": kind, "object": obj})


async def wait_map(net: PodNetwork, predicate: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 5
    while True:
        data = json.loads(net.map_file.read_text())["services"]
        if predicate(data) or time.monotonic() > deadline:
            return data  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)


async def test_start_lists_watches_relists_and_follows_the_nodes_pods(tmp_path: Path) -> None:
    api = FakeAPI()
    web = service("ns", "web", [{"port": 80}])
    db = service("ns", "db", [{"port": 5432}])
    api.lists = [[dict(web, metadata={"namespace": "ns", "name": "web", "resourceVersion": "3"})],
                 [dict(db, metadata={"namespace": "ns", "name": "db", "resourceVersion": "15"})]]
    api.streams = [[
        ev("ADDED", db, "13"),
        json.dumps({"type": "BOOKMARK", "object": {"kind": "Service", "metadata": {"resourceVersion": "14"}}}),
        json.dumps({"type": "ERROR", "object": {"kind": "Status", "code": 410}}),
    ]]
    net = PodNetwork(tmp_path)
    await net.start(api)
    try:
        data = await wait_map(net, lambda d: set(d) == {"ns/db"})
        assert set(data) == {"ns/db"}
        # the 410 made it list again (resourceVersion None) rather than retry the stale watch
        assert api.calls[:3] == [("services", None), ("services", "10"), ("services", None)]
        pod = backend("ns", "db-0", A, {"svc": "db"})
        net.observe_pod(pod)
        data = await wait_map(net, lambda d: d["ns/db"]["backends"])
        assert [b["ip"] for b in data["ns/db"]["backends"]] == [A]
        net.forget_pod(pod["metadata"]["uid"])
        data = await wait_map(net, lambda d: not d["ns/db"]["backends"])
        assert data["ns/db"]["backends"] == []
    finally:
        await net.stop()


async def test_start_says_which_right_is_missing(tmp_path: Path) -> None:
    api = FakeAPI()
    api.refuse = True
    net = PodNetwork(tmp_path)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError) as err:
        await net.start(api)
    assert time.monotonic() - t0 < 10
    text = str(err.value)
    assert 'cannot list resource "services"' in text and "system:node-proxier" in text


def test_two_kubelets_on_one_machine_never_share_pod_addresses(tmp_path: Path) -> None:
    first = PodNetwork(tmp_path / "one")
    second = PodNetwork(tmp_path / "two")
    try:
        assert first.network != second.network
        assert first.allocate("a") != second.allocate("a")
    finally:
        first.release_lease()
        second.release_lease()
