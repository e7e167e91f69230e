"""Pod spec validation: the rules kube-apiserver 1.32 applies to a Pod's containers, ports,
environment, resources and volumes (``pkg/apis/core/validation``), worded as it words them.

Pods are what users and the operator create most, and what the kubelet trusts: a name the
kubelet cannot turn into an environment variable, a memory limit that does not parse, a mount of
a volume that does not exist must be refused here, with the field path and message a real
cluster gives, rather than accepted and then fail on the node. The rules are grouped in one
function per part of the spec (containers, ports, env, resources, volumes), each called from the
table in ``builtins``; Deployments and ReplicaSets check their template through the same code.

Resource quantities are special: on a real server they are parsed while the request body is
decoded, so one that does not parse is a 400 (``Pod in version "v1" cannot be handled as a
Pod: quantities must match the regular expression ...``) before any validation runs;
``decode_quantities`` reproduces that. Canonical printing of quantities is not reproduced: an
error shows the value as it was sent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from . import errors
from .errors import Cause
from .fielderrors import duplicate, forbidden, invalid, not_supported, required
from .objectmeta import is_dns1123_label

Obj = dict[str, Any]

QUANTITY_FMT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
QUANTITY_FORMAT_WRONG = f"quantities must match the regular expression '{QUANTITY_FMT}'"
QUANTITY_SUFFIX = "unable to parse quantity's suffix"
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
#: Resource names a container may ask for without a domain (``IsStandardContainerResourceName``).
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
    "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder",
    "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume",
    "quobyte", "azureDisk", "photonPersistentDisk", "projected", "portworxVolume", "scaleIO",
    "storageos", "csi", "ephemeral", "image",
)


# -- quantities -------------------------------------------------------------------------------

def parse_quantity(value: Any) -> Decimal:
    """A resource quantity's value, or ValueError with apimachinery's message."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(QUANTITY_FORMAT_WRONG)
    text = str(value).strip() if not isinstance(value, str) else value
    m = re.fullmatch(r"([+-]?)([0-9]*)(\.[0-9]*)?([eEinumkKMGTP]*)([-+]?[0-9]*)", text)
    if not text or m is None:
        raise ValueError(QUANTITY_FORMAT_WRONG)
    sign, whole, frac, letters, exp_digits = m.groups()
    suffix = letters + exp_digits
    try:
        number = Decimal(sign + (whole or "0") + (frac if frac and frac != "." else ""))
    except InvalidOperation:
        raise ValueError(QUANTITY_FORMAT_WRONG) from None
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number.scaleb(_DECIMAL[suffix])
    if len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        return number.scaleb(int(suffix[1:]))
    raise ValueError(QUANTITY_SUFFIX)


def _containers(spec: Obj) -> list[Obj]:
    return [c for field in ("initContainers", "containers")
            for c in (spec.get(field) or []) if isinstance(c, dict)]


def decode_quantities(kind: str, version: str, spec: Any) -> None:
    """Refuse, as the decoder does, a Pod spec with a resource quantity that does not parse."""
    if not isinstance(spec, dict):
        return
    for c in _containers(spec):
        resources = c.get("resources") if isinstance(c.get("resources"), dict) else {}
        for part in ("requests", "limits"):
            amounts = resources.get(part)
            for value in (amounts.values() if isinstance(amounts, dict) else ()):
                try:
                    parse_quantity(value)
                except ValueError as exc:
                    raise errors.bad_request(
                        f'{kind} in version "{version}" cannot be handled as a {kind}: {exc}'
                    ) from None


# -- names ------------------------------------------------------------------------------------

def port_name_errors(name: str) -> list[str]:
    """``IsValidPortName``: an IANA service name."""
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.fullmatch("[-a-z0-9]+", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_number_errors(field: str, port: Any) -> list[Cause]:
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return []
    return [invalid(field, port, "must be between 1 and 65535, inclusive")]


def _env_name_errors(name: str) -> list[str]:
    # RelaxedEnvironmentVariableValidation is on by default in 1.32: any printable ASCII but '='.
    if all(" " <= ch <= "~" and ch != "=" for ch in name):
        return []
    return ["a valid environment variable name must consist only of printable ASCII "
            "characters other than '='"]


# -- containers -------------------------------------------------------------------------------

def _ports(ports: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    names: set[str] = set()
    for j, p in enumerate(ports or []):
        here = f"{path}[{j}]"
        if not isinstance(p, dict):
            continue
        name = p.get("name")
        if name:
            errs += [invalid(f"{here}.name", name, m) for m in port_name_errors(str(name))]
            if name in names:
                errs.append(duplicate(f"{here}.name", name))
            names.add(name)
        if p.get("containerPort") in (None, 0):
            errs.append(required(f"{here}.containerPort"))
        else:
            errs += port_number_errors(f"{here}.containerPort", p.get("containerPort"))
        if p.get("hostPort"):
            errs += port_number_errors(f"{here}.hostPort", p["hostPort"])
        protocol = p.get("protocol")
        if not protocol:
            errs.append(required(f"{here}.protocol"))
        elif protocol not in ("SCTP", "TCP", "UDP"):
            errs.append(not_supported(f"{here}.protocol", protocol, ["SCTP", "TCP", "UDP"]))
    return errs


def _env(env: Any, path: str) -> list[Cause]:
    errs: list[Cause] = []
    for j, e in enumerate(env or []):
        here = f"{path}[{j}]"
        if not isinstance(e, dict):
            continue
        name = e.get("name")
        if not name:
            errs.append(required(f"{here}.name"))
        else:
            errs += [invalid(f"{here}.name", name, m) for m in _env_name_errors(str(name))]
        if e.get("value") and e.get("valueFrom"):
            errs.append(invalid(f"{here}.valueFrom", "",
                                "may not be specified when `value` is not empty"))
    return errs


def _resource_name_errors(name: str, field: str) -> list[Cause]:
    if name in STANDARD_CONTAINER_RESOURCES or name.startswith("hugepages-"):
        return []
    if "/" in name and not name.split("/", 1)[0].endswith("kubernetes.io"):
        return []  # an extended resource, e.g. nvidia.com/gpu
    return [invalid(field, name, "must be a standard resource for containers")]


def _resources(resources: Any, path: str) -> list[Cause]:
    if not isinstance(resources, dict):
        return []
    errs: list[Cause] = []
    parsed: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for part in ("limits", "requests"):
        amounts = resources.get(part)
        for name, value in (amounts.items() if isinstance(amounts, dict) else ()):
            here = f"{path}.{part}[{name}]"
            errs += _resource_name_errors(name, here)
            amount = parse_quantity(value)  # decode_quantities has refused what does not parse
            if amount < 0:
                errs.append(invalid(here, str(value), "must be greater than or equal to 0"))
            extended = "/" in name
            if extended and amount != amount.to_integral_value():
                errs.append(invalid(here, str(value), "must be an integer"))
            parsed[part][name] = amount
    limits, requests = parsed["limits"], parsed["requests"]
    for name, amount in requests.items():
        here = f"{path}.requests[{name}]"
        value = str(resources["requests"][name])
        if name in limits and amount > limits[name]:
            errs.append(invalid(here, value, f"must be less than or equal to {name} limit of "
                                f"{resources['limits'][name]}"))
        elif "/" in name and name not in limits:
            errs.append(required(f"{path}.limits",
                                 "Limit must be set for non overcommitable resources"))
        elif "/" in name and amount != limits[name]:
            errs.append(invalid(here, value, f"must be equal to {name} limit of "
                                f"{resources['limits'][name]}"))
    return errs


def _volume_mounts(mounts: Any, path: str, volumes: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    paths: set[str] = set()
    for j, m in enumerate(mounts or []):
        here = f"{path}[{j}]"
        if not isinstance(m, dict):
            continue
        name, mount_path = m.get("name"), m.get("mountPath")
        if not name:
            errs.append(required(f"{here}.name"))
        elif name not in volumes:
            errs.append(Cause(f"{here}.name", f'Not found: "{name}"', "FieldValueNotFound"))
        if not mount_path:
            errs.append(required(f"{here}.mountPath"))
        elif mount_path in paths:
            errs.append(invalid(f"{here}.mountPath", mount_path, "must be unique"))
        else:
            paths.add(mount_path)
    return errs


def _container(c: Obj, path: str, names: set[str], volumes: set[str]) -> list[Cause]:
    errs: list[Cause] = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    elif not isinstance(name, str) or is_dns1123_label(name):
        errs += [invalid(f"{path}.name", name, m) for m in is_dns1123_label(str(name))]
    elif name in names:
        errs.append(duplicate(f"{path}.name", name))
    else:
        names.add(name)
    image = c.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing "
                            "whitespace"))
    errs += _ports(c.get("ports"), f"{path}.ports")
    errs += _env(c.get("env"), f"{path}.env")
    errs += _resources(c.get("resources"), f"{path}.resources")
    errs += _volume_mounts(c.get("volumeMounts"), f"{path}.volumeMounts", volumes)
    return errs


def _volumes(volumes: Any, path: str) -> tuple[list[Cause], set[str]]:
    errs: list[Cause] = []
    names: set[str] = set()
    for i, v in enumerate(volumes or []):
        here = f"{path}[{i}]"
        if not isinstance(v, dict):
            continue
        name = v.get("name")
        if not name:
            errs.append(required(f"{here}.name"))
        else:
            errs += [invalid(f"{here}.name", name, m) for m in is_dns1123_label(str(name))]
            if name in names:
                errs.append(duplicate(f"{here}.name", name))
            names.add(name)
        sources = [k for k in VOLUME_SOURCES if v.get(k) is not None]
        if not sources:
            errs.append(required(here, "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(forbidden(f"{here}.{extra}", "may not specify more than 1 volume type"))
    return errs, names


def validate_containers(spec: Obj, path: str) -> list[Cause]:
    """Containers, init containers and volumes of a Pod spec at ``path`` (``spec``)."""
    errs, volumes = _volumes(spec.get("volumes"), f"{path}.volumes")
    names: set[str] = set()
    for field in ("initContainers", "containers"):
        containers = spec.get(field)
        if not containers:
            if field == "containers":
                errs.append(required(f"{path}.{field}"))
            continue
        if not isinstance(containers, list):
            errs.append(invalid(f"{path}.{field}", type(containers).__name__, "must be a list",
                                "FieldValueTypeInvalid"))
            continue
        for i, c in enumerate(containers):
            if isinstance(c, dict):
                errs += _container(c, f"{path}.{field}[{i}]", names, volumes)
            else:
                errs.append(invalid(f"{path}.{field}[{i}]", c, "must be an object",
                                    "FieldValueTypeInvalid"))
    return errs


def validate_pod_spec(spec: Any, path: str) -> list[Cause]:
    if not isinstance(spec, dict):
        return [required(path)]
    errs = validate_containers(spec, path)
    policy = spec.get("restartPolicy")
    if policy not in ("Always", "OnFailure", "Never"):
        errs.append(not_supported(f"{path}.restartPolicy", policy,
                                  ["Always", "OnFailure", "Never"]))
    return errs
