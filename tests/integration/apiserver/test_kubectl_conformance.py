"""Conformance of the local API server through the real kubectl binary.

Each scenario is something people do with kubectl every day; where the real kube-apiserver's
answer is known (status codes, messages, field paths), the test asserts that answer.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from dask_kube_jobs.local.testing import KUBECTL, Kubectl

WIDGET_CRD = textwrap.dedent("""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.conformance.example.com
    spec:
      group: conformance.example.com
      scope: Namespaced
      names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wg]}
      versions:
      - name: v1
        served: true
        storage: true
        subresources:
          status: {}
          scale:
            specReplicasPath: .spec.replicas
            statusReplicasPath: .status.replicas
            labelSelectorPath: .status.selector
        additionalPrinterColumns:
        - {name: Size, type: integer, jsonPath: .spec.size}
        - {name: Color, type: string, jsonPath: .spec.color}
        - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                required: [color]
                properties:
                  size: {type: integer, minimum: 1, default: 1}
                  color: {type: string, enum: [red, green, blue]}
                  replicas: {type: integer, minimum: 0, default: 1}
                  extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              status:
                type: object
                properties:
                  replicas: {type: integer}
                  selector: {type: string}
                  phase: {type: string}
""")


def widget(name: str, **spec: object) -> str:
    return yaml.safe_dump({"apiVersion": "conformance.example.com/v1", "kind": "Widget",
                           "metadata": {"name": name}, "spec": spec})


@pytest.fixture(scope="module")
def widget_crd(local_control_plane):  # type: ignore[no-untyped-def]
    k = Kubectl(local_control_plane.kubeconfig)
    k("apply", "-f", "-", input=WIDGET_CRD)
    k("wait", "--for=condition=Established", "crd/widgets.conformance.example.com", "--timeout=30s")
    yield "widgets.conformance.example.com"


def test_discovery_lists_core_groups_and_version(kubectl: Kubectl) -> None:
    version = kubectl("version", "-o", "json").json()
    assert version["serverVersion"]["major"] == "1"
    assert version["serverVersion"]["minor"] == "32"
    resources = kubectl("api-resources", "-o", "name").stdout.split()
    for name in ("pods", "services", "configmaps", "deployments.apps", "leases.coordination.k8s.io",
                 "customresourcedefinitions.apiextensions.k8s.io", "roles.rbac.authorization.k8s.io"):
        assert name in resources
    versions = kubectl("api-versions").stdout.split()
    assert "v1" in versions and "apps/v1" in versions


ENDPOINT_SLICE = textwrap.dedent("""
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-abcde
      labels: {kubernetes.io/service-name: web}
    addressType: IPv4
    endpoints:
    - addresses: [10.1.0.1]
    - addresses: [10.1.0.2]
    ports:
    - {name: http, port: 80}
    - {name: metrics, port: 9090}
""")


def test_endpointslices_are_served_printed_and_validated(kubectl: Kubectl) -> None:
    """discovery.k8s.io/v1 as kube-apiserver 1.32 serves it, down to kubectl's columns."""
    assert "endpointslices.discovery.k8s.io" in kubectl("api-resources", "-o", "name").stdout.split()
    kubectl("create", "-f", "-", input=ENDPOINT_SLICE)
    table = kubectl("get", "endpointslices").stdout.splitlines()
    assert table[0].split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert table[1].split()[:4] == ["web-abcde", "IPv4", "80,9090", "10.1.0.1,10.1.0.2"]
    stored = kubectl("get", "endpointslice", "web-abcde", "-o", "json").json()
    assert stored["ports"][0] == {"name": "http", "port": 80, "protocol": "TCP"}  # defaulted
    out = kubectl("create", "-f", "-", check=False, input=ENDPOINT_SLICE.replace(
        "web-abcde", "lo").replace("10.1.0.2", "127.201.0.9"))
    assert ('The EndpointSlice "lo" is invalid: endpoints[1].addresses[0]: Invalid value: '
            '"127.201.0.9": may not be in the loopback range (127.0.0.0/8, ::1/128)') \
        in out.stderr, out.stderr


def test_explain_uses_the_server_openapi(kubectl: Kubectl) -> None:
    out = kubectl("explain", "pod.spec.containers.image").stdout
    assert "FIELD: image <string>" in out
    out = kubectl("explain", "deployment.spec.replicas").stdout
    assert "replicas <integer>" in out


def test_client_side_apply_creates_then_updates(kubectl: Kubectl) -> None:
    manifest = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "labels": {"tier": "a"}}, "data": {"x": "1"}}
    assert "configmap/settings created" in kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest)).stdout
    assert "unchanged" in kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest)).stdout
    manifest["data"] = {"z": "2"}
    assert "configured" in kubectl("apply", "-f", "-", input=yaml.safe_dump(manifest)).stdout
    stored = kubectl("get", "cm", "settings", "-o", "json").json()
    # "x" was in the last applied configuration and is gone from the new one: apply removes it.
    assert stored["data"] == {"z": "2"}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]


def test_server_side_apply_tracks_owners_and_conflicts(kubectl: Kubectl) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"},
          "data": {"a": "1", "b": "2"}}
    kubectl("apply", "--server-side", "--field-manager=alice", "-f", "-", input=yaml.safe_dump(cm))
    stored = kubectl("get", "cm", "ssa", "-o", "json", "--show-managed-fields").json()
    managers = {m["manager"]: m for m in stored["metadata"]["managedFields"]}
    assert managers["alice"]["operation"] == "Apply"
    assert "f:a" in managers["alice"]["fieldsV1"]["f:data"]

    other = {**cm, "data": {"a": "changed"}}
    clash = kubectl("apply", "--server-side", "--field-manager=bob", "-f", "-",
                    input=yaml.safe_dump(other), check=False)
    assert clash.returncode != 0
    assert "conflict" in clash.stderr.lower() and ".data.a" in clash.stderr
    kubectl("apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", "-",
            input=yaml.safe_dump(other))
    assert kubectl("get", "cm", "ssa", "-o", "jsonpath={.data.a}").stdout == "changed"

    # alice drops "b" from her configuration: a field she alone owned is removed.
    kubectl("apply", "--server-side", "--field-manager=alice", "-f", "-",
            input=yaml.safe_dump({**cm, "data": {"a": "changed"}}))
    data = kubectl("get", "cm", "ssa", "-o", "json").json()["data"]
    assert data == {"a": "changed"}


def test_label_and_field_selectors(kubectl: Kubectl) -> None:
    for name, tier in (("one", "web"), ("two", "db"), ("three", "web")):
        kubectl("create", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"tier": tier, "idx": name}}}))
    names = kubectl("get", "cm", "-l", "tier=web", "-o", "name").stdout.split()
    assert sorted(names) == ["configmap/one", "configmap/three"]
    names = kubectl("get", "cm", "-l", "tier in (db),idx!=one", "-o", "name").stdout.split()
    assert names == ["configmap/two"]
    names = kubectl("get", "cm", "-l", "!tier", "-o", "name").stdout.split()
    assert "configmap/one" not in names
    names = kubectl("get", "cm", "--field-selector", "metadata.name=two", "-o", "name").stdout.split()
    assert names == ["configmap/two"]
    bad = kubectl("get", "pods", "--field-selector", "spec.bogus=1", check=False)
    assert bad.returncode != 0 and "field label not supported: spec.bogus" in bad.stderr


def test_watch_streams_changes(kubectl: Kubectl, namespace: str) -> None:
    proc = subprocess.Popen(
        [KUBECTL, "--kubeconfig", kubectl.kubeconfig, "-n", namespace, "get", "cm", "-w",
         "--output-watch-events", "-o", "custom-columns=EVENT:.type,NAME:.object.metadata.name",
         "--request-timeout=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        kubectl("create", "configmap", "watched", "--from-literal=a=1")
        kubectl("label", "configmap", "watched", "seen=yes")
        kubectl("delete", "configmap", "watched")
        deadline = time.monotonic() + 20
        lines: list[str] = []
        assert proc.stdout is not None
        while time.monotonic() < deadline and not any("DELETED" in ln for ln in lines):
            line = proc.stdout.readline()
            if line:
                lines.append(line)
    finally:
        proc.kill()
        proc.wait()
    events = [ln.split() for ln in lines if "watched" in ln]
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"], lines


def test_describe_shows_the_object(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "described", "--from-literal=key=value")
    out = kubectl("describe", "configmap", "described").stdout
    assert "Name:" in out and "described" in out and "key" in out and "value" in out


def test_three_patch_types(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patched"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "p"}},
                 "template": {"metadata": {"labels": {"app": "p"}}, "spec": {"containers": [
                     {"name": "main", "image": "busybox", "env": [{"name": "A", "value": "1"}]}]}}}}))
    # strategic (kubectl's default for built-ins): the container list merges by name
    kubectl("patch", "deployment", "patched", "-p", json.dumps(
        {"spec": {"template": {"spec": {"containers": [{"name": "side", "image": "busybox"}]}}}}))
    containers = kubectl("get", "deploy", "patched", "-o", "json").json()["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["main", "side"] or [c["name"] for c in containers] == ["side", "main"]
    # merge: lists replace
    kubectl("patch", "deployment", "patched", "--type=merge", "-p", json.dumps(
        {"metadata": {"labels": {"patched": "merge"}}}))
    # json: with a failing test the server answers 422 and nothing changes
    bad = kubectl("patch", "deployment", "patched", "--type=json", "-p", json.dumps(
        [{"op": "test", "path": "/spec/replicas", "value": 5},
         {"op": "replace", "path": "/spec/replicas", "value": 7}]), check=False)
    assert bad.returncode != 0 and "is invalid" in bad.stderr
    kubectl("patch", "deployment", "patched", "--type=json", "-p", json.dumps(
        [{"op": "test", "path": "/spec/replicas", "value": 0},
         {"op": "replace", "path": "/spec/replicas", "value": 0},
         {"op": "add", "path": "/metadata/labels/json", "value": "yes"}]))
    labels = kubectl("get", "deploy", "patched", "-o", "json").json()["metadata"]["labels"]
    assert labels == {"patched": "merge", "json": "yes"}


def test_replace_with_stale_resource_version_conflicts(kubectl: Kubectl) -> None:
    kubectl("create", "configmap", "raced", "--from-literal=v=1")
    stale = kubectl("get", "cm", "raced", "-o", "json").json()
    kubectl("patch", "cm", "raced", "--type=merge", "-p", '{"data":{"v":"2"}}')
    stale["data"]["v"] = "3"
    out = kubectl("replace", "-f", "-", input=json.dumps(stale), check=False)
    assert out.returncode != 0
    assert "the object has been modified; please apply your changes to the latest version" in out.stderr
    assert kubectl("get", "cm", "raced", "-o", "jsonpath={.data.v}").stdout == "2"


def test_generate_name(kubectl: Kubectl) -> None:
    out = kubectl("create", "-f", "-", "-o", "name", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})).stdout.strip()
    assert out.startswith("configmap/gen-") and len(out) == len("configmap/gen-") + 5


def test_finalizers_hold_deletion_until_removed(kubectl: Kubectl) -> None:
    kubectl("create", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "held", "finalizers": ["example.com/hold"]}}))
    kubectl("delete", "cm", "held", "--wait=false")
    obj = kubectl("get", "cm", "held", "-o", "json").json()
    assert obj["metadata"]["deletionTimestamp"]
    kubectl("patch", "cm", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl("wait", "--for=delete", "cm/held", "--timeout=10s")
    assert kubectl("get", "cm", "held", check=False).returncode != 0


def test_scale_a_deployment(kubectl: Kubectl) -> None:
    kubectl("create", "deployment", "scaled", "--image=busybox", "--replicas=1")
    kubectl("scale", "deployment", "scaled", "--replicas=3")
    assert kubectl("get", "deploy", "scaled", "-o", "jsonpath={.spec.replicas}").stdout == "3"


def test_bad_input_is_refused_with_a_useful_message(kubectl: Kubectl) -> None:
    out = kubectl("apply", "-f", "-", input="kind: ConfigMap\n  bad: [indent", check=False)
    assert out.returncode != 0 and "yaml" in out.stderr.lower()
    out = kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump(
        {"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}}))
    assert out.returncode != 0 and 'no matches for kind "Nope"' in out.stderr
    out = kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}))
    assert out.returncode != 0 and 'metadata.name: Invalid value: "Bad_Name"' in out.stderr
    out = kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo"}, "dta": {"a": "b"}}))
    assert out.returncode != 0 and 'unknown field "dta"' in out.stderr
    out = kubectl("create", "-f", "-", check=False, input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nocontainers"}, "spec": {"containers": []}}))
    assert out.returncode != 0 and "spec.containers: Required value" in out.stderr
    assert kubectl("get", "cm", "typo", "Bad_Name", "--ignore-not-found", "-o", "name").stdout == ""
    assert kubectl("get", "pod", "nocontainers", "--ignore-not-found", "-o", "name").stdout == ""


def test_crd_serves_its_resource_with_validation_defaults_and_pruning(kubectl: Kubectl, widget_crd: str) -> None:
    out = kubectl("apply", "-f", "-", check=False, input=widget("wrong", color="purple", size=0))
    assert out.returncode != 0
    assert 'spec.color: Unsupported value: "purple"' in out.stderr
    assert "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1" in out.stderr
    out = kubectl("apply", "-f", "-", check=False, input=widget("missing"))
    assert out.returncode != 0 and "spec.color: Required value" in out.stderr
    assert kubectl("get", "widgets", "-o", "name").stdout == ""

    kubectl("apply", "--validate=false", "-f", "-", input=widget("w1", color="red", unknown=5, extra={"kept": True}))
    obj = kubectl("get", "widget", "w1", "-o", "json").json()
    assert obj["spec"]["size"] == 1  # defaulted
    assert "unknown" not in obj["spec"]  # pruned
    assert obj["spec"]["extra"] == {"kept": True}  # preserved
    table = kubectl("get", "wg").stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "AGE"]
    assert table[1].split()[:3] == ["w1", "1", "red"]


def test_crd_status_and_scale_subresources(kubectl: Kubectl, widget_crd: str) -> None:
    kubectl("apply", "-f", "-", input=widget("w2", color="blue", replicas=1))
    generation = kubectl("get", "widget", "w2", "-o", "jsonpath={.metadata.generation}").stdout
    kubectl("patch", "widget", "w2", "--subresource=status", "--type=merge", "-p",
            '{"status":{"phase":"Ready","replicas":1,"selector":"app=w2"}}')
    obj = kubectl("get", "widget", "w2", "-o", "json").json()
    assert obj["status"]["phase"] == "Ready"
    assert str(obj["metadata"]["generation"]) == generation  # status writes keep generation
    # the main resource ignores .status
    kubectl("patch", "widget", "w2", "--type=merge", "-p", '{"status":{"phase":"Hacked"}}')
    assert kubectl("get", "widget", "w2", "-o", "jsonpath={.status.phase}").stdout == "Ready"
    kubectl("scale", "widget", "w2", "--replicas=4")
    obj = kubectl("get", "widget", "w2", "-o", "json").json()
    assert obj["spec"]["replicas"] == 4
    assert obj["metadata"]["generation"] == int(generation) + 1
    scale = kubectl("get", "--raw", f"/apis/conformance.example.com/v1/namespaces/{kubectl.namespace}/widgets/w2/scale").stdout
    scale_obj = json.loads(scale)
    assert scale_obj["kind"] == "Scale" and scale_obj["spec"]["replicas"] == 4
    assert scale_obj["status"] == {"replicas": 1, "selector": "app=w2"}


def test_strategic_merge_patch_on_a_custom_resource_is_unsupported(kubectl: Kubectl, widget_crd: str) -> None:
    kubectl("apply", "-f", "-", input=widget("w3", color="green"))
    out = kubectl("patch", "widget", "w3", "--type=strategic", "-p", '{"spec":{"size":2}}', check=False)
    assert out.returncode != 0 and "UnsupportedMediaType" in out.stderr or "unknown format" in out.stderr


def test_limited_user_is_denied_and_can_i_agrees(local_control_plane, kubectl: Kubectl, namespace: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = local_control_plane.mint_kubeconfig(tmp_path / "dev.yaml", user="dev", groups=("devs",),
                                               namespace=namespace)
    dev = Kubectl(path, namespace)
    denied = dev("get", "configmaps", check=False)
    assert denied.returncode != 0
    assert f'User "dev" cannot list resource "configmaps" in API group "" in the namespace "{namespace}"' in denied.stderr
    assert dev("auth", "can-i", "list", "configmaps", check=False).stdout.strip() == "no"
    kubectl("create", "rolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    deadline = time.monotonic() + 10
    while dev("get", "configmaps", check=False).returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dev("get", "configmaps").returncode == 0
    assert dev("auth", "can-i", "list", "configmaps").stdout.strip() == "yes"
    assert dev("auth", "can-i", "create", "configmaps", check=False).stdout.strip() == "no"
    assert dev("create", "configmap", "nope", check=False).returncode != 0
    assert dev("get", "configmaps", "-n", "kube-system", check=False).returncode != 0
    # the admin may impersonate (kubectl --as); the dev user may not
    assert kubectl("auth", "can-i", "list", "configmaps", "--as=dev", "--as-group=devs").stdout.strip() == "yes"
    assert kubectl("auth", "can-i", "delete", "configmaps", "--as=dev", "--as-group=devs", check=False).stdout.strip() == "no"
    out = dev("get", "configmaps", "--as=admin", check=False)
    assert out.returncode != 0 and 'cannot impersonate resource "users"' in out.stderr


def test_unauthenticated_requests_are_rejected(local_control_plane, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = yaml.safe_load(Path(local_control_plane.kubeconfig).read_text())
    config["users"][0]["user"]["token"] = "not-a-token"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    out = Kubectl(str(bad))("get", "ns", check=False)
    assert out.returncode != 0 and "Unauthorized" in out.stderr
