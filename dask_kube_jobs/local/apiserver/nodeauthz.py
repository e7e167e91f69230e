"""The Node authorizer: what a kubelet (``system:node:<name>`` in ``system:nodes``) may do.

kube-apiserver runs with ``--authorization-mode=Node,RBAC``: a request from a node identity is
first decided here, and only what this authorizer has no opinion on goes to RBAC. Nodes need no
RBAC binding of their own (Kubernetes stopped binding ``system:nodes`` to ``system:node`` in
1.8); their rights are the static node rules below plus a *graph* of what the Pods bound to the
node reference. A node may therefore:

* read the Secrets, ConfigMaps, PersistentVolumeClaims (and their PersistentVolumes) and
  ServiceAccounts that some Pod bound to it references, one object at a time (``get``, or a
  list/watch narrowed to one name by ``metadata.name``), and request tokens for those
  ServiceAccounts;
* get, create, update, patch and delete its own Lease in ``kube-node-lease``;
* whatever the node rules allow: read Pods, Services, Nodes; register and update Nodes;
  write ``pods/status``; delete and evict Pods; create and patch Events; ...

Which Node, which Pod status, which Pod deletion is the node's own is not checked here but by
NodeRestriction admission (``noderestriction.py``), as in Kubernetes. The graph is not kept as
an index: each decision scans the Pods bound to the node in the object's namespace, which for a
one-machine control plane is a few dozen objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .bootstrap_rbac import NODE_PREFIX, NODES_GROUP, READ, rule
from .rbac import Attributes, CompiledRule, UserInfo

LEASE_NAMESPACE = "kube-node-lease"

#: Kubernetes' ``NodeRules()`` (plugin/pkg/auth/authorizer/rbac/bootstrappolicy), which the Node
#: authorizer applies to every node before falling through to RBAC.
NODE_RULES = [
    rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews",
                                                "subjectaccessreviews"]),
    rule(READ, [""], ["services"]),
    rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    rule(["patch", "update"], [""], ["nodes/status"]),
    rule(["patch", "update"], [""], ["nodes"]),
    rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
    rule(READ, [""], ["pods"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(["get"], [""], ["endpoints"]),
    rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
         ["certificatesigningrequests"]),
    rule(["get"], ["storage.k8s.io"], ["volumeattachments"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers", "csinodes"]),
    rule(READ, ["node.k8s.io"], ["runtimeclasses"]),
]
_COMPILED = [CompiledRule(r) for r in NODE_RULES]

#: Resources whose objects a node may read only when a Pod bound to it references them.
_GRAPH = {"secrets", "configmaps", "persistentvolumeclaims", "persistentvolumes",
          "serviceaccounts"}


def node_name_of(user: UserInfo) -> str | None:
    """The node a user is (``system:node:<name>`` in ``system:nodes``), else None."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_PREFIX):
        return user.name[len(NODE_PREFIX):] or None
    return None


def _pod_refs(pod: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(resource, name)`` of every object a Pod references, as the graph's edges."""
    spec = pod.get("spec") or {}
    yield "serviceaccounts", spec.get("serviceAccountName") or "default"
    for ref in spec.get("imagePullSecrets") or ():
        yield "secrets", ref.get("name") or ""
    for vol in spec.get("volumes") or ():
        if vol.get("secret"):
            yield "secrets", vol["secret"].get("secretName") or ""
        if vol.get("configMap"):
            yield "configmaps", vol["configMap"].get("name") or ""
        if vol.get("persistentVolumeClaim"):
            yield "persistentvolumeclaims", vol["persistentVolumeClaim"].get("claimName") or ""
        for source in (vol.get("projected") or {}).get("sources") or ():
            if source.get("secret"):
                yield "secrets", source["secret"].get("name") or ""
            if source.get("configMap"):
                yield "configmaps", source["configMap"].get("name") or ""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            for env in c.get("env") or ():
                source = env.get("valueFrom") or {}
                if source.get("secretKeyRef"):
                    yield "secrets", source["secretKeyRef"].get("name") or ""
                if source.get("configMapKeyRef"):
                    yield "configmaps", source["configMapKeyRef"].get("name") or ""
            for env_from in c.get("envFrom") or ():
                if env_from.get("secretRef"):
                    yield "secrets", env_from["secretRef"].get("name") or ""
                if env_from.get("configMapRef"):
                    yield "configmaps", env_from["configMapRef"].get("name") or ""


class NodeAuthorizer:
    """Decisions for node identities over the objects in a ``Store``; ``None`` = no opinion."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def authorize(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str] | None:
        node = node_name_of(user)
        if node is None or not attrs.resource_request:
            return None
        if attrs.group == "" and attrs.resource in _GRAPH and not (
                attrs.resource == "serviceaccounts" and attrs.subresource not in ("", "token")):
            return self._graph(node, attrs)
        if attrs.group == "coordination.k8s.io" and attrs.resource == "leases":
            return self._lease(node, attrs)
        if any(r.allows(attrs) for r in _COMPILED):
            return True, ""
        return None

    def _lease(self, node: str, attrs: Attributes) -> tuple[bool, str] | None:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return False, "can only get, create, update, patch, or delete a node lease"
        if attrs.namespace != LEASE_NAMESPACE:
            return False, f"can only access leases in the {LEASE_NAMESPACE} namespace"
        if attrs.verb != "create" and attrs.name != node:
            return False, "can only access node lease with the same name as the requesting node"
        return True, ""

    def _graph(self, node: str, attrs: Attributes) -> tuple[bool, str] | None:
        token = attrs.resource == "serviceaccounts" and attrs.subresource == "token"
        if token:
            if attrs.verb != "create":
                return False, "can only create tokens for individual service accounts"
        elif attrs.verb not in ("get", "list", "watch") or (
                attrs.verb != "get" and attrs.resource in ("persistentvolumeclaims",
                                                          "persistentvolumes")):
            return False, "can only get individual resources of this type"
        if not attrs.name:
            return False, "can only get individual resources of this type"
        if self._referenced(node, attrs.resource, attrs.namespace or "", attrs.name):
            return True, ""
        return False, f"no relationship found between node '{node}' and this object"

    def _referenced(self, node: str, resource: str, namespace: str, name: str) -> bool:
        if resource == "persistentvolumes":
            return any(
                (claim.get("spec") or {}).get("volumeName") == name
                and self._referenced(node, "persistentvolumeclaims",
                                     claim["metadata"].get("namespace") or "",
                                     claim["metadata"]["name"])
                for claim in self.store.list(("", "persistentvolumeclaims")))
        for pod in self.store.list(("", "pods"), namespace):
            if (pod.get("spec") or {}).get("nodeName") != node:
                continue
            if (resource, name) in set(_pod_refs(pod)):
                return True
        return False
