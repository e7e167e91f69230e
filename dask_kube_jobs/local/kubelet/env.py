"""A container's environment and command line, built the way the kubelet builds them.

Manifests written for a real cluster must see the same variables here: Service link variables
first, then ``envFrom``, then ``env`` (each value expanded against what is defined before it),
and ``$(VAR)`` references in command and args expanded against the result with Kubernetes' own
rules (``$$`` escapes, unknown references stay as written). Missing ConfigMaps, Secrets or keys
raise :class:`ContainerConfigError` with the kubelet's message, which becomes the container's
``CreateContainerConfigError`` waiting state.

The process environment is then that container environment over a small base (PATH with this
Python environment first, HOME, HOSTNAME, locale): nothing of the kubelet's own environment
(its KUBECONFIG, DASK_* settings...) leaks into Pods, as nothing of a node's leaks into a
container.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .resources import format_resource_field

Fetch = Callable[[str, str, str], Awaitable["dict[str, Any] | None"]]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_INHERITED = ("LANG", "LANGUAGE", "LC_ALL", "TZ", "USER", "LOGNAME", "SSL_CERT_FILE",
              "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "LD_LIBRARY_PATH")


class ContainerConfigError(Exception):
    """The container cannot be configured yet (reason ``CreateContainerConfigError``)."""


def expand(text: str, mapping: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion (k8s.io/kubernetes/third_party/forked/golang/expansion)."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                else:
                    name = text[cursor + 2:close]
                    out.append(mapping.get(name, f"$({name})"))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def field_ref(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    m = _SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip, "status.podIPs": pod_ip,
        "status.hostIP": host_ip, "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path] or "")
    if path in ("metadata.labels", "metadata.annotations"):
        return format_map(meta.get(path.split(".")[1]) or {})
    raise ContainerConfigError(f'unsupported fieldRef path "{path}"')


def format_map(values: Mapping[str, Any]) -> str:
    """Downward API rendering of labels/annotations: sorted ``key="value"`` lines."""
    import json

    return "\n".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(values.items()))


def service_env(services: list[dict[str, Any]]) -> dict[str, str]:
    """``<SVC>_SERVICE_HOST/PORT`` and Docker-link variables for the namespace's Services."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec") or {}
        ip = spec.get("clusterIP")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        ports = spec.get("ports") or []
        name = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = ip
        if not ports:
            continue
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            prefix = f"{name}_PORT_{p['port']}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p["port"])
            env[f"{prefix}_ADDR"] = ip
    return env


def _decode(value: str) -> str:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return value


def _data(obj: dict[str, Any], kind: str) -> dict[str, str]:
    if kind == "Secret":
        data = {k: _decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update(obj.get("stringData") or {})
        return data
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


async def _source(fetch: Fetch, kind: str, namespace: str, name: str,
                  cache: dict[tuple[str, str], dict[str, str] | None]) -> dict[str, str] | None:
    key = (kind, name)
    if key not in cache:
        plural = "secrets" if kind == "Secret" else "configmaps"
        obj = await fetch(plural, namespace, name)
        cache[key] = None if obj is None else _data(obj, kind)
    return cache[key]


async def container_env(pod: dict[str, Any], container: dict[str, Any], *, pod_ip: str,
                        host_ip: str, allocatable: dict[str, str], fetch: Fetch,
                        services: list[dict[str, Any]]) -> dict[str, str]:
    """The variables Kubernetes defines for ``container`` (no base environment)."""
    namespace = pod["metadata"]["namespace"]
    spec = pod.get("spec") or {}
    env: dict[str, str] = {}
    if spec.get("enableServiceLinks", True):
        env.update(service_env(services))
    cache: dict[tuple[str, str], dict[str, str] | None] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix") or ""
        for kind, field in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(field)
            if not ref:
                continue
            data = await _source(fetch, kind, namespace, ref.get("name", ""), cache)
            if data is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            for key, value in data.items():
                if _ENV_NAME.match(prefix + key):
                    env[prefix + key] = value
    for var in container.get("env") or []:
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = expand(str(var.get("value", "")), env)
            continue
        vf = var["valueFrom"] or {}
        if "fieldRef" in vf:
            env[name] = field_ref(pod, vf["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in vf:
            ref = vf["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                target = next((c for c in [*(spec.get("containers") or []),
                                           *(spec.get("initContainers") or [])]
                               if c.get("name") == ref["containerName"]), container)
            env[name] = format_resource_field(ref["resource"], target, ref.get("divisor"),
                                              allocatable)
        else:
            for kind, field in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                ref = vf.get(field)
                if not ref:
                    continue
                data = await _source(fetch, kind, namespace, ref.get("name", ""), cache)
                if data is None:
                    if ref.get("optional"):
                        break
                    raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
                if ref["key"] not in data:
                    if ref.get("optional"):
                        break
                    raise ContainerConfigError(
                        f"couldn't find key {ref['key']} in {kind} {namespace}/{ref.get('name', '')}")
                env[name] = data[ref["key"]]
    return env


def python_bin_dir() -> str:
    return os.path.dirname(sys.executable)


def process_env(container_vars: Mapping[str, str], *, hostname: str, home: str, tmpdir: str,
                extra: Mapping[str, str]) -> dict[str, str]:
    """The environment a container process starts with: a base, then the container's vars.

    ``extra`` (the per-Pod KUBECONFIG, the network shim's variables, the termination-message
    path) is applied last except PYTHONPATH, which is prepended to any user PYTHONPATH so the
    Pod network keeps working when a manifest sets its own.
    """
    bindir = python_bin_dir()
    system_path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    env = {k: v for k, v in os.environ.items() if k in _INHERITED or k.startswith("LC_")}
    env.update({"PATH": f"{bindir}:{system_path}", "HOME": home, "TMPDIR": tmpdir,
                "HOSTNAME": hostname,
                "VIRTUAL_ENV": sys.prefix, "PYTHONUNBUFFERED": "1"})
    env.update(container_vars)
    parts = env["PATH"].split(":")
    if bindir not in parts:
        env["PATH"] = f"{bindir}:{env['PATH']}"
    for key, value in extra.items():
        if key == "PYTHONPATH" and env.get("PYTHONPATH"):
            env[key] = f"{value}:{env['PYTHONPATH']}"
        else:
            env[key] = value
    return env


def command_line(container: dict[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args with ``$(VAR)`` expanded; with no command the args are run (the Dask
    image's entrypoint runs ``exec "$@"``)."""
    command = [expand(str(c), env) for c in container.get("command") or []]
    args = [expand(str(a), env) for a in container.get("args") or []]
    return command + args
