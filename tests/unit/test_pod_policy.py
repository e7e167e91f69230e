"""The operator's Pod policy: the Pod Security Standards checks per level, allowed
ServiceAccounts, forbidden fields, and the podPolicy section of the limits file."""

from __future__ import annotations

from typing import Any

import pytest

from dask_kube_jobs.operator import pod_policy
from dask_kube_jobs.operator.limits import LimitsConfigError, parse_policy
from dask_kube_jobs.operator.pod_policy import BASELINE, PRIVILEGED, RESTRICTED, PodPolicy

SOURCE = "ConfigMap dask-system/dask-operator-limits"


def container(**security: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": "c", "image": "ghcr.io/dask/dask"}
    if security:
        out["securityContext"] = security
    return out


def pod(*containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"containers": list(containers) or [container()], **spec}


#: A Pod that passes the restricted level: non-root, no escalation, every capability dropped,
#: the runtime's seccomp profile.
RESTRICTED_OK = container(runAsNonRoot=True, allowPrivilegeEscalation=False,
                          capabilities={"drop": ["ALL"]}, seccompProfile={"type": "RuntimeDefault"})


# -- the levels: (pod spec, the first field the level refuses, or None) -----------------------
CASES = [
    # an ordinary Dask Pod: fine at baseline, not restricted (it may run as root)
    ("plain", pod(), {BASELINE: None, RESTRICTED: "spec.containers[0].securityContext.allowPrivilegeEscalation"}),
    ("hostNetwork", pod(hostNetwork=True), {BASELINE: "spec.hostNetwork"}),
    ("hostNetwork-false", pod(hostNetwork=False), {BASELINE: None}),
    ("hostPID", pod(hostPID=True), {BASELINE: "spec.hostPID"}),
    ("hostIPC", pod(hostIPC=True), {BASELINE: "spec.hostIPC"}),
    ("privileged", pod(container(privileged=True)), {BASELINE: "spec.containers[0].securityContext.privileged"}),
    ("privileged-init", pod(container(), initContainers=[container(privileged=True)]),
     {BASELINE: "spec.initContainers[0].securityContext.privileged"}),
    ("cap-baseline-set", pod(container(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE"]})), {BASELINE: None}),
    ("cap-sys-admin", pod(container(capabilities={"add": ["SYS_ADMIN"]})),
     {BASELINE: "spec.containers[0].securityContext.capabilities.add"}),
    ("hostPath", pod(volumes=[{"name": "v", "hostPath": {"path": "/etc"}}]), {BASELINE: "spec.volumes[0].hostPath"}),
    ("emptyDir", pod(volumes=[{"name": "v", "emptyDir": {}}]), {BASELINE: None}),
    ("hostPort", pod({**container(), "ports": [{"containerPort": 80, "hostPort": 80}]}),
     {BASELINE: "spec.containers[0].ports[0].hostPort"}),
    ("containerPort", pod({**container(), "ports": [{"containerPort": 8786}]}), {BASELINE: None}),
    ("procMount", pod(container(procMount="Unmasked")), {BASELINE: "spec.containers[0].securityContext.procMount"}),
    ("procMount-default", pod(container(procMount="Default")), {BASELINE: None}),
    ("seccomp-unconfined", pod(securityContext={"seccompProfile": {"type": "Unconfined"}}),
     {BASELINE: "spec.securityContext.seccompProfile.type"}),
    ("sysctl-safe", pod(securityContext={"sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}]}),
     {BASELINE: None}),
    ("sysctl-unsafe", pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}),
     {BASELINE: "spec.securityContext.sysctls[0].name"}),
    ("apparmor-unconfined", pod(container(appArmorProfile={"type": "Unconfined"})),
     {BASELINE: "spec.containers[0].securityContext.appArmorProfile.type"}),
    ("apparmor-runtime", pod(container(appArmorProfile={"type": "RuntimeDefault"})), {BASELINE: None}),
    ("selinux-type", pod(securityContext={"seLinuxOptions": {"type": "spc_t"}}),
     {BASELINE: "spec.securityContext.seLinuxOptions.type"}),
    ("selinux-container-t", pod(securityContext={"seLinuxOptions": {"type": "container_t"}}), {BASELINE: None}),
    ("selinux-user", pod(container(seLinuxOptions={"user": "system_u"})),
     {BASELINE: "spec.containers[0].securityContext.seLinuxOptions.user"}),
    ("hostProcess", pod(securityContext={"windowsOptions": {"hostProcess": True}}),
     {BASELINE: "spec.securityContext.windowsOptions.hostProcess"}),
    # restricted
    ("restricted-ok", pod(RESTRICTED_OK), {BASELINE: None, RESTRICTED: None}),
    ("restricted-pod-level", pod(container(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
                                 securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost"}}),
     {RESTRICTED: None}),
    ("escalation", pod({**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"],
                                                              "allowPrivilegeEscalation": True}}),
     {BASELINE: None, RESTRICTED: "spec.containers[0].securityContext.allowPrivilegeEscalation"}),
    ("no-drop-all", pod({**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"],
                                                               "capabilities": {"drop": ["NET_RAW"]}}}),
     {RESTRICTED: "spec.containers[0].securityContext.capabilities.drop"}),
    ("add-chown", pod({**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"],
                                                             "capabilities": {"drop": ["ALL"], "add": ["CHOWN"]}}}),
     {BASELINE: None, RESTRICTED: "spec.containers[0].securityContext.capabilities.add"}),
    ("root-allowed", pod({**RESTRICTED_OK, "securityContext": {**RESTRICTED_OK["securityContext"],
                                                                "runAsNonRoot": False}}),
     {RESTRICTED: "spec.containers[0].securityContext.runAsNonRoot"}),
    ("uid-0", pod(RESTRICTED_OK, securityContext={"runAsUser": 0}),
     {BASELINE: None, RESTRICTED: "spec.securityContext.runAsUser"}),
    ("no-seccomp", pod({**RESTRICTED_OK, "securityContext": {k: v for k, v in RESTRICTED_OK["securityContext"].items()
                                                               if k != "seccompProfile"}}),
     {RESTRICTED: "spec.containers[0].securityContext.seccompProfile.type"}),
    ("nfs-volume", pod(RESTRICTED_OK, volumes=[{"name": "v", "nfs": {"server": "s", "path": "/"}}]),
     {BASELINE: None, RESTRICTED: "spec.volumes[0].nfs"}),
    ("projected-volume", pod(RESTRICTED_OK, volumes=[{"name": "v", "projected": {"sources": []}}]),
     {RESTRICTED: None}),
]


@pytest.mark.parametrize("spec,verdicts", [pytest.param(s, v, id=i) for i, s, v in CASES])
def test_each_level_refuses_what_pod_security_admission_refuses(spec: dict[str, Any],
                                                                 verdicts: dict[str, str | None]) -> None:
    for level, first in verdicts.items():
        fields = [f for f, _ in pod_policy.check_level(level, spec, "spec")]
        if first is None:
            assert fields == [], (level, fields)
        else:
            assert fields and fields[0] == first, (level, fields)
    assert pod_policy.check_level(PRIVILEGED, spec, "spec") == []


def test_baseline_refusals_hold_at_restricted_too() -> None:
    spec = pod(RESTRICTED_OK, hostNetwork=True)
    assert "spec.hostNetwork" in [f for f, _ in pod_policy.check_level(RESTRICTED, spec, "spec")]


def test_an_apparmor_annotation_is_checked_at_baseline() -> None:
    bad = {pod_policy.APPARMOR_ANNOTATION + "c": "unconfined"}
    good = {pod_policy.APPARMOR_ANNOTATION + "c": "runtime/default"}
    assert pod_policy.check_level(BASELINE, pod(), "spec", bad)
    assert pod_policy.check_level(BASELINE, pod(), "spec", good) == []


# -- ServiceAccounts and forbidden fields -----------------------------------------------------
@pytest.mark.parametrize("account,allowed,refused", [
    pytest.param(None, (), False, id="unnamed-is-default"),
    pytest.param("default", (), False, id="default"),
    pytest.param("admin", (), True, id="other-refused-by-default"),
    pytest.param("dask-runner", ("dask-runner",), False, id="listed"),
    pytest.param("admin", ("dask-runner",), True, id="not-listed"),
    pytest.param("admin", ("*",), False, id="any"),
])
def test_only_allowed_service_accounts(account: str | None, allowed: tuple[str, ...], refused: bool) -> None:
    spec = pod(serviceAccountName=account) if account else pod()
    found = pod_policy.check_pod_spec(PodPolicy(service_accounts=allowed), spec, "spec.job.spec")
    assert bool(found) is refused
    if refused:
        assert found[0].field == "spec.job.spec.serviceAccountName"
        assert repr(account) in found[0].message and "allowedServiceAccounts" in found[0].message


def test_the_deprecated_service_account_field_is_checked_too() -> None:
    found = pod_policy.check_pod_spec(PodPolicy(), pod(serviceAccount="admin"), "spec")
    assert [v.field for v in found] == ["spec.serviceAccount"]


@pytest.mark.parametrize("rule,spec,fields", [
    pytest.param("hostAliases", pod(hostAliases=[{"ip": "1.2.3.4"}]), ["spec.hostAliases"], id="top-level"),
    pytest.param("hostAliases", pod(hostAliases=[]), [], id="empty-is-unset"),
    pytest.param("containers[].lifecycle", pod(container(), {**container(), "lifecycle": {"preStop": {}}}),
                 ["spec.containers[1].lifecycle"], id="in-a-container"),
    pytest.param("containers[].lifecycle", pod(container(), initContainers=[{**container(), "lifecycle": {"x": 1}}]),
                 ["spec.initContainers[0].lifecycle"], id="init-containers-too"),
    pytest.param("volumes[].nfs", pod(volumes=[{"name": "a", "emptyDir": {}}, {"name": "b", "nfs": {}}]),
                 [], id="empty-mapping-is-unset"),
    pytest.param("volumes[].nfs", pod(volumes=[{"name": "b", "nfs": {"path": "/"}}]),
                 ["spec.volumes[0].nfs"], id="list-items"),
    pytest.param("securityContext.runAsUser", pod(securityContext={"runAsUser": 5}),
                 ["spec.securityContext.runAsUser"], id="nested"),
])
def test_forbidden_fields(rule: str, spec: dict[str, Any], fields: list[str]) -> None:
    found = pod_policy.check_pod_spec(PodPolicy(level=PRIVILEGED, forbidden_fields=(rule,)), spec, "spec")
    assert [v.field for v in found] == fields
    assert all(rule in v.message and "forbiddenFields" in v.message for v in found)


def test_a_job_is_checked_through_its_runner_and_its_cluster() -> None:
    job = {"job": {"spec": pod(hostNetwork=True)},
           "cluster": {"spec": {"scheduler": {"spec": pod()},
                                "worker": {"spec": pod(volumes=[{"name": "v", "hostPath": {"path": "/"}}])}}}}
    fields = [v.field for v in pod_policy.check_job_spec(pod_policy.DEFAULT_POLICY, job)]
    assert fields == ["spec.job.spec.hostNetwork", "spec.cluster.spec.worker.spec.volumes[0].hostPath"]
    # on an existing cluster (spec.clusterRef) only the runner is the job's
    assert pod_policy.check_job_spec(pod_policy.DEFAULT_POLICY, {"job": job["job"], "clusterRef": {"name": "c"}})


# -- the podPolicy section of the limits file --------------------------------------------------
def test_the_default_policy_is_baseline_and_the_default_account() -> None:
    p = parse_policy("", source=SOURCE).for_namespace("a").pod_policy
    assert (p.level, p.service_accounts, p.forbidden_fields) == (BASELINE, (), ())
    message = pod_policy.check_pod_spec(p, pod(hostIPC=True), "spec")[0].message
    assert "baseline" in message and "the operator's default" in message


def test_a_namespace_overrides_the_policy_key_by_key() -> None:
    text = """
podPolicy: {level: restricted, allowedServiceAccounts: [runner]}
namespaces:
  lab: {podPolicy: {level: privileged}}
"""
    lim = parse_policy(text, source=SOURCE)
    lab, other = lim.for_namespace("lab").pod_policy, lim.for_namespace("x").pod_policy
    assert (lab.level, lab.service_accounts) == (PRIVILEGED, ("runner",))
    assert (other.level, other.service_accounts) == (RESTRICTED, ("runner",))
    assert lab.where["level"] == f"{SOURCE}, key limits.yaml, field namespaces.lab.podPolicy.level"
    assert other.where["allowedServiceAccounts"] == f"{SOURCE}, key limits.yaml, field podPolicy.allowedServiceAccounts"


@pytest.mark.parametrize("text,field", [
    pytest.param("podPolicy: {level: strict}", "podPolicy.level", id="level"),
    pytest.param("podPolicy: {levle: baseline}", "podPolicy.levle", id="unknown-key"),
    pytest.param("podPolicy: {allowedServiceAccounts: admin}", "podPolicy.allowedServiceAccounts", id="not-a-list"),
    pytest.param("podPolicy: {forbiddenFields: ['spec..x']}", "podPolicy.forbiddenFields", id="bad-path"),
    pytest.param("podPolicy: baseline", "podPolicy", id="not-a-mapping"),
    pytest.param("namespaces: {a: {podPolicy: {level: 3}}}", "namespaces.a.podPolicy.level", id="in-a-namespace"),
])
def test_a_malformed_policy_invalidates_the_file(text: str, field: str) -> None:
    with pytest.raises(LimitsConfigError) as caught:
        parse_policy(text, source=SOURCE)
    assert caught.value.field == field
