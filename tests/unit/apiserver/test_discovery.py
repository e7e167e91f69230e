"""Discovery documents: the shapes kubectl's REST mapper and kr8s's kind lookup rely on."""

from __future__ import annotations

import json

import pytest

from dask_kube_jobs.local.apiserver import discovery
from dask_kube_jobs.local.apiserver.registry import Registry, type_from_crd

KUBECTL_ACCEPT = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
    "application/json"
)


def widget_crd(versions=("v1",), scope="Namespaced", scale=True) -> dict:
    subresources = {"status": {}}
    if scale:
        subresources["scale"] = {"specReplicasPath": ".spec.replicas",
                                 "statusReplicasPath": ".status.replicas"}
    return {
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": scope,
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget",
                      "shortNames": ["wg"], "categories": ["all"]},
            "versions": [
                {"name": v, "served": True, "storage": i == 0, "subresources": subresources,
                 "schema": {"openAPIV3Schema": {"type": "object"}}}
                for i, v in enumerate(versions)
            ],
        },
    }


@pytest.fixture
def registry() -> Registry:
    reg = Registry()
    reg.add(type_from_crd(widget_crd()))
    return reg


def by_name(resource_list: dict) -> dict[str, dict]:
    return {r["name"]: r for r in resource_list["resources"]}


def test_version_info_shape():
    info = discovery.version_info()
    assert info["major"] == "1" and info["minor"] == "32"
    assert info["gitVersion"] == "v1.32.0"
    for key in ("gitCommit", "gitTreeState", "buildDate", "goVersion", "compiler", "platform"):
        assert isinstance(info[key], str) and info[key]
    assert info["platform"] == "linux/amd64"


def test_api_versions():
    doc = discovery.api_versions("10.0.0.1:6443")
    assert doc["kind"] == "APIVersions"
    assert doc["versions"] == ["v1"]
    assert doc["serverAddressByClientCIDRs"] == [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]


def test_api_group_list_has_preferred_versions_and_no_core(registry):
    doc = discovery.api_group_list(registry)
    assert doc["kind"] == "APIGroupList" and doc["apiVersion"] == "v1"
    names = [g["name"] for g in doc["groups"]]
    assert "" not in names
    assert names[0] == "apps"
    assert "example.com" in names
    apps = doc["groups"][0]
    assert apps["versions"] == [{"groupVersion": "apps/v1", "version": "v1"}]
    assert apps["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    autoscaling = next(g for g in doc["groups"] if g["name"] == "autoscaling")
    assert autoscaling["preferredVersion"]["groupVersion"] == "autoscaling/v2"


def test_api_group(registry):
    doc = discovery.api_group(registry, "example.com")
    assert doc["kind"] == "APIGroup" and doc["name"] == "example.com"
    assert doc["preferredVersion"] == {"groupVersion": "example.com/v1", "version": "v1"}
    assert discovery.api_group(registry, "nope.example.org") is None
    assert discovery.api_group(registry, "") is None


def test_core_resource_list(registry):
    doc = discovery.api_resource_list(registry, "", "v1")
    assert doc["kind"] == "APIResourceList"
    assert doc["groupVersion"] == "v1"
    resources = by_name(doc)
    pods = resources["pods"]
    assert pods["singularName"] == "pod" and pods["kind"] == "Pod" and pods["namespaced"]
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    assert set(pods["verbs"]) >= {"create", "get", "list", "watch", "patch", "delete"}
    assert isinstance(pods["storageVersionHash"], str) and pods["storageVersionHash"]
    assert resources["namespaces"]["namespaced"] is False
    status = resources["pods/status"]
    assert status["kind"] == "Pod" and status["verbs"] == ["get", "patch", "update"]
    assert "group" not in status
    assert resources["pods/log"]["verbs"] == ["get"]
    eviction = resources["pods/eviction"]
    assert (eviction["group"], eviction["version"], eviction["kind"]) == (
        "policy", "v1", "Eviction")


def test_group_resource_list_and_scale_subresource(registry):
    doc = discovery.api_resource_list(registry, "apps", "v1")
    assert doc["groupVersion"] == "apps/v1"
    scale = by_name(doc)["deployments/scale"]
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    assert scale["verbs"] == ["get", "patch", "update"]
    assert by_name(doc)["deployments"]["shortNames"] == ["deploy"]


def test_crd_resource_list(registry):
    doc = discovery.api_resource_list(registry, "example.com", "v1")
    assert doc["groupVersion"] == "example.com/v1"
    resources = by_name(doc)
    assert set(resources) == {"widgets", "widgets/status", "widgets/scale"}
    widgets = resources["widgets"]
    assert widgets["kind"] == "Widget" and widgets["singularName"] == "widget"
    assert widgets["shortNames"] == ["wg"] and widgets["categories"] == ["all"]
    assert resources["widgets/scale"]["kind"] == "Scale"
    assert resources["widgets/status"]["kind"] == "Widget"


def test_unknown_group_version_is_none(registry):
    assert discovery.api_resource_list(registry, "", "v2") is None
    assert discovery.api_resource_list(registry, "apps", "v1beta1") is None
    assert discovery.api_resource_list(registry, "nope.example.org", "v1") is None


def test_crd_registration_and_removal_show_in_discovery():
    reg = Registry()
    assert discovery.api_resource_list(reg, "example.com", "v1") is None
    reg.add(type_from_crd(widget_crd(scope="Cluster", scale=False)))
    resources = by_name(discovery.api_resource_list(reg, "example.com", "v1"))
    assert resources["widgets"]["namespaced"] is False
    assert "widgets/scale" not in resources
    reg.remove("example.com", "widgets")
    assert discovery.api_group(reg, "example.com") is None


def test_multi_version_crd_prefers_first_served_version():
    reg = Registry()
    reg.add(type_from_crd(widget_crd(versions=("v1", "v1beta1"))))
    group = discovery.api_group(reg, "example.com")
    assert [v["version"] for v in group["versions"]] == ["v1", "v1beta1"]
    assert group["preferredVersion"]["version"] == "v1"
    agg = discovery.aggregated_discovery(reg, legacy=False)
    item = next(i for i in agg["items"] if i["metadata"].get("name") == "example.com")
    assert [v["version"] for v in item["versions"]] == ["v1", "v1beta1"]


def test_storage_version_hash_is_stable(registry):
    first = discovery.api_resource_list(registry, "", "v1")
    second = discovery.api_resource_list(Registry(), "", "v1")
    assert by_name(first)["pods"]["storageVersionHash"] == \
        by_name(second)["pods"]["storageVersionHash"]


def test_stable_order(registry):
    doc = discovery.api_resource_list(registry, "", "v1")
    names = [r["name"] for r in doc["resources"] if "/" not in r["name"]]
    assert names == sorted(names)
    assert json.dumps(discovery.aggregated_discovery(registry, legacy=False)) == \
        json.dumps(discovery.aggregated_discovery(registry, legacy=False))


@pytest.mark.parametrize(("accept", "expected"), [
    (KUBECTL_ACCEPT, "v2"),
    ("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
     "application/json", "v2beta1"),
    ("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
     "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", "v2"),
    ("application/json, */*", None),
    ("application/json,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
     None),
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList", None),
    ("application/json;as=Table;v=v1;g=meta.k8s.io", None),
    ("", None),
    (None, None),
])
def test_negotiate_discovery(accept, expected):
    assert discovery.negotiate_discovery(accept) == expected


def test_discovery_content_type():
    assert discovery.discovery_content_type("v2") == \
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def test_aggregated_core(registry):
    doc = discovery.aggregated_discovery(registry, legacy=True)
    assert doc["kind"] == "APIGroupDiscoveryList"
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2"
    assert len(doc["items"]) == 1
    core = doc["items"][0]
    assert "name" not in core["metadata"]
    (v1,) = core["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["responseKind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert pods["scope"] == "Namespaced"
    assert pods["singularResource"] == "pod"
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    status = next(s for s in pods["subresources"] if s["subresource"] == "status")
    assert status == {"subresource": "status",
                      "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                      "verbs": ["get", "patch", "update"]}
    namespaces = next(r for r in v1["resources"] if r["resource"] == "namespaces")
    assert namespaces["scope"] == "Cluster"


def test_aggregated_groups(registry):
    doc = discovery.aggregated_discovery(registry, legacy=False, version="v2beta1")
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    names = [i["metadata"]["name"] for i in doc["items"]]
    assert names == registry.groups()
    assert "" not in names
    apps = doc["items"][names.index("apps")]
    deployments = next(r for r in apps["versions"][0]["resources"]
                       if r["resource"] == "deployments")
    scale = next(s for s in deployments["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    widgets = doc["items"][names.index("example.com")]["versions"][0]["resources"][0]
    assert widgets["resource"] == "widgets"
    assert widgets["responseKind"] == {"group": "example.com", "version": "v1",
                                       "kind": "Widget"}
    assert {s["subresource"] for s in widgets["subresources"]} == {"scale", "status"}


def test_core_names_not_shadowed(registry):
    """``events`` exists in core and events.k8s.io: core comes first in the legacy root."""
    core = discovery.aggregated_discovery(registry, legacy=True)["items"][0]
    assert any(r["resource"] == "events" for r in core["versions"][0]["resources"])
    groups = discovery.aggregated_discovery(registry, legacy=False)
    for item in groups["items"]:
        for version in item["versions"]:
            for r in version["resources"]:
                if r["resource"] == "events":
                    assert r["responseKind"]["group"] == "events.k8s.io"
