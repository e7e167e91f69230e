"""The Pod policy: what the operator refuses to put in any Pod it creates for a user.

Whoever may create a DaskJob or a DaskCluster gets Pods made for them by the operator, which
holds the right to create Pods that the user may lack. Without a policy that right is lent out
whole: the Pods may run as any ServiceAccount of the namespace, mount the node's files, join
the host's network or run privileged. So the operator checks every Pod spec it would create
against three rules before it creates anything:

* a Pod Security Standards level (``privileged``, ``baseline``, ``restricted``), with the
  checks Kubernetes' Pod Security admission makes at that level (``check_level``);
* the ServiceAccounts a Pod may name: the namespace's ``default`` account always (it is what
  a Pod that names none runs as), others only when the administrator lists them;
* fields the administrator forbids outright (``forbiddenFields``, PodSpec paths).

The default is the ``baseline`` level and the ``default`` account only: it lets through every
ordinary Dask Pod (no host access, no extra privileges) and closes the holes above. The policy
is written in the limits file (``podPolicy``, see ``limits.py``); everything here is pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
DEFAULT_LEVEL = BASELINE
DEFAULT_ACCOUNT = "default"
ANY_ACCOUNT = "*"
KEYS = ("level", "allowedServiceAccounts", "forbiddenFields")

#: Capabilities the baseline level lets a container add (the container runtime's default set).
BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
#: Sysctls that are namespaced and safe: the only ones the baseline level allows.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes"})
SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ALLOWED = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
#: Volume sources the restricted level allows (none of them reaches the node's own files).
RESTRICTED_VOLUMES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret"})
_CONTAINER_KINDS = ("initContainers", "containers", "ephemeralContainers")
_FIELD_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\[\])?(\.[A-Za-z][A-Za-z0-9]*(\[\])?)*$")


class PodPolicyError(ValueError):
    """A malformed ``podPolicy`` entry; ``field`` is its path under ``podPolicy``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True)
class PodPolicy:
    """The policy in force in one namespace. ``where`` maps each key to the words that say
    where it is set (``ConfigMap a/b, key limits.yaml, field podPolicy.level``); a key
    missing there is the operator's default."""

    level: str = DEFAULT_LEVEL
    service_accounts: tuple[str, ...] = ()
    forbidden_fields: tuple[str, ...] = ()
    where: Mapping[str, str] = field(default_factory=dict)

    def set_by(self, key: str) -> str:
        if key in self.where:
            return f"set by the operator's administrator ({self.where[key]})"
        return (f"the operator's default; an administrator sets podPolicy.{key} in the "
                "operator's limits ConfigMap, the chart's values.limits")


DEFAULT_POLICY = PodPolicy()


@dataclass(frozen=True)
class PolicyViolation:
    """One refused value: the ``field`` in the user's object and the rule it breaks."""

    field: str
    message: str


# -- the configuration -----------------------------------------------------------------------
def check_section(value: Any) -> dict[str, Any]:
    """Validate a ``podPolicy`` mapping; raises PodPolicyError naming the bad entry."""
    if not isinstance(value, dict):
        raise PodPolicyError("", "must be a mapping with the keys " + ", ".join(KEYS))
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key not in KEYS:
            raise PodPolicyError(str(key), f"unknown key; the keys are {', '.join(KEYS)}")
        if item is None:
            out[key] = None
        elif key == "level":
            if item not in LEVELS:
                raise PodPolicyError(key, f"must be one of {', '.join(LEVELS)}, not {item!r}")
            out[key] = item
        elif key == "allowedServiceAccounts":
            if not isinstance(item, list) or not all(isinstance(a, str) and a for a in item):
                raise PodPolicyError(key, 'must be a list of ServiceAccount names ("*": any)')
            out[key] = list(item)
        else:
            if not isinstance(item, list) or not all(isinstance(f, str) and _FIELD_PATH.match(f)
                                                     for f in item):
                raise PodPolicyError(key, "must be a list of PodSpec field paths such as "
                                          "hostAliases or containers[].lifecycle")
            out[key] = list(item)
    return out


def from_section(section: Mapping[str, Any] | None, where: Mapping[str, str]) -> PodPolicy:
    """The policy of a merged, validated ``podPolicy`` section; ``where`` says where each key
    is set (keys set to null fall back to the default)."""
    section = section or {}
    return PodPolicy(
        level=section.get("level") or DEFAULT_LEVEL,
        service_accounts=tuple(section.get("allowedServiceAccounts") or ()),
        forbidden_fields=tuple(section.get("forbiddenFields") or ()),
        where={k: v for k, v in where.items() if section.get(k) is not None})


# -- the checks ------------------------------------------------------------------------------
def _containers(spec: Mapping[str, Any], path: str) -> Iterator[tuple[str, Obj]]:
    for kind in _CONTAINER_KINDS:
        for i, c in enumerate(spec.get(kind) or []):
            yield f"{path}.{kind}[{i}]", c


def _level_rule(level: str) -> str:
    return f"not allowed at the {level} Pod Security Standards level"


def _baseline(spec: Mapping[str, Any], path: str, annotations: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, what is wrong) for every baseline check a Pod spec fails."""
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield f"{path}.{key}", f"{key}=true shares the node's namespaces"
    pod_sc = spec.get("securityContext") or {}
    contexts = [(f"{path}.securityContext", pod_sc)] + \
        [(f"{cpath}.securityContext", c.get("securityContext") or {}) for cpath, c in _containers(spec, path)]
    for sc_path, sc in contexts:
        if (sc.get("windowsOptions") or {}).get("hostProcess"):
            yield f"{sc_path}.windowsOptions.hostProcess", "HostProcess containers run on the host"
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp == "Unconfined":
            yield f"{sc_path}.seccompProfile.type", "an Unconfined seccomp profile"
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor is not None and apparmor not in APPARMOR_ALLOWED:
            yield f"{sc_path}.appArmorProfile.type", f"AppArmor profile {apparmor!r} (only RuntimeDefault or Localhost)"
        selinux = sc.get("seLinuxOptions") or {}
        if (selinux.get("type") or "") not in SELINUX_TYPES:
            yield f"{sc_path}.seLinuxOptions.type", f"SELinux type {selinux['type']!r}"
        for key in ("user", "role"):
            if selinux.get(key):
                yield f"{sc_path}.seLinuxOptions.{key}", f"a custom SELinux {key}"
    for i, sysctl in enumerate(pod_sc.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield f"{path}.securityContext.sysctls[{i}].name", f"the unsafe sysctl {sysctl.get('name')!r}"
    for cpath, c in _containers(spec, path):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            yield f"{cpath}.securityContext.privileged", "a privileged container"
        added = [a for a in (sc.get("capabilities") or {}).get("add") or [] if a not in BASELINE_CAPABILITIES]
        if added:
            yield f"{cpath}.securityContext.capabilities.add", f"adding the capabilities {', '.join(added)}"
        if sc.get("procMount") not in (None, "Default"):
            yield f"{cpath}.securityContext.procMount", f"procMount {sc['procMount']!r} (only Default)"
        for j, port in enumerate(c.get("ports") or []):
            if port.get("hostPort"):
                yield f"{cpath}.ports[{j}].hostPort", f"hostPort {port['hostPort']} opens a port on the node"
    for i, volume in enumerate(spec.get("volumes") or []):
        if "hostPath" in volume:
            yield f"{path}.volumes[{i}].hostPath", "a hostPath volume mounts the node's files"
    for key, value in annotations.items():
        if key.startswith(APPARMOR_ANNOTATION) and value and value != "runtime/default" and \
                not str(value).startswith("localhost/"):
            yield f"metadata.annotations[{key}]", f"AppArmor profile {value!r}"


def _restricted(spec: Mapping[str, Any], path: str) -> Iterator[tuple[str, str]]:
    """(field, what is wrong) for the checks the restricted level adds to baseline."""
    for i, volume in enumerate(spec.get("volumes") or []):
        kinds = [k for k in volume if k != "name" and k not in RESTRICTED_VOLUMES]
        if kinds and "hostPath" not in kinds:  # hostPath is already baseline's
            yield f"{path}.volumes[{i}].{kinds[0]}", f"a {kinds[0]} volume (only {', '.join(sorted(RESTRICTED_VOLUMES))})"
    pod_sc = spec.get("securityContext") or {}
    if pod_sc.get("runAsUser") == 0:
        yield f"{path}.securityContext.runAsUser", "running as user 0 (root)"
    pod_non_root = pod_sc.get("runAsNonRoot")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_non_root is False:
        yield f"{path}.securityContext.runAsNonRoot", "runAsNonRoot=false"
    for cpath, c in _containers(spec, path):
        sc = c.get("securityContext") or {}
        sc_path = f"{cpath}.securityContext"
        if sc.get("allowPrivilegeEscalation") is not False:
            yield f"{sc_path}.allowPrivilegeEscalation", "allowPrivilegeEscalation must be false"
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            yield f"{sc_path}.capabilities.drop", 'capabilities.drop must include "ALL"'
        added = [a for a in caps.get("add") or [] if a not in RESTRICTED_CAPABILITIES]
        if added:
            yield f"{sc_path}.capabilities.add", f"adding {', '.join(added)} (only NET_BIND_SERVICE)"
        non_root = sc.get("runAsNonRoot")
        if non_root is False or (non_root is None and pod_non_root is not True):
            yield f"{sc_path}.runAsNonRoot", ("runAsNonRoot must be true (here or in "
                                              f"{path}.securityContext)")
        if sc.get("runAsUser") == 0:
            yield f"{sc_path}.runAsUser", "running as user 0 (root)"
        seccomp = (sc.get("seccompProfile") or {}).get("type")
        if seccomp is None and pod_seccomp not in SECCOMP_ALLOWED:
            yield f"{sc_path}.seccompProfile.type", ("a seccomp profile of RuntimeDefault or "
                                                     f"Localhost must be set (here or in {path}.securityContext)")


def check_level(level: str, spec: Mapping[str, Any] | None, path: str,
                annotations: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """The Pod Security Standards checks of ``level`` on a Pod spec written at ``path``:
    (field, what is wrong) for each failure, none at ``privileged``.

    >>> check_level("baseline", {"hostNetwork": True, "containers": []}, "spec")
    [('spec.hostNetwork', "hostNetwork=true shares the node's namespaces")]
    """
    spec = spec or {}
    if level == PRIVILEGED:
        return []
    found = list(_baseline(spec, path, annotations or {}))
    if level == RESTRICTED:
        found += [f for f in _restricted(spec, path) if f[0] not in {g[0] for g in found}]
    return found


def _present(value: Any) -> bool:
    return value not in (None, False, "", [], {})


def _forbidden(spec: Mapping[str, Any], rule: str, path: str) -> Iterator[str]:
    """Paths at which the forbidden field ``rule`` (``containers[].lifecycle``) is set;
    ``containers[]`` covers init and ephemeral containers too."""
    head, _, rest = rule.partition(".")
    if head == "containers[]":
        for cpath, c in _containers(spec, path):
            yield from _forbidden(c, rest, cpath) if rest else ([cpath] if _present(c) else [])
        return
    if head.endswith("[]"):
        key = head[:-2]
        for i, item in enumerate(spec.get(key) or []):
            here = f"{path}.{key}[{i}]"
            if not rest:
                yield here
            elif isinstance(item, Mapping):
                yield from _forbidden(item, rest, here)
        return
    value = spec.get(head)
    if rest:
        if isinstance(value, Mapping):
            yield from _forbidden(value, rest, f"{path}.{head}")
    elif _present(value):
        yield f"{path}.{head}"


def _account(spec: Mapping[str, Any]) -> tuple[str, str]:
    for key in ("serviceAccountName", "serviceAccount"):  # the second is the deprecated alias
        if spec.get(key):
            return key, spec[key]
    return "serviceAccountName", DEFAULT_ACCOUNT


def check_pod_spec(policy: PodPolicy, spec: Mapping[str, Any] | None, path: str,
                   annotations: Mapping[str, Any] | None = None) -> list[PolicyViolation]:
    """Every rule of ``policy`` a Pod spec written at ``path`` breaks, each message naming
    the field, the rule and where the rule is set."""
    spec = spec or {}
    found: list[PolicyViolation] = []
    key, account = _account(spec)
    allowed = policy.service_accounts
    if account != DEFAULT_ACCOUNT and ANY_ACCOUNT not in allowed and account not in allowed:
        others = ", ".join(allowed) if allowed else "no other"
        found.append(PolicyViolation(f"{path}.{key}", (
            f"{path}.{key}={account!r}: only the namespace's default ServiceAccount and "
            f"{others} may be named by a Pod the operator creates "
            f"(allowedServiceAccounts, {policy.set_by('allowedServiceAccounts')})")))
    for fpath, problem in check_level(policy.level, spec, path, annotations):
        found.append(PolicyViolation(fpath, (
            f"{fpath}: {problem}; {_level_rule(policy.level)} ({policy.set_by('level')})")))
    for rule in policy.forbidden_fields:
        for fpath in _forbidden(spec, rule, path):
            found.append(PolicyViolation(fpath, (
                f"{fpath} is set, and {rule} is forbidden in Pods the operator creates "
                f"(forbiddenFields, {policy.set_by('forbiddenFields')})")))
    return found


def _template(owner: Mapping[str, Any] | None, path: str, policy: PodPolicy) -> list[PolicyViolation]:
    """A ``{metadata, spec}`` Pod template (the runner, the scheduler, a worker group)."""
    owner = owner or {}
    annotations = (owner.get("metadata") or {}).get("annotations") or {}
    return check_pod_spec(policy, owner.get("spec"), f"{path}.spec", annotations)


def check_cluster_spec(policy: PodPolicy, spec: Mapping[str, Any] | None,
                       path: str = "spec") -> list[PolicyViolation]:
    """The scheduler's and the workers' Pod templates of a DaskCluster spec at ``path``."""
    spec = spec or {}
    return _template(spec.get("scheduler"), f"{path}.scheduler", policy) + \
        _template(spec.get("worker"), f"{path}.worker", policy)


def check_job_spec(policy: PodPolicy, spec: Mapping[str, Any] | None) -> list[PolicyViolation]:
    """The runner's template and, unless the job uses an existing cluster, its cluster's."""
    spec = spec or {}
    return _template(spec.get("job"), "spec.job", policy) + \
        check_cluster_spec(policy, (spec.get("cluster") or {}).get("spec"), "spec.cluster.spec")


def check_worker_group_spec(policy: PodPolicy, spec: Mapping[str, Any] | None) -> list[PolicyViolation]:
    return _template((spec or {}).get("worker"), "spec.worker", policy)


def summary(found: Iterable[PolicyViolation]) -> str:
    """One message: every rule broken, and what to do."""
    found = list(found)
    head = "refused by the operator's Pod policy, before any Pod was created: "
    return head + "; ".join(v.message for v in found) + \
        "; change the spec, or ask your administrator to allow it"
