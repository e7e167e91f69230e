"""The Node authorizer and NodeRestriction admission against a real Store, with the rules and
words of Kubernetes' ``plugin/pkg/auth/authorizer/node`` and ``admission/noderestriction``."""

from __future__ import annotations

import pytest

from dask_kube_jobs.local.apiserver import noderestriction
from dask_kube_jobs.local.apiserver.errors import APIError
from dask_kube_jobs.local.apiserver.nodeauthz import NodeAuthorizer, node_name_of
from dask_kube_jobs.local.apiserver.rbac import Attributes, UserInfo
from dask_kube_jobs.local.apiserver.store import Store

NODE_A = UserInfo("system:node:a", ("system:nodes", "system:authenticated"))
NOT_A_NODE = UserInfo("system:node:a", ("system:authenticated",))


def _pod(name: str, node: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"name": "c", **spec.pop("c", {})}],
                     **spec}}


@pytest.fixture
def store() -> Store:
    s = Store()
    pods = [
        _pod("on-a", "a", serviceAccountName="runner",
             volumes=[{"name": "v", "secret": {"secretName": "vol-secret"}},
                      {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj"}}]}},
                      {"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
             c={"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret",
                                                                      "key": "k"}}}],
                "envFrom": [{"configMapRef": {"name": "env-cm"}}]}),
        _pod("on-b", "b", volumes=[{"name": "v", "secret": {"secretName": "b-secret"}}]),
    ]
    for pod in pods:
        pod["metadata"]["resourceVersion"] = str(s.next_rv())
        s.put(("", "pods"), pod)
    return s


def test_node_identity_needs_the_nodes_group() -> None:
    assert node_name_of(NODE_A) == "a"
    assert node_name_of(NOT_A_NODE) is None
    assert NodeAuthorizer(Store()).authorize(NOT_A_NODE, Attributes("get", "", "secrets",
                                                                     namespace="ns", name="x")) is None


@pytest.mark.parametrize(("resource", "name"), [
    ("secrets", "vol-secret"), ("secrets", "env-secret"), ("configmaps", "proj"),
    ("configmaps", "env-cm"), ("persistentvolumeclaims", "data"), ("serviceaccounts", "runner"),
])
def test_a_node_reads_what_its_pods_reference(store: Store, resource: str, name: str) -> None:
    authz = NodeAuthorizer(store)
    assert authz.authorize(NODE_A, Attributes("get", "", resource, namespace="ns",
                                              name=name)) == (True, "")


def test_a_node_reads_nothing_else(store: Store) -> None:
    authz = NodeAuthorizer(store)
    # referenced only by a Pod of another node
    assert authz.authorize(NODE_A, Attributes("get", "", "secrets", namespace="ns",
                                              name="b-secret")) == (
        False, "no relationship found between node 'a' and this object")
    # a list of every Secret is never a node's
    allowed, reason = authz.authorize(NODE_A, Attributes("list", "", "secrets", namespace="ns"))
    assert not allowed and reason == "can only get individual resources of this type"
    # tokens only for ServiceAccounts its Pods run as
    assert authz.authorize(NODE_A, Attributes("create", "", "serviceaccounts", "token",
                                              namespace="ns", name="runner"))[0]
    assert not authz.authorize(NODE_A, Attributes("create", "", "serviceaccounts", "token",
                                                  namespace="ns", name="default"))[0]


def test_node_rules_and_leases(store: Store) -> None:
    authz = NodeAuthorizer(store)
    for attrs in (Attributes("list", "", "pods"), Attributes("watch", "", "services"),
                  Attributes("patch", "", "pods", "status", namespace="ns", name="on-b"),
                  Attributes("create", "", "events", namespace="ns"),
                  Attributes("create", "", "nodes"),
                  Attributes("patch", "coordination.k8s.io", "leases",
                             namespace="kube-node-lease", name="a")):
        assert authz.authorize(NODE_A, attrs) == (True, ""), attrs
    # no opinion: RBAC decides (endpoints cluster-wide is kube-proxy's right, not a node's)
    assert authz.authorize(NODE_A, Attributes("list", "", "endpoints")) is None
    assert authz.authorize(NODE_A, Attributes("create", "apps", "deployments",
                                              namespace="ns")) is None
    assert authz.authorize(NODE_A, Attributes("get", "coordination.k8s.io", "leases",
                                              namespace="kube-node-lease", name="b")) == (
        False, "can only access node lease with the same name as the requesting node")


def _admit(store: Store, verb: str, resource: str, subresource: str = "", name: str | None = None,
           body=None, group: str = "") -> None:
    noderestriction.admit(NODE_A, verb, group, resource, subresource, "ns" if resource != "nodes"
                          else None, name, body,
                          lambda plural, ns, n: store.get(("", plural), ns, n))


def test_node_restriction_allows_a_nodes_own(store: Store) -> None:
    _admit(store, "patch", "pods", "status", "on-a")
    _admit(store, "delete", "pods", name="on-a")
    _admit(store, "patch", "nodes", "status", "a")
    _admit(store, "create", "nodes", body={"metadata": {"name": "a"}})
    _admit(store, "create", "serviceaccounts", "token", "runner",
           {"spec": {"boundObjectRef": {"kind": "Pod", "name": "on-a", "uid": "uid-on-a"}}})


@pytest.mark.parametrize(("call", "message"), [
    (dict(verb="patch", resource="pods", subresource="status", name="on-b"),
     'pods "on-b" is forbidden: node "a" can only update pod status for pods with '
     "spec.nodeName set to itself"),
    (dict(verb="delete", resource="pods", name="on-b"),
     'pods "on-b" is forbidden: node "a" can only delete pods with spec.nodeName set to itself'),
    (dict(verb="patch", resource="nodes", name="b"),
     'nodes "b" is forbidden: node "a" is not allowed to modify node "b"'),
    (dict(verb="create", resource="pods", body={"metadata": {"name": "x"}, "spec": {}}),
     'pods "x" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
     'node "a" can only create mirror pods'),
    (dict(verb="create", resource="serviceaccounts", subresource="token", name="default",
          body={"spec": {"boundObjectRef": {"kind": "Pod", "name": "on-b"}}}),
     'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled '
     "on a different node"),
])
def test_node_restriction_refuses_what_is_not_the_nodes(store: Store, call: dict,
                                                        message: str) -> None:
    with pytest.raises(APIError) as err:
        _admit(store, **call)
    assert err.value.code == 403 and err.value.message == message
