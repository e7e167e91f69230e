"""Decoding of Kubernetes protobuf request bodies.

The ``data/*.pb`` fixtures are bodies kubectl 1.32 really sent (captured with a recording proxy);
each ``data/<name>.json`` beside one is what the same kubectl command prints with
``--dry-run=client -o json``, i.e. the JSON encoding of the very same Go object. Decoding the
protobuf must give that JSON. The hand-encoded cases cover what kubectl's generators never set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dask_kube_jobs.local.apiserver import protobuf
from dask_kube_jobs.local.apiserver.protobuf_schema import SCHEMA

DATA = Path(__file__).parent / "data"
CAPTURED = sorted(p.stem for p in DATA.glob("*.pb") if p.with_suffix(".json").exists())


def _without_nulls(value: Any) -> Any:
    """kubectl's JSON has ``creationTimestamp: null``; the decoder leaves unset fields out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# --- a tiny encoder for hand-made messages -----------------------------------------------------

def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def f(number: int, value: int | str | bytes) -> bytes:
    """One field: ints as varints, str/bytes as length-delimited."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return protobuf.MAGIC + f(1, f(1, api_version) + f(2, kind)) + f(2, raw) + f(3, "") + f(4, "")


def meta(name: str, **extra: bytes) -> bytes:
    return f(1, f(1, name) + b"".join(extra.values()))


# --- captured from kubectl ---------------------------------------------------------------------

@pytest.mark.parametrize("name", CAPTURED)
def test_captured_body_decodes_to_kubectls_own_json(name: str) -> None:
    body = (DATA / f"{name}.pb").read_bytes()
    expected = json.loads((DATA / f"{name}.json").read_text())
    assert protobuf.decode(body) == _without_nulls(expected)


def test_captured_fixtures_cover_the_kubectl_create_kinds() -> None:
    assert {"configmap", "secret", "deployment", "service", "namespace", "rolebinding",
            "clusterrole", "clusterrolebinding", "poddisruptionbudget", "job"} <= set(CAPTURED)


def test_captured_reviews_and_token_request() -> None:
    def load(name: str) -> dict[str, Any]:
        return protobuf.decode((DATA / f"{name}.pb").read_bytes())

    assert load("selfsubjectaccessreview") == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "metadata": {}, "status": {"allowed": False},
        "spec": {"resourceAttributes": {"namespace": "default", "verb": "get",
                                        "resource": "pods"}}}
    assert load("selfsubjectrulesreview")["spec"] == {"namespace": "default"}
    assert load("selfsubjectreview") == {
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {},
        "status": {"userInfo": {}}}
    token = load("tokenrequest")
    assert token["kind"] == "TokenRequest"
    assert token["spec"] == {"audiences": ["foo"], "expirationSeconds": 600,
                             "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                "name": "p1"}}


# --- hand-encoded ------------------------------------------------------------------------------

def test_pointer_zero_values_are_kept_and_plain_zero_values_dropped() -> None:
    # ServiceAccount.automountServiceAccountToken is a *bool: false was set on purpose.
    body = envelope("v1", "ServiceAccount", meta("sa", generation=f(7, 0)) + f(4, 0))
    assert protobuf.decode(body) == {"apiVersion": "v1", "kind": "ServiceAccount",
                                     "metadata": {"name": "sa"},
                                     "automountServiceAccountToken": False}
    # DeploymentSpec.replicas is a *int32 (0 is meaningful), paused a plain bool.
    spec = f(1, 0) + f(7, 0)
    obj = protobuf.decode(envelope("apps/v1", "Deployment", meta("d") + f(2, spec)))
    assert obj["spec"] == {"replicas": 0}


def test_negative_ints_times_quantities_and_int_or_string() -> None:
    time_ = f(1, 1_700_000_000) + f(2, 5)
    pod_meta = meta("p", created=f(8, time_), grace=f(10, -1))
    container = (f(1, "c") + f(2, "img")
                 + f(8, f(1, f(1, "cpu") + f(2, f(1, "500m")))))  # resources.limits
    probe = f(1, f(2, f(2, f(1, 1) + f(3, "http"))))  # handler.httpGet.port = "http"
    container += f(10, probe)
    spec = f(2, container) + f(5, 60)  # containers, activeDeadlineSeconds (*int64)
    obj = protobuf.decode(envelope("v1", "Pod", pod_meta + f(2, spec)))
    assert obj["metadata"] == {"name": "p", "creationTimestamp": "2023-11-14T22:13:20Z",
                               "deletionGracePeriodSeconds": -1}
    assert obj["spec"] == {"activeDeadlineSeconds": 60, "containers": [{
        "name": "c", "image": "img", "resources": {"limits": {"cpu": "500m"}},
        "livenessProbe": {"httpGet": {"port": "http"}}}]}


def test_inlined_structs_are_merged_into_their_parent() -> None:
    # Volume{name, VolumeSource{configMap: ConfigMapVolumeSource{LocalObjectReference{name}}}}
    volume = f(1, "v") + f(2, f(19, f(1, f(1, "cm")) + f(3, 0o644)))
    spec = f(1, volume) + f(2, f(1, "c"))
    obj = protobuf.decode(envelope("v1", "Pod", meta("p") + f(2, spec)))
    assert obj["spec"]["volumes"] == [{"name": "v",
                                       "configMap": {"name": "cm", "defaultMode": 0o644}}]


def test_managed_fields_owner_references_and_label_selector_requirements() -> None:
    managed = f(1, "kubectl") + f(2, "Apply") + f(3, "v1") + f(6, "FieldsV1") \
        + f(7, f(1, b'{"f:data":{}}'))
    owner = f(1, "Deployment") + f(3, "d") + f(4, "uid-1") + f(5, "apps/v1") + f(6, 1)
    cm = meta("c", managed=f(17, managed), owner=f(13, owner))
    obj = protobuf.decode(envelope("v1", "ConfigMap", cm))
    assert obj["metadata"]["managedFields"] == [{
        "manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]
    assert obj["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "uid-1",
        "controller": True}]
    selector = f(2, f(1, "tier") + f(2, "In") + f(3, "a") + f(3, "b"))
    pdb = protobuf.decode(envelope("policy/v1", "PodDisruptionBudget",
                                   meta("p") + f(2, f(2, selector) + f(3, f(1, 1) + f(3, "50%")))))
    assert pdb["spec"] == {"selector": {"matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["a", "b"]}]}, "maxUnavailable": "50%"}


def test_extra_map_of_string_lists_and_delete_options() -> None:
    extra = f(5, f(1, "scopes") + f(2, f(1, "a") + f(1, "b")))
    body = envelope("authorization.k8s.io/v1", "SubjectAccessReview",
                    f(1, b"") + f(2, f(3, "bob") + extra + f(5, f(1, "x") + f(2, b""))))
    obj = protobuf.decode(body)
    assert obj["spec"] == {"user": "bob", "extra": {"scopes": ["a", "b"], "x": []}}
    options = f(1, 0) + f(2, f(1, "uid-1")) + f(4, "Foreground") + f(5, "All")
    assert protobuf.decode(envelope("v1", "DeleteOptions", options)) == {
        "apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
        "preconditions": {"uid": "uid-1"}, "propagationPolicy": "Foreground",
        "dryRun": ["All"]}


def test_packed_repeated_numbers_are_accepted() -> None:
    # batch.v1 PodFailurePolicyOnExitCodesRequirement.values is a repeated int32.
    packed = varint(3 << 3 | 2) + varint(3) + varint(1) + varint(2) + varint(42)
    rule = f(1, "FailJob") + f(2, f(2, "In") + packed)
    spec = f(11, f(1, rule)) + f(6, f(2, f(2, f(1, "c"))))  # template.spec.containers
    obj = protobuf.decode(envelope("batch/v1", "Job", meta("j") + f(2, spec)))
    assert obj["spec"]["podFailurePolicy"] == {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 2, 42]}}]}


# --- errors ------------------------------------------------------------------------------------

def test_unknown_field_numbers_are_an_error_naming_message_and_field() -> None:
    body = envelope("v1", "ConfigMap", meta("c") + f(99, "surprise"))
    with pytest.raises(protobuf.ProtobufError) as info:
        protobuf.decode(body)
    assert info.value.code == 415
    assert "field 99 of core.v1.ConfigMap" in info.value.message
    nested = envelope("v1", "ConfigMap", f(1, f(1, "c") + f(42, 1)))
    with pytest.raises(protobuf.ProtobufError, match="field 42 of meta.v1.ObjectMeta"):
        protobuf.decode(nested)


def test_unknown_kinds_and_encodings_are_415() -> None:
    with pytest.raises(protobuf.ProtobufError, match="kind Widget of example.com/v1") as info:
        protobuf.decode(envelope("example.com/v1", "Widget", b""))
    assert info.value.code == 415
    gzipped = protobuf.MAGIC + f(1, f(1, "v1") + f(2, "ConfigMap")) + f(2, b"") + f(3, "gzip")
    with pytest.raises(protobuf.ProtobufError, match="gzip"):
        protobuf.decode(gzipped)


@pytest.mark.parametrize("body, message", [
    (b'{"kind": "ConfigMap"}', "magic"),
    (envelope("v1", "ConfigMap", meta("c")[:-1]), "past the end"),
    (envelope("v1", "ConfigMap", f(1, b"\x0a\xff")), "truncated varint|past the end"),
    (protobuf.MAGIC + f(2, b""), "apiVersion and kind"),
    (envelope("v1", "ConfigMap", f(1, f(1, b"\xff\xfe"))), "UTF-8"),
    (envelope("v1", "ConfigMap", varint(1 << 3 | 3)), "wire type 3"),
    (envelope("v1", "ConfigMap", f(1, 5)), "expected an embedded"),
])
def test_malformed_bodies_are_400(body: bytes, message: str) -> None:
    with pytest.raises(protobuf.ProtobufError, match=message) as info:
        protobuf.decode(body)
    assert info.value.code == 400


def test_schema_types_all_resolve() -> None:
    """Every message type the table names exists in it (or is one of the special values)."""
    special = {"meta.v1.Time", "meta.v1.MicroTime", "api.resource.Quantity",
               "util.intstr.IntOrString", "meta.v1.FieldsV1"}
    scalars = {"string", "bool", "int32", "int64", "bytes"}
    for key, fields_ in SCHEMA.items():
        package = key.rsplit(".", 1)[0]
        for number, (_, spec) in fields_.items():
            base = spec.removeprefix("[]").lstrip("*")
            if base.startswith("map<string,"):
                base = base[len("map<string,"):-1]
            resolved = base if base in scalars | special | SCHEMA.keys() else f"{package}.{base}"
            assert resolved in scalars | special | SCHEMA.keys(), (key, number, spec)


# --- through the HTTP layer --------------------------------------------------------------------

# server.py keeps per-request state under plain string keys, which aiohttp 3.14 warns about
# in-process (the daemon is unaffected); that is not what this test is about.
async def test_server_accepts_protobuf_bodies_and_answers_json() -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from dask_kube_jobs.local.apiserver.auth import TokenAuthenticator
    from dask_kube_jobs.local.apiserver.bootstrap_rbac import bootstrap_objects
    from dask_kube_jobs.local.apiserver.core import APICore
    from dask_kube_jobs.local.apiserver.server import APIServer

    core = APICore()
    authn = TokenAuthenticator(b"k" * 32, uid_of=lambda *_: None)
    core.bootstrap(bootstrap_objects())
    server = APIServer(core, authn)
    headers = {"Authorization": f"Bearer {authn.mint_admin()}",
               "Content-Type": protobuf.CONTENT_TYPE,
               "Accept": f"{protobuf.CONTENT_TYPE},application/json"}
    async with TestClient(TestServer(server.app)) as client:
        resp = await client.post("/api/v1/namespaces/default/configmaps",
                                 data=(DATA / "configmap.pb").read_bytes(), headers=headers)
        assert resp.status == 201, await resp.text()
        assert resp.content_type == "application/json"
        created = await resp.json()
        assert created["data"] == {"a": "b"}
        assert created["binaryData"]["bin"] == json.loads(
            (DATA / "configmap.json").read_text())["binaryData"]["bin"]
        bad = envelope("v1", "ConfigMap", meta("c3") + f(99, "x"))
        resp = await client.post("/api/v1/namespaces/default/configmaps", data=bad,
                                 headers=headers)
        assert resp.status == 415
        assert "field 99 of core.v1.ConfigMap" in (await resp.json())["message"]
