"""The default RBAC policy a fresh kube-apiserver writes at start-up.

Clients rely on these objects existing: ``kubectl auth can-i`` needs ``system:basic-user`` to be
allowed to ask at all, every client's discovery needs ``system:discovery``, Helm charts and
operators bind ServiceAccounts to the ``admin``/``edit``/``view`` roles, and charts that extend
those roles do it by labelling their own ClusterRoles ``aggregate-to-edit`` and so on. So the
roles here carry the rules Kubernetes 1.32 ships (its bootstrap policy, as dumped by
``kubectl get clusterrole -o yaml``), including entries for resources this server does not
serve: a rule naming an unserved resource is harmless, and a trimmed role would show a
different ``kubectl describe``.

Only the roles that matter to a single-user control plane are kept: of the node roles only
``system:node-proxier`` (kube-proxy's, which the process kubelet also needs to resolve Services
for its Pods: ``node_proxier_binding``); the ``system:kube-*`` and controller roles are left
out. Nodes need no role of their own: the Node authorizer (``nodeauthz.py``) grants their rights. The
``admin``/``edit``/``view`` roles are returned with their aggregated rules already filled in,
as the aggregation controller would have written them.
"""

from __future__ import annotations

import copy
from typing import Any

from .._aggregation import aggregated_rules

RBAC_API_VERSION = "rbac.authorization.k8s.io/v1"
BOOTSTRAP_LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
READ_WRITE = READ + WRITE

#: A node's identity: user ``system:node:<name>`` in group ``system:nodes``.
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"


def rule(verbs: tuple[str, ...] | list[str], groups: list[str],
         resources: list[str], names: list[str] | None = None) -> dict[str, Any]:
    """A resource PolicyRule with its lists sorted, as Kubernetes' rule builder stores them."""
    out: dict[str, Any] = {
        "apiGroups": sorted(groups), "resources": sorted(resources), "verbs": sorted(verbs),
    }
    if names:
        out["resourceNames"] = sorted(names)
    return out


def url_rule(verbs: list[str], urls: list[str]) -> dict[str, Any]:
    return {"nonResourceURLs": sorted(urls), "verbs": sorted(verbs)}


def _meta(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "labels": {**BOOTSTRAP_LABELS, **(labels or {})},
        "annotations": dict(AUTOUPDATE),
    }


def _cluster_role(name: str, rules: list[dict[str, Any]], *, labels: dict[str, str] | None = None,
                  aggregate: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": RBAC_API_VERSION, "kind": "ClusterRole", "metadata": _meta(name, labels),
    }
    if aggregate:
        obj["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate: "true"}}],
        }
    obj["rules"] = rules
    return obj


def _binding(name: str, groups: list[str], role: str | None = None, *,
             users: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding", "metadata": _meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": role or name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": g}
                     for g in groups]
        + [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users],
    }


def node_proxier_binding(node_name: str) -> dict[str, Any]:
    """The ClusterRoleBinding that gives a node's kubelet kube-proxy's rights
    (``system:node-proxier``), which its Pod network needs to read Services: what an
    administrator applies, by hand or with this manifest, for the process kubelet to join a
    cluster."""
    return {
        "apiVersion": RBAC_API_VERSION, "kind": "ClusterRoleBinding",
        "metadata": {"name": f"dkj-node-proxier:{node_name}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "system:node-proxier"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                      "name": NODE_PREFIX + node_name}],
    }


def _aggregate_to_view() -> list[dict[str, Any]]:
    return [
        rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale",
                          "serviceaccounts", "services", "services/status", "endpoints",
                          "persistentvolumeclaims", "persistentvolumeclaims/status",
                          "configmaps"]),
        rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                          "resourcequotas/status", "namespaces/status",
                          "replicationcontrollers/status", "pods/log"]),
        # Namespace read at namespace scope means "you can read this namespace".
        rule(READ, [""], ["namespaces"]),
        rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
        rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status",
                              "statefulsets/scale", "daemonsets", "daemonsets/status",
                              "deployments", "deployments/status", "deployments/scale",
                              "replicasets", "replicasets/status", "replicasets/scale"]),
        rule(READ, ["autoscaling"], ["horizontalpodautoscalers",
                                     "horizontalpodautoscalers/status"]),
        rule(READ, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
        rule(READ, ["extensions"], ["daemonsets", "daemonsets/status", "deployments",
                                    "deployments/scale", "deployments/status", "ingresses",
                                    "ingresses/status", "replicasets", "replicasets/scale",
                                    "replicasets/status", "replicationcontrollers/scale",
                                    "networkpolicies"]),
        rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
        rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"]),
    ]


def _aggregate_to_edit() -> list[dict[str, Any]]:
    return [
        # Reads of escalating resources (secrets, exec, proxies) are edit-only, not view.
        rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward",
                          "secrets", "services/proxy"]),
        rule(["impersonate"], [""], ["serviceaccounts"]),
        rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
        rule(["create"], [""], ["pods/eviction"]),
        rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale",
                           "serviceaccounts", "services", "services/proxy",
                           "persistentvolumeclaims", "configmaps", "secrets", "events"]),
        rule(["create"], [""], ["serviceaccounts/token"]),
        rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                               "deployments/scale", "deployments/rollback", "replicasets",
                               "replicasets/scale"]),
        rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
        rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
        rule(WRITE, ["extensions"], ["daemonsets", "deployments", "deployments/scale",
                                     "deployments/rollback", "ingresses", "replicasets",
                                     "replicasets/scale", "replicationcontrollers/scale",
                                     "networkpolicies"]),
        rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
        rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
        rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
    ]


def _aggregate_to_admin() -> list[dict[str, Any]]:
    return [
        rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
        rule(READ_WRITE, ["rbac.authorization.k8s.io"], ["roles", "rolebindings"]),
    ]


_PUBLIC_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
_DISCOVERY_URLS = _PUBLIC_URLS + ["/api", "/api/*", "/apis", "/apis/*", "/openapi", "/openapi/*"]


def _cluster_roles() -> list[dict[str, Any]]:
    return [
        _cluster_role("admin", [], aggregate="admin"),
        _cluster_role("cluster-admin", [
            rule(["*"], ["*"], ["*"]),
            url_rule(["*"], ["*"]),
        ]),
        _cluster_role("edit", [], aggregate="edit", labels={AGGREGATE_TO + "admin": "true"}),
        _cluster_role("system:aggregate-to-admin", _aggregate_to_admin(),
                      labels={AGGREGATE_TO + "admin": "true"}),
        _cluster_role("system:aggregate-to-edit", _aggregate_to_edit(),
                      labels={AGGREGATE_TO + "edit": "true"}),
        _cluster_role("system:aggregate-to-view", _aggregate_to_view(),
                      labels={AGGREGATE_TO + "view": "true"}),
        _cluster_role("system:auth-delegator", [
            rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        ]),
        _cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"],
                 ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        _cluster_role("system:discovery", [url_rule(["get"], _DISCOVERY_URLS)]),
        _cluster_role("system:monitoring", [url_rule(["get"], [
            "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis",
            "/readyz", "/readyz/*",
        ])]),
        _cluster_role("system:node-proxier", [
            rule(["list", "watch"], [""], ["endpoints", "services"]),
            rule(READ, [""], ["nodes"]),
            rule(["create", "patch", "update"], ["", "events.k8s.io"], ["events"]),
            rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
        ]),
        _cluster_role("system:public-info-viewer", [url_rule(["get"], _PUBLIC_URLS)]),
        _cluster_role("system:service-account-issuer-discovery", [
            url_rule(["get"], ["/.well-known/openid-configuration", "/openid/v1/jwks"]),
        ]),
        _cluster_role("view", [], aggregate="view", labels={AGGREGATE_TO + "edit": "true"}),
    ]


def _cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        _binding("cluster-admin", ["system:masters"]),
        _binding("system:basic-user", ["system:authenticated"]),
        _binding("system:discovery", ["system:authenticated"]),
        _binding("system:monitoring", ["system:monitoring"]),
        _binding("system:node-proxier", [], users=("system:kube-proxy",)),
        _binding("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"]),
        _binding("system:service-account-issuer-discovery", ["system:serviceaccounts"]),
    ]


def bootstrap_cluster_roles() -> list[dict[str, Any]]:
    """The default ClusterRoles, aggregated roles with their ``rules`` already aggregated."""
    roles = _cluster_roles()
    filled = {r["metadata"]["name"]: aggregated_rules(r, roles)
              for r in roles if r.get("aggregationRule")}
    for r in roles:
        if r["metadata"]["name"] in filled:
            r["rules"] = filled[r["metadata"]["name"]]
    return roles


def bootstrap_objects() -> list[dict[str, Any]]:
    """Fresh copies of every default ClusterRole, then every default ClusterRoleBinding.

    The objects carry no resourceVersion, uid or creationTimestamp; the server stamps those as
    it stores them, under ``("rbac.authorization.k8s.io", "clusterroles")`` and
    ``("rbac.authorization.k8s.io", "clusterrolebindings")`` according to ``kind``.
    """
    return copy.deepcopy(bootstrap_cluster_roles() + _cluster_role_bindings())
