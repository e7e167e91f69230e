"""What kube-apiserver 1.32 stores, refuses and serves, through the real kubectl: omitempty
metadata, core validation messages, ServiceAccount admission, CRD CEL rules."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from dask_kube_jobs.local.testing import Kubectl


def _wait_for(check, what: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_orphaning_leaves_no_empty_owner_references(kubectl: Kubectl) -> None:
    owner = kubectl("create", "configmap", "owner", "-o", "json").json()
    kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "dependent", "labels": {}, "annotations": {}, "finalizers": [],
                     "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
                                          "name": "owner", "uid": owner["metadata"]["uid"]}]}}))
    created = kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]
    assert not {"labels", "annotations", "finalizers"} & set(created)
    kubectl("delete", "cm", "owner", "--cascade=orphan")

    def orphaned() -> bool:
        meta = kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]
        return "ownerReferences" not in meta
    _wait_for(orphaned, "the dependent to lose its ownerReferences key")
    kubectl("label", "cm", "dependent", "a=b")
    kubectl("label", "cm", "dependent", "a-")
    assert "labels" not in kubectl("get", "cm", "dependent", "-o", "json").json()["metadata"]


def test_crd_cel_rules_are_enforced(kubectl: Kubectl) -> None:
    """The project's own CRDs are installed by the fixture; their CEL rules hold, as on the
    1.32 server this one says it is (CEL rules are enforced since 1.25)."""
    version = json.loads(kubectl("version", "-o", "json").stdout)["serverVersion"]
    assert (version["major"], version["minor"]) == ("1", "32")
    out = kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
        "metadata": {"name": "inverted"},
        "spec": {"cluster": "c", "minimum": 5, "maximum": 2}}))
    assert out.returncode != 0
    assert ('The DaskAutoscaler "inverted" is invalid: spec: Invalid value: "object": '
            "minimum must not exceed maximum") in out.stderr
    kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "kubernetes.dask.org/v1", "kind": "DaskAutoscaler",
        "metadata": {"name": "fine"}, "spec": {"cluster": "c", "minimum": 1, "maximum": 2}}))
    out = kubectl("patch", "daskautoscaler", "fine", "--type=merge", "-p",
                  '{"spec":{"minimum":3}}', check=False)
    assert out.returncode != 0 and "minimum must not exceed maximum" in out.stderr


def test_a_crd_whose_rule_does_not_compile_is_refused(kubectl: Kubectl) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "badrules.fidelity.example.com"},
        "spec": {"group": "fidelity.example.com", "scope": "Namespaced",
                 "names": {"plural": "badrules", "singular": "badrule", "kind": "BadRule"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                     "openAPIV3Schema": {"type": "object", "properties": {"spec": {
                         "type": "object", "properties": {"a": {"type": "integer"}},
                         "x-kubernetes-validations": [{"rule": "self.a >"}]}}}}}]},
    }
    out = kubectl("create", "-f", "-", input=yaml.safe_dump(crd), check=False)
    assert out.returncode != 0
    assert ('The CustomResourceDefinition "badrules.fidelity.example.com" is invalid: '
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]"
            '.rule: Invalid value: apiextensions.ValidationRule{Rule:"self.a >", Message:""'
            ) in out.stderr
    assert "compilation failed: ERROR: <input>:1:9: Syntax error" in out.stderr
    assert kubectl("get", "crd", "badrules.fidelity.example.com", "--ignore-not-found",
                   "-o", "name").stdout == ""


def _pod(name: str, **container: object) -> str:
    return yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                           "spec": {"containers": [{"name": "main", "image": "busybox",
                                                    **container}]}})


def test_pods_are_refused_as_kube_apiserver_refuses_them(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", check=False, input=_pod(
        "badenv", env=[{"name": "1 BAD=NAME", "value": "x"}]))
    assert out.returncode != 0
    assert ('The Pod "badenv" is invalid: spec.containers[0].env[0].name: Invalid value: '
            '"1 BAD=NAME": a valid environment variable name must consist only of printable '
            "ASCII characters other than '='") in out.stderr
    for quantity in ("lots", "12XB"):
        out = kubectl("create", "-f", "-", check=False, input=_pod(
            "badquantity", resources={"limits": {"memory": quantity}}))
        assert out.returncode != 0
        assert ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'") in out.stderr
    out = kubectl("create", "-f", "-", check=False, input=_pod(
        "greedy", resources={"requests": {"cpu": "2", "memory": "-1"}, "limits": {"cpu": "1"}}))
    assert out.returncode != 0
    assert 'spec.containers[0].resources.requests[memory]: Invalid value: "-1": must be greater ' \
        "than or equal to 0" in out.stderr
    assert 'spec.containers[0].resources.requests[cpu]: Invalid value: "2": must be less than ' \
        "or equal to cpu limit of 1" in out.stderr
    out = kubectl("create", "-f", "-", check=False, input=_pod(
        "nomount", volumeMounts=[{"name": "data", "mountPath": "/data"}]))
    assert out.returncode != 0
    assert 'spec.containers[0].volumeMounts[0].name: Not found: "data"' in out.stderr
    assert kubectl("get", "pods", "-o", "name").stdout == ""


def test_rbac_and_namespaces_are_validated(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": []}]}))
    assert out.returncode != 0
    assert ('The Role "r" is invalid: rules[0].verbs: Required value: verbs must contain at '
            "least one value") in out.stderr
    out = kubectl("create", "namespace", "Team-A", check=False)
    assert out.returncode != 0
    assert 'The Namespace "Team-A" is invalid: metadata.name: Invalid value: "Team-A": a ' \
        "lowercase RFC 1123 label must consist of" in out.stderr


def test_service_account_admission(kubectl: Kubectl) -> None:
    body = yaml.safe_load(_pod("robotic"))
    body["spec"]["serviceAccountName"] = "robot"
    out = kubectl("create", "-f", "-", input=yaml.safe_dump(body), check=False)
    assert out.returncode != 0
    namespace = kubectl.namespace
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "robotic" is '
            f"forbidden: error looking up service account {namespace}/robot: serviceaccount "
            '"robot" not found') in out.stderr
    kubectl("create", "serviceaccount", "robot")
    kubectl("create", "-f", "-", input=yaml.safe_dump(body))
    # Right after a namespace is created its default account may not exist yet: the server
    # looks it up again for a while, as kube-apiserver does, so the Pod is admitted.
    fresh = f"{namespace}-fresh"
    kubectl("create", "namespace", fresh)
    try:
        kubectl("create", "-f", "-", input=_pod("early"), namespace=fresh)
        assert kubectl("get", "pod", "early", "-o", "jsonpath={.spec.serviceAccountName}",
                       namespace=fresh).stdout == "default"
    finally:
        kubectl("delete", "namespace", fresh, "--wait=false")


def test_the_kubernetes_service_points_at_the_api_server(kubectl: Kubectl,
                                                         local_control_plane) -> None:  # type: ignore[no-untyped-def]
    service = kubectl("get", "service", "kubernetes", "-o", "json", namespace="default").json()
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["clusterIP"]
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"], port["protocol"]) == ("https", 443, "TCP")
    endpoints = kubectl("get", "endpoints", "kubernetes", "-o", "json", namespace="default").json()
    (subset,) = endpoints["subsets"]
    config = yaml.safe_load(Path(local_control_plane.kubeconfig).read_text())
    server = config["clusters"][0]["cluster"]["server"]
    address = f'{subset["addresses"][0]["ip"]}:{subset["ports"][0]["port"]}'
    assert server.endswith("://" + address)
    assert port["targetPort"] == subset["ports"][0]["port"]
