"""Readiness, liveness and startup probes, and lifecycle hooks, with the kubelet's semantics.

A probe's result changes only after ``successThreshold`` consecutive successes or
``failureThreshold`` consecutive failures; liveness and readiness probes wait until the startup
probe (if any) has succeeded. HTTP probes are written by hand on asyncio streams (a single
``GET`` with ``User-Agent: kube-probe/1.32``, any status in [200, 400) is success) so a probe
never leaves client sessions behind. ``exec`` probes run the command with the container's
environment and inside its mount namespace (``container.enter_argv``), so they see its volumes
as it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .container import enter_argv

DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "timeoutSeconds": 1,
            "successThreshold": 1, "failureThreshold": 3}


@dataclass
class Target:
    """What a probe or hook needs to reach a running container."""

    pod_ip: str
    container: dict[str, Any]
    env: dict[str, str]
    pid: int | None
    workdir: str
    namespace_mode: bool
    #: argv prefix that runs a command as the container's user (``Identity.setpriv``)
    run_as: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_port(port: Any, container: dict[str, Any]) -> int:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} not found in the container's ports")


async def http_get(spec: dict[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    scheme = (spec.get("scheme") or "HTTP").upper()
    host = spec.get("host") or target.pod_ip
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    try:
        port = resolve_port(spec.get("port"), target.container)
    except ValueError as exc:
        return False, str(exc)
    url = f"{scheme.lower()}://{host}:{port}{path}"
    headers = {"Host": f"{host}:{port}", "User-Agent": "kube-probe/1.32", "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        headers[h["name"]] = h["value"]
    ctx = None
    if scheme == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port, ssl=ctx)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"GET {path} HTTP/1.1\r\n{head}Connection: close\r\n\r\n".encode())
            await writer.drain()
            status_line = (await reader.readline()).decode("latin-1").split()
            code = int(status_line[1]) if len(status_line) > 1 else 0
    except TimeoutError:
        return False, (f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while '
                       "awaiting headers)")
    except (OSError, ValueError) as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: {reason}'
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    if 200 <= code < 400:
        return True, ""
    return False, f"HTTP probe failed with statuscode: {code}"


async def tcp_socket(spec: dict[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    host = spec.get("host") or target.pod_ip
    try:
        port = resolve_port(spec.get("port"), target.container)
    except ValueError as exc:
        return False, str(exc)
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host, port)
    except TimeoutError:
        return False, f"dial tcp {host}:{port}: i/o timeout"
    except OSError:
        return False, f"dial tcp {host}:{port}: connect: connection refused"
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True, ""


async def exec_command(spec: dict[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    command = [str(c) for c in spec.get("command") or []]
    if not command:
        return False, "exec probe without a command"
    argv = enter_argv(command, pid=target.pid, workdir=target.workdir,
                      namespace_mode=target.namespace_mode, run_as=target.run_as)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, env=target.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True)
    except OSError as exc:
        return False, str(exc)
    try:
        async with asyncio.timeout(timeout):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return False, f"command {shlex.join(command)!r} timed out"
    text = out.decode(errors="replace")[-10240:].strip()
    if proc.returncode == 0:
        return True, text
    return False, text or f"command {shlex.join(command)!r} exited with {proc.returncode}"


async def run_handler(handler: dict[str, Any], target: Target, timeout: float) -> tuple[bool, str]:
    """One probe or lifecycle-hook action: ``httpGet``, ``tcpSocket``, ``exec`` (or ``sleep``)."""
    if "httpGet" in handler:
        return await http_get(handler["httpGet"], target, timeout)
    if "tcpSocket" in handler:
        return await tcp_socket(handler["tcpSocket"], target, timeout)
    if "exec" in handler:
        return await exec_command(handler["exec"], target, timeout)
    if "sleep" in handler:
        await asyncio.sleep(float(handler["sleep"].get("seconds", 0)))
        return True, ""
    return False, "unsupported probe handler (grpc probes are not supported)"


class ProbeLoop:
    """Runs one probe of one container and reports result changes.

    ``on_result(kind, ok)`` is called when the thresholded result changes (the first time as
    well); ``on_failure(kind, message)`` for every failed attempt (the ``Unhealthy`` Event).
    A startup probe stops after its first success; a failed liveness or startup probe stops
    after reporting, since the container is then restarted.
    """

    def __init__(self, kind: str, spec: dict[str, Any], target: Callable[[], Target],
                 on_result: Callable[[str, bool], None],
                 on_failure: Callable[[str, str], None]) -> None:
        self.kind = kind
        self.spec = {**DEFAULTS, **spec}
        self.target = target
        self.on_result = on_result
        self.on_failure = on_failure
        self.result: bool | None = None

    async def run(self) -> None:
        s = self.spec
        period = max(float(s["periodSeconds"]), 0.1)
        timeout = max(float(s["timeoutSeconds"]), 0.1)
        success_threshold = int(s["successThreshold"]) if self.kind == "readiness" else 1
        failure_threshold = max(int(s["failureThreshold"]), 1)
        await asyncio.sleep(float(s["initialDelaySeconds"]))
        successes = failures = 0
        while True:
            ok, message = await run_handler(s, self.target(), timeout)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                self.on_failure(self.kind, message)
            new = self.result
            if ok and successes >= success_threshold:
                new = True
            elif not ok and failures >= failure_threshold:
                new = False
            if new != self.result:
                self.result = new
                self.on_result(self.kind, bool(new))
            if self.kind == "startup" and self.result is not None:
                return
            if self.kind == "liveness" and self.result is False:
                return
            await asyncio.sleep(period)
