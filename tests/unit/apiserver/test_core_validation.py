"""Validation of the core kinds users and the operator create (Pods, Services, ConfigMaps,
Secrets, RBAC objects, Namespaces), against the messages kube-apiserver 1.32 gives."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from dask_kube_jobs.local.apiserver import errors
from dask_kube_jobs.local.apiserver.core import APICore
from dask_kube_jobs.local.apiserver.podvalidation import parse_quantity

QUANTITY_ERROR = ("quantities must match the regular expression "
                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
RBAC = "rbac.authorization.k8s.io"


@pytest.fixture(scope="module")
def core() -> APICore:
    core = APICore()
    core.bootstrap()
    accounts = core.registry.get("", "serviceaccounts")
    assert accounts is not None
    # what the ServiceAccount controller gives every namespace
    core.create(accounts, "v1", "default", {"metadata": {"name": "default"}})
    return core


def create(core: APICore, key: tuple[str, str], body: dict[str, Any],
           namespace: str | None = "default") -> dict[str, Any]:
    rtype = core.registry.get(*key)
    assert rtype is not None
    return core.create(rtype, "v1", namespace if rtype.namespaced else None, copy.deepcopy(body),
                       dry_run=True)


def refused(core: APICore, key: tuple[str, str], body: dict[str, Any]) -> list[str]:
    with pytest.raises(errors.APIError) as caught:
        create(core, key, body)
    assert caught.value.code == 422, caught.value.message
    return [f"{c.field}: {c.message}" for c in caught.value.causes]


def pod(**container: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox", **container}]}
    volumes = container.pop("volumes", None)
    if volumes is not None:
        spec["volumes"] = volumes
        spec["containers"][0].pop("volumes")
    return {"metadata": {"name": "p"}, "spec": spec}


@pytest.mark.parametrize("text,value", [("1", 1), ("500m", 0.5), ("1Gi", 2**30), ("1e3", 1000),
                                        ("1.5k", 1500), (2, 2), ("-1", -1)])
def test_quantities_parse_as_apimachinery_parses_them(text: Any, value: float) -> None:
    assert parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text,message", [
    ("lots", QUANTITY_ERROR), ("12XB", QUANTITY_ERROR), ("1.2.3", QUANTITY_ERROR),
    ("", QUANTITY_ERROR), ("12Ki5", "unable to parse quantity's suffix")])
def test_a_quantity_that_does_not_parse_is_a_decode_error(core: APICore, text: str,
                                                         message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        parse_quantity(text)
    with pytest.raises(errors.APIError) as caught:
        create(core, ("", "pods"), pod(resources={"limits": {"memory": text}}))
    assert caught.value.code == 400
    assert caught.value.message == f'Pod in version "v1" cannot be handled as a Pod: {message}'


POD_CASES = [
    (dict(name="Main_1"), 'spec.containers[0].name: Invalid value: "Main_1": a lowercase RFC 1123 '
     "label must consist of lower case alphanumeric characters or '-', and must start and end "
     "with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation "
     "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"),
    (dict(image=""), "spec.containers[0].image: Required value"),
    (dict(image=" busybox"), 'spec.containers[0].image: Invalid value: " busybox": must not have '
     "leading or trailing whitespace"),
    (dict(ports=[{"containerPort": 70000}]), "spec.containers[0].ports[0].containerPort: Invalid "
     "value: 70000: must be between 1 and 65535, inclusive"),
    (dict(ports=[{"name": "http", "containerPort": 80}, {"name": "http", "containerPort": 81}]),
     'spec.containers[0].ports[1].name: Duplicate value: "http"'),
    (dict(ports=[{"name": "Web_Port", "containerPort": 80}]),
     'spec.containers[0].ports[0].name: Invalid value: "Web_Port": must contain only '
     "alpha-numeric characters (a-z, 0-9), and hyphens (-)"),
    (dict(env=[{"name": "1 BAD=NAME", "value": "x"}]), 'spec.containers[0].env[0].name: Invalid '
     'value: "1 BAD=NAME": a valid environment variable name must consist only of printable '
     "ASCII characters other than '='"),
    (dict(env=[{"value": "x"}]), "spec.containers[0].env[0].name: Required value"),
    (dict(resources={"limits": {"memory": "-1"}}), "spec.containers[0].resources.limits[memory]: "
     'Invalid value: "-1": must be greater than or equal to 0'),
    (dict(resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}),
     'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than or '
     "equal to cpu limit of 1"),
    (dict(resources={"limits": {"gpu": "1"}}), "spec.containers[0].resources.limits[gpu]: "
     'Invalid value: "gpu": must be a standard resource for containers'),
    (dict(resources={"requests": {"nvidia.com/gpu": "1"}}), "spec.containers[0].resources.limits: "
     "Required value: Limit must be set for non overcommitable resources"),
    (dict(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
     'spec.containers[0].volumeMounts[0].name: Not found: "data"'),
    (dict(volumes=[{"name": "data", "emptyDir": {}}, {"name": "data", "emptyDir": {}}]),
     'spec.volumes[1].name: Duplicate value: "data"'),
    (dict(volumes=[{"name": "data"}]), "spec.volumes[0]: Required value: must specify a volume "
     "type"),
    (dict(volumes=[{"name": "d", "emptyDir": {}}],
          volumeMounts=[{"name": "d", "mountPath": "/d"}, {"name": "d", "mountPath": "/d"}]),
     'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/d": must be unique'),
]


@pytest.mark.parametrize("container,message", POD_CASES)
def test_pod_refusals(core: APICore, container: dict[str, Any], message: str) -> None:
    assert refused(core, ("", "pods"), pod(**container)) == [message]


def test_init_containers_share_names_with_containers_and_restart_policy_is_checked(
        core: APICore) -> None:
    body = pod()
    body["spec"]["initContainers"] = [{"name": "main", "image": "busybox"}]
    body["spec"]["restartPolicy"] = "Sometimes"
    assert refused(core, ("", "pods"), body) == [
        'spec.containers[0].name: Duplicate value: "main"',
        'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", '
        '"OnFailure", "Never"']


def test_a_valid_pod_passes(core: APICore) -> None:
    body = pod(env=[{"name": "my.env-1 x", "value": "1"}], ports=[{"name": "http",
                                                                    "containerPort": 80}],
               resources={"requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": 1},
                          "limits": {"cpu": 1, "memory": "1Gi", "nvidia.com/gpu": "1"}},
               volumes=[{"name": "d", "emptyDir": {}}],
               volumeMounts=[{"name": "d", "mountPath": "/d"}])
    assert create(core, ("", "pods"), body)["spec"]["containers"][0]["name"] == "main"


SERVICE = {"metadata": {"name": "s"}, "spec": {"selector": {"app": "a"},
                                                "ports": [{"port": 80}]}}


@pytest.mark.parametrize("spec,message", [
    ({"type": "Cheap"}, 'spec.type: Unsupported value: "Cheap": supported values: "ClusterIP", '
     '"ExternalName", "LoadBalancer", "NodePort"'),
    ({"ports": [{"port": 70000, "targetPort": 0}]}, "spec.ports[0].port: Invalid value: 70000: "
     "must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 80, "targetPort": 70000}]}, "spec.ports[0].targetPort: Invalid value: "
     "70000: must be between 1 and 65535, inclusive"),
    ({"ports": [{"port": 80, "targetPort": "Web"}]}, 'spec.ports[0].targetPort: Invalid value: '
     '"Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    ({"selector": {"app": "bad value!"}}, 'spec.selector: Invalid value: "bad value!": a valid '
     "label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
     "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
     "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
])
def test_service_refusals(core: APICore, spec: dict[str, Any], message: str) -> None:
    body = copy.deepcopy(SERVICE)
    body["spec"].update(spec)
    got = refused(core, ("", "services"), body)
    if ".port:" in message:  # the defaulted targetPort is the (bad) port, reported again
        assert got == [message, message.replace(".port:", ".targetPort:")]
    else:
        assert got == [message]


def test_configmap_and_secret_refusals(core: APICore) -> None:
    assert refused(core, ("", "configmaps"), {"metadata": {"name": "c"}, "data": {
        "bad key": "x", "..a": "y"}}) == [
        'data[bad key]: Invalid value: "bad key": a valid config key must consist of '
        "alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or "
        "'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        """data[..a]: Invalid value: "..a": must not start with '..'"""]
    assert refused(core, ("", "configmaps"), {"metadata": {"name": "c"},
                                              "data": {"k": "x" * (1024 * 1024)}}) == [
        ": Too long: may not be more than 1048576 bytes"]
    assert refused(core, ("", "secrets"), {"metadata": {"name": "s"}, "type": "kubernetes.io/tls",
                                           "stringData": {"tls.crt": "x"}}) == [
        "data[tls.key]: Required value"]


def test_rbac_refusals(core: APICore) -> None:
    assert refused(core, (RBAC, "roles"), {"metadata": {"name": "r"}, "rules": [
        {"apiGroups": [""], "resources": ["pods"]}, {"verbs": ["get"], "nonResourceURLs": ["/x"]},
    ]}) == ["rules[0].verbs: Required value: verbs must contain at least one value",
            'rules[1].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot '
            "apply to non-resource URLs"]
    assert refused(core, (RBAC, "rolebindings"), {
        "metadata": {"name": "b"}, "roleRef": {"apiGroup": RBAC, "kind": "Thing", "name": "r"},
        "subjects": [{"kind": "Robot", "name": "x"}, {"kind": "ServiceAccount", "name": ""}]}) == [
        'roleRef.kind: Unsupported value: "Thing": supported values: "Role", "ClusterRole"',
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", '
        '"User", "Group"',
        "subjects[1].name: Required value"]
    binding = create(core, (RBAC, "clusterrolebindings"), {
        "metadata": {"name": "cb"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole",
                                                "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}]})
    assert binding["subjects"][0]["apiGroup"] == RBAC


def test_namespace_names_are_dns_labels(core: APICore) -> None:
    assert refused(core, ("", "namespaces"), {"metadata": {"name": "team.a"}}) == [
        'metadata.name: Invalid value: "team.a": a lowercase RFC 1123 label must consist of '
        "lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
        "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]


def test_service_account_admission(core: APICore) -> None:
    body = pod()
    body["spec"]["serviceAccountName"] = "robot"
    with pytest.raises(errors.AdmissionRefused) as caught:
        create(core, ("", "pods"), body)
    assert (caught.value.code, caught.value.reason, caught.value.attempts) == (403, "Forbidden", 1)
    assert caught.value.message == ('pods "p" is forbidden: error looking up service account '
                                    'default/robot: serviceaccount "robot" not found')
    core.create(core.registry.get("", "namespaces"), "v1", None,  # type: ignore[arg-type]
                {"metadata": {"name": "fresh"}})
    with pytest.raises(errors.AdmissionRefused) as caught:
        create(core, ("", "pods"), pod(), namespace="fresh")
    assert caught.value.attempts == 10  # the controller is about to create "default"
    assert 'service account fresh/default: serviceaccount "default" not found' in \
        caught.value.message
    create(core, ("", "serviceaccounts"), {"metadata": {"name": "robot"}})
    core.create(core.registry.get("", "serviceaccounts"), "v1", "default",  # type: ignore[arg-type]
                {"metadata": {"name": "robot"}})
    assert create(core, ("", "pods"), body)["spec"]["serviceAccountName"] == "robot"
