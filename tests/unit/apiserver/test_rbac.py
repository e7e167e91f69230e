"""RBAC decisions against a real Store, checked against what kube-apiserver answers."""

from __future__ import annotations

import copy
import time

import pytest

from dask_kube_jobs.local._aggregation import aggregated_rules, selector_matches
from dask_kube_jobs.local.apiserver.errors import APIError
from dask_kube_jobs.local.apiserver.rbac import (
    CLUSTER_ROLE_BINDINGS,
    CLUSTER_ROLES,
    ROLE_BINDINGS,
    ROLES,
    Attributes,
    Authorizer,
    UserInfo,
    aggregate_cluster_roles,
    attributes_from_spec,
    bootstrap_objects,
    rule_allows,
    user_from_review_spec,
)
from dask_kube_jobs.local.apiserver.store import Store

G = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", ("system:authenticated",))
BOB = UserInfo("bob", ("system:authenticated", "devs"))
ADMIN = UserInfo("kubernetes-admin", ("system:masters", "system:authenticated"))
ANON = UserInfo.anonymous()


# -- helpers ------------------------------------------------------------------------------------
def put(store: Store, key, obj):
    obj = copy.deepcopy(obj)
    obj["metadata"]["resourceVersion"] = str(store.next_rv())
    store.put(key, obj)
    return obj


def delete(store: Store, key, name, namespace=None):
    store.remove(key, store.get(key, namespace, name))


def cluster_role(name, rules, labels=None, aggregate=None):
    obj = {"apiVersion": f"{G}/v1", "kind": "ClusterRole",
           "metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if aggregate is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": aggregate}
    return obj


def role(name, ns, rules):
    return {"apiVersion": f"{G}/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns}, "rules": rules}


def subj(kind, name, namespace=None):
    s = {"kind": kind, "name": name}
    if kind != "ServiceAccount":
        s["apiGroup"] = G
    if namespace:
        s["namespace"] = namespace
    return s


def crb(name, role_name, *subjects):
    return {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": name},
            "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role_name},
            "subjects": list(subjects)}


def rb(name, ns, role_kind, role_name, *subjects):
    return {"apiVersion": f"{G}/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": G, "kind": role_kind, "name": role_name},
            "subjects": list(subjects)}


def r(verbs, groups, resources, names=None):
    out = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        out["resourceNames"] = names
    return out


def res(verb, resource, namespace=None, group="", name=None, sub=""):
    return Attributes(verb=verb, group=group, resource=resource, subresource=sub,
                      namespace=namespace, name=name)


KEYS = {"ClusterRole": CLUSTER_ROLES, "ClusterRoleBinding": CLUSTER_ROLE_BINDINGS,
        "Role": ROLES, "RoleBinding": ROLE_BINDINGS}


@pytest.fixture
def store() -> Store:
    s = Store()
    for obj in bootstrap_objects():
        put(s, KEYS[obj["kind"]], obj)
    return s


@pytest.fixture
def authz(store) -> Authorizer:
    return Authorizer(store)


# -- masters and defaults -----------------------------------------------------------------------
def test_system_masters_allowed_everything_without_any_policy():
    a = Authorizer(Store())
    assert a.authorize(ADMIN, res("delete", "secrets", "kube-system")) == (True, "")
    assert a.authorize(ADMIN, res("escalate", "clusterroles", group=G)) == (True, "")
    assert a.authorize(ADMIN, Attributes.non_resource("post", "/anything")) == (True, "")


def test_unbound_user_is_denied_without_reason(authz):
    assert authz.authorize(ALICE, res("list", "pods", "default")) == (False, "")
    assert authz.authorize(ALICE, res("get", "namespaces", name="default")) == (False, "")
    assert not authz.allowed(ALICE, res("create", "daskjobs", "default", group="dask.org"))


def test_authenticated_users_may_ask_and_discover(authz):
    reason = ('RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole '
              '"system:basic-user" to Group "system:authenticated"')
    assert authz.authorize(
        ALICE, res("create", "selfsubjectaccessreviews", group="authorization.k8s.io")
    ) == (True, reason)
    assert authz.allowed(ALICE, res("create", "selfsubjectrulesreviews",
                                    group="authorization.k8s.io"))
    assert authz.allowed(ALICE, res("create", "selfsubjectreviews",
                                    group="authentication.k8s.io"))
    assert not authz.allowed(ALICE, res("create", "subjectaccessreviews",
                                        group="authorization.k8s.io"))
    for path in ("/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version",
                 "/healthz", "/livez", "/readyz"):
        assert authz.allowed(ALICE, Attributes.non_resource("get", path)), path
    assert not authz.allowed(ALICE, Attributes.non_resource("post", "/api"))
    assert not authz.allowed(ALICE, Attributes.non_resource("get", "/metrics"))


def test_anonymous_sees_only_public_info(authz):
    for path in ("/healthz", "/livez", "/readyz", "/version", "/version/"):
        assert authz.allowed(ANON, Attributes.non_resource("get", path)), path
    for path in ("/api", "/apis", "/openapi/v2", "/healthz/etcd"):
        assert not authz.allowed(ANON, Attributes.non_resource("get", path)), path
    assert not authz.allowed(ANON, res("create", "selfsubjectaccessreviews",
                                       group="authorization.k8s.io"))


def test_cluster_admin_binding_allows_everything(authz):
    # A plain user bound to cluster-admin gets the RBAC wording, unlike system:masters.
    store = authz.store
    put(store, CLUSTER_ROLE_BINDINGS, crb("root", "cluster-admin", subj("User", "alice")))
    assert authz.authorize(ALICE, res("delete", "nodes", name="n1")) == (
        True, 'RBAC: allowed by ClusterRoleBinding "root" of ClusterRole "cluster-admin" '
              'to User "alice"')
    assert authz.allowed(ALICE, Attributes.non_resource("put", "/whatever/deep"))


# -- subjects -----------------------------------------------------------------------------------
def test_cluster_role_binding_applies_everywhere(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("pod-reader", [r(["get", "list"], [""], ["pods"])]))
    put(store, CLUSTER_ROLE_BINDINGS, crb("alice-pods", "pod-reader", subj("User", "alice")))
    for ns in ("default", "kube-system", None):
        assert authz.allowed(ALICE, res("list", "pods", ns))
    assert not authz.allowed(ALICE, res("delete", "pods", "default", name="p"))
    assert not authz.allowed(BOB, res("list", "pods", "default"))


def test_group_subject(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("cm", [r(["*"], [""], ["configmaps"])]))
    put(store, CLUSTER_ROLE_BINDINGS, crb("devs-cm", "cm", subj("Group", "devs")))
    ok, reason = authz.authorize(BOB, res("create", "configmaps", "x"))
    assert ok and reason.endswith('to Group "devs"')
    assert not authz.allowed(ALICE, res("create", "configmaps", "x"))


def test_first_matching_subject_is_reported(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("cm", [r(["get"], [""], ["configmaps"])]))
    put(store, CLUSTER_ROLE_BINDINGS, crb("b", "cm", subj("Group", "devs"), subj("User", "bob")))
    assert authz.authorize(BOB, res("get", "configmaps", "x", name="c"))[1].endswith(
        'to Group "devs"')


def test_service_account_subjects(store, authz):
    sa = UserInfo.service_account("team", "runner")
    assert sa.name == "system:serviceaccount:team:runner"
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:team",
                         "system:authenticated")
    put(store, ROLES, role("lease", "team", [r(["get", "update"], ["coordination.k8s.io"],
                                                 ["leases"])]))
    # A RoleBinding's ServiceAccount subject without namespace means the binding's namespace.
    put(store, ROLE_BINDINGS, rb("runner-lease", "team", "Role", "lease",
                                 subj("ServiceAccount", "runner")))
    assert authz.authorize(sa, res("update", "leases", "team", "coordination.k8s.io", "l")) == (
        True, 'RBAC: allowed by RoleBinding "runner-lease/team" of Role "lease" to '
              'ServiceAccount "runner/team"')
    other = UserInfo.service_account("elsewhere", "runner")
    assert not authz.allowed(other, res("update", "leases", "team", "coordination.k8s.io", "l"))

    put(store, CLUSTER_ROLES, cluster_role("nodes", [r(["list"], [""], ["nodes"])]))
    # In a ClusterRoleBinding a ServiceAccount subject must carry its namespace.
    put(store, CLUSTER_ROLE_BINDINGS, crb("bad", "nodes", subj("ServiceAccount", "runner")))
    assert not authz.allowed(sa, res("list", "nodes"))
    put(store, CLUSTER_ROLE_BINDINGS, crb("good", "nodes",
                                          subj("ServiceAccount", "runner", "team")))
    assert authz.authorize(sa, res("list", "nodes"))[1].endswith(
        'to ServiceAccount "runner/team"')


def test_service_account_groups(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("cm", [r(["get"], [""], ["configmaps"])]))
    put(store, ROLE_BINDINGS, rb("all-sas", "team", "ClusterRole", "cm",
                                 subj("Group", "system:serviceaccounts:team")))
    assert authz.allowed(UserInfo.service_account("team", "a"), res("get", "configmaps", "team",
                                                                    name="x"))
    assert not authz.allowed(UserInfo.service_account("other", "a"),
                             res("get", "configmaps", "team", name="x"))


def test_unknown_subject_kinds_are_ignored(store, authz):
    put(store, CLUSTER_ROLE_BINDINGS, crb("odd", "cluster-admin", {"kind": "Robot", "name": "alice"}))
    assert not authz.allowed(ALICE, res("get", "pods", "default", name="p"))


# -- role bindings ------------------------------------------------------------------------------
def test_role_binding_to_role_is_namespace_scoped(store, authz):
    put(store, ROLES, role("dev", "team", [r(["*"], ["apps"], ["deployments"])]))
    put(store, ROLE_BINDINGS, rb("alice-dev", "team", "Role", "dev", subj("User", "alice")))
    assert authz.allowed(ALICE, res("create", "deployments", "team", "apps"))
    assert not authz.allowed(ALICE, res("create", "deployments", "other", "apps"))
    assert not authz.allowed(ALICE, res("list", "deployments", None, "apps"))
    assert not authz.allowed(ALICE, res("create", "deployments", "team", "extensions"))


def test_role_binding_to_cluster_role_is_namespace_scoped(store, authz):
    put(store, ROLE_BINDINGS, rb("alice-edit", "team", "ClusterRole", "edit",
                                 subj("User", "alice")))
    assert authz.authorize(ALICE, res("create", "pods", "team")) == (
        True, 'RBAC: allowed by RoleBinding "alice-edit/team" of ClusterRole "edit" to '
              'User "alice"')
    assert not authz.allowed(ALICE, res("create", "pods", "other"))
    assert not authz.allowed(ALICE, res("list", "pods"))  # cluster-wide list
    # Cluster-admin bound in a namespace is admin of that namespace only.
    put(store, ROLE_BINDINGS, rb("bob-root", "bobs", "ClusterRole", "cluster-admin",
                                 subj("User", "bob")))
    assert authz.allowed(BOB, res("delete", "secrets", "bobs", name="s"))
    assert not authz.allowed(BOB, res("delete", "secrets", "team", name="s"))
    assert not authz.allowed(BOB, res("get", "nodes", name="n"))
    assert not authz.allowed(BOB, Attributes.non_resource("get", "/metrics"))


def test_role_in_other_namespace_is_not_found(store, authz):
    put(store, ROLES, role("dev", "a", [r(["*"], [""], ["pods"])]))
    put(store, ROLE_BINDINGS, rb("x", "b", "Role", "dev", subj("User", "alice")))
    assert authz.authorize(ALICE, res("get", "pods", "b", name="p")) == (
        False, f'RBAC: role.{G} "dev" not found')


def test_missing_roles_are_reported_on_denial(store, authz):
    put(store, CLUSTER_ROLE_BINDINGS, crb("a", "nope", subj("User", "alice")))
    put(store, CLUSTER_ROLE_BINDINGS, crb("b", "nope", subj("User", "alice")))
    put(store, CLUSTER_ROLE_BINDINGS, crb("c", "gone", subj("Group", "system:authenticated")))
    ok, reason = authz.authorize(ALICE, res("get", "pods", "x", name="p"))
    assert not ok
    assert reason == (f'RBAC: [clusterrole.{G} "nope" not found, '
                      f'clusterrole.{G} "gone" not found]')
    # A missing role does not stop other bindings from allowing.
    assert authz.allowed(ALICE, res("create", "selfsubjectaccessreviews",
                                    group="authorization.k8s.io"))


# -- rule matching ------------------------------------------------------------------------------
def test_resource_names(store, authz):
    put(store, ROLES, role("one-cm", "ns", [r(["get", "list", "watch", "update", "create",
                                                "delete", "deletecollection"], [""],
                                               ["configmaps"], ["settings"])]))
    put(store, ROLE_BINDINGS, rb("b", "ns", "Role", "one-cm", subj("User", "alice")))
    assert authz.allowed(ALICE, res("get", "configmaps", "ns", name="settings"))
    assert authz.allowed(ALICE, res("update", "configmaps", "ns", name="settings"))
    assert not authz.allowed(ALICE, res("get", "configmaps", "ns", name="other"))
    # Requests without a name never match a rule limited by resourceNames.
    assert not authz.allowed(ALICE, res("list", "configmaps", "ns"))
    assert not authz.allowed(ALICE, res("watch", "configmaps", "ns"))
    assert not authz.allowed(ALICE, res("create", "configmaps", "ns"))
    assert not authz.allowed(ALICE, res("deletecollection", "configmaps", "ns"))
    # ...but a list/watch with fieldSelector metadata.name=settings carries that name.
    assert authz.allowed(ALICE, res("list", "configmaps", "ns", name="settings"))
    assert authz.allowed(ALICE, res("watch", "configmaps", "ns", name="settings"))


def test_subresources(store, authz):
    put(store, ROLES, role("r", "ns", [
        r(["get", "list"], [""], ["pods"]),
        r(["get"], [""], ["services/proxy"]),
        r(["update", "patch"], ["dask.org"], ["*/status"]),
    ]))
    put(store, ROLE_BINDINGS, rb("b", "ns", "Role", "r", subj("User", "alice")))
    assert authz.allowed(ALICE, res("get", "pods", "ns", name="p"))
    assert not authz.allowed(ALICE, res("get", "pods", "ns", name="p", sub="log"))
    assert authz.allowed(ALICE, res("get", "services", "ns", name="s", sub="proxy"))
    assert not authz.allowed(ALICE, res("get", "services", "ns", name="s"))
    assert authz.allowed(ALICE, res("patch", "daskjobs", "ns", "dask.org", "j", sub="status"))
    assert authz.allowed(ALICE, res("update", "daskclusters", "ns", "dask.org", "c",
                                    sub="status"))
    assert not authz.allowed(ALICE, res("patch", "daskjobs", "ns", "dask.org", "j"))
    assert not authz.allowed(ALICE, res("patch", "daskjobs", "ns", "dask.org", "j", sub="scale"))


def test_view_and_edit_subresources(store, authz):
    put(store, ROLE_BINDINGS, rb("v", "ns", "ClusterRole", "view", subj("User", "alice")))
    put(store, ROLE_BINDINGS, rb("e", "ns", "ClusterRole", "edit", subj("User", "bob")))
    assert authz.allowed(ALICE, res("get", "pods", "ns", name="p", sub="log"))
    assert authz.allowed(ALICE, res("get", "deployments", "ns", "apps", "d", sub="scale"))
    assert not authz.allowed(ALICE, res("update", "deployments", "ns", "apps", "d", sub="scale"))
    assert not authz.allowed(ALICE, res("get", "secrets", "ns", name="s"))
    assert not authz.allowed(ALICE, res("create", "pods", "ns", name="p", sub="exec"))
    assert authz.allowed(BOB, res("get", "secrets", "ns", name="s"))
    assert authz.allowed(BOB, res("create", "pods", "ns", name="p", sub="exec"))
    assert authz.allowed(BOB, res("create", "pods", "ns", name="p", sub="eviction"))
    assert authz.allowed(BOB, res("patch", "deployments", "ns", "apps", "d", sub="scale"))
    assert authz.allowed(BOB, res("update", "leases", "ns", "coordination.k8s.io", "l"))
    assert not authz.allowed(BOB, res("create", "roles", "ns", G))
    # get namespace "ns" is a request in namespace "ns", so a RoleBinding there covers it.
    assert authz.allowed(ALICE, res("get", "namespaces", "ns", name="ns"))


def test_wildcards(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("any", [r(["*"], ["*"], ["*"])]))
    put(store, ROLE_BINDINGS, rb("b", "ns", "ClusterRole", "any", subj("User", "alice")))
    assert authz.allowed(ALICE, res("escalate", "anything", "ns", "some.group", "x", sub="y"))
    put(store, CLUSTER_ROLES, cluster_role("get-all", [r(["get"], ["*"], ["*"])]))
    put(store, CLUSTER_ROLE_BINDINGS, crb("b", "get-all", subj("User", "bob")))
    assert authz.allowed(BOB, res("get", "nodes", name="n"))
    assert authz.allowed(BOB, res("get", "pods", "ns", name="p", sub="log"))
    assert not authz.allowed(BOB, res("list", "nodes"))


def test_rule_allows_semantics():
    rule = r(["get"], ["apps"], ["deployments"])
    assert rule_allows(rule, res("get", "deployments", "x", "apps", "d"))
    assert not rule_allows(rule, res("get", "deployments", "x", "", "d"))
    assert not rule_allows(rule, res("*", "deployments", "x", "apps", "d"))
    assert rule_allows(r(["*"], ["apps"], ["deployments"]), res("*", "deployments", "x", "apps"))
    assert not rule_allows({"verbs": ["get"], "resources": ["pods"]}, res("get", "pods", "x"))
    # Resource rules never cover non-resource URLs, and URL rules never cover resources.
    assert not rule_allows(r(["*"], ["*"], ["*"]), Attributes.non_resource("get", "/api"))
    assert not rule_allows({"verbs": ["*"], "nonResourceURLs": ["*"]}, res("get", "pods", "x"))


def test_non_resource_urls(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("urls", [
        {"verbs": ["get"], "nonResourceURLs": ["/metrics", "/logs/*"]},
        {"verbs": ["post"], "nonResourceURLs": ["/hooks/*"]},
    ]))
    put(store, CLUSTER_ROLE_BINDINGS, crb("urls", "urls", subj("User", "alice")))
    nr = Attributes.non_resource
    assert authz.allowed(ALICE, nr("get", "/metrics"))
    assert not authz.allowed(ALICE, nr("get", "/metrics/slis"))
    assert authz.allowed(ALICE, nr("get", "/logs/kube-apiserver.log"))
    assert authz.allowed(ALICE, nr("get", "/logs/"))
    assert not authz.allowed(ALICE, nr("get", "/logs"))
    assert authz.allowed(ALICE, nr("post", "/hooks/x"))
    assert not authz.allowed(ALICE, nr("get", "/hooks/x"))
    # URL rules in a role bound by a RoleBinding never apply: URLs have no namespace.
    put(store, CLUSTER_ROLES, cluster_role("urls2", [{"verbs": ["get"],
                                                      "nonResourceURLs": ["/debug"]}]))
    put(store, ROLE_BINDINGS, rb("u", "ns", "ClusterRole", "urls2", subj("User", "bob")))
    assert not authz.allowed(BOB, nr("get", "/debug"))


# -- aggregation --------------------------------------------------------------------------------
DASK_EDIT = [r(["create", "delete", "get", "list", "patch", "update", "watch"], ["dask.org"],
               ["daskjobs", "daskjobs/status"])]


def test_aggregation_into_edit_and_admin(store, authz):
    user = UserInfo("u", ("system:authenticated",))
    put(store, ROLE_BINDINGS, rb("edit", "ns", "ClusterRole", "edit", subj("User", "u")))
    put(store, ROLE_BINDINGS, rb("admin", "ns", "ClusterRole", "admin", subj("User", "bob")))
    put(store, ROLE_BINDINGS, rb("view", "ns", "ClusterRole", "view", subj("User", "alice")))
    job = res("create", "daskjobs", "ns", "dask.org")
    assert not authz.allowed(user, job)
    put(store, CLUSTER_ROLES, cluster_role(
        "dask-edit", DASK_EDIT, labels={f"{G}/aggregate-to-edit": "true"}))
    assert authz.authorize(user, job) == (
        True, 'RBAC: allowed by RoleBinding "edit/ns" of ClusterRole "edit" to User "u"')
    assert authz.allowed(BOB, job)  # admin aggregates edit
    assert not authz.allowed(ALICE, res("get", "daskjobs", "ns", "dask.org", "j"))
    assert authz.allowed(user, res("patch", "daskjobs", "ns", "dask.org", "j", sub="status"))

    stored = {name: rules for name, rules in aggregate_cluster_roles(store)}
    assert set(stored) == {"admin", "edit", "view"}
    assert DASK_EDIT[0] in stored["edit"] and DASK_EDIT[0] in stored["admin"]
    assert DASK_EDIT[0] not in stored["view"]
    # The bootstrap edit role already carries view's rules; they come after edit's own.
    edit_rules = stored["edit"]
    assert edit_rules.index(DASK_EDIT[0]) < edit_rules.index(
        r(["get", "list", "watch"], [""], ["namespaces"]))


def test_aggregation_removal_takes_effect(store, authz):
    put(store, CLUSTER_ROLES, cluster_role(
        "dask-view", [r(["get"], ["dask.org"], ["daskjobs"])],
        labels={f"{G}/aggregate-to-view": "true"}))
    put(store, ROLE_BINDINGS, rb("view", "ns", "ClusterRole", "view", subj("User", "alice")))
    get_job = res("get", "daskjobs", "ns", "dask.org", "j")
    assert authz.allowed(ALICE, get_job)
    delete(store, CLUSTER_ROLES, "dask-view")
    assert not authz.allowed(ALICE, get_job)


def test_aggregated_rules_helper():
    base = cluster_role("base", [r(["get"], [""], ["pods"])], labels={"agg": "yes"})
    dup = cluster_role("dup", [r(["get"], [""], ["pods"]), r(["list"], [""], ["pods"])],
                       labels={"agg": "yes", "tier": "b"})
    other = cluster_role("other", [r(["get"], [""], ["nodes"])], labels={"agg": "no"})
    agg = cluster_role("agg", [r(["stale"], [""], ["x"])], labels={"agg": "yes"},
                       aggregate=[{"matchLabels": {"agg": "yes"}}])
    everything = [agg, base, dup, other]
    # Itself excluded, duplicates removed, name order; stale own rules replaced.
    assert aggregated_rules(agg, everything) == [r(["get"], [""], ["pods"]),
                                                 r(["list"], [""], ["pods"])]
    by_expr = cluster_role("e", [], aggregate=[
        {"matchExpressions": [{"key": "agg", "operator": "In", "values": ["yes"]},
                              {"key": "tier", "operator": "DoesNotExist"}]}])
    assert aggregated_rules(by_expr, [base, dup, other]) == [r(["get"], [""], ["pods"])]
    # A matched role that is itself aggregated contributes its aggregated rules.
    assert aggregated_rules(by_expr, everything) == [r(["get"], [""], ["pods"]),
                                                     r(["list"], [""], ["pods"])]
    assert aggregated_rules(base, everything) == base["rules"]
    # Roles aggregating each other terminate (an aggregated role's own rules are the
    # controller's output, so the cycle just settles on what it finds).
    a = cluster_role("a", [r(["get"], [""], ["a"])], labels={"x": "1"},
                     aggregate=[{"matchLabels": {"x": "1"}}])
    b = cluster_role("b", [r(["get"], [""], ["b"])], labels={"x": "1"},
                     aggregate=[{"matchLabels": {"x": "1"}}])
    assert aggregated_rules(a, [a, b]) == [r(["get"], [""], ["a"])]


def test_selector_matches():
    labels = {"a": "1", "b": "2"}
    assert selector_matches({}, labels)
    assert not selector_matches(None, labels)
    assert selector_matches({"matchLabels": {"a": "1"}}, labels)
    assert not selector_matches({"matchLabels": {"a": "2"}}, labels)
    ex = lambda op, key="a", values=(): {"matchExpressions": [  # noqa: E731
        {"key": key, "operator": op, "values": list(values)}]}
    assert selector_matches(ex("In", values=["1", "3"]), labels)
    assert not selector_matches(ex("NotIn", values=["1"]), labels)
    assert selector_matches(ex("NotIn", key="c", values=["1"]), labels)
    assert selector_matches(ex("Exists"), labels)
    assert not selector_matches(ex("Exists", key="c"), labels)
    assert selector_matches(ex("DoesNotExist", key="c"), labels)
    assert not selector_matches(ex("Bogus"), labels)


# -- caching ------------------------------------------------------------------------------------
def test_cache_follows_binding_changes(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("pods", [r(["list"], [""], ["pods"])]))
    list_pods = res("list", "pods", "ns")
    assert not authz.allowed(ALICE, list_pods)
    built = authz.rebuilds
    assert not authz.allowed(ALICE, list_pods)
    assert authz.rebuilds == built  # nothing changed, nothing rebuilt
    put(store, ROLE_BINDINGS, rb("b", "ns", "ClusterRole", "pods", subj("User", "alice")))
    assert authz.allowed(ALICE, list_pods)
    assert authz.rebuilds == built + 1
    # A binding update (subject swapped) is seen.
    put(store, ROLE_BINDINGS, rb("b", "ns", "ClusterRole", "pods", subj("User", "bob")))
    assert not authz.allowed(ALICE, list_pods)
    assert authz.allowed(BOB, list_pods)
    delete(store, ROLE_BINDINGS, "b", "ns")
    assert not authz.allowed(BOB, list_pods)
    # Unrelated writes do not rebuild.
    built = authz.rebuilds
    put(store, ("", "configmaps"), {"metadata": {"name": "c", "namespace": "ns"}})
    assert not authz.allowed(BOB, list_pods)
    assert authz.rebuilds == built


def test_cache_follows_role_changes(store, authz):
    put(store, ROLES, role("r", "ns", [r(["get"], [""], ["pods"])]))
    put(store, ROLE_BINDINGS, rb("b", "ns", "Role", "r", subj("User", "alice")))
    assert not authz.allowed(ALICE, res("delete", "pods", "ns", name="p"))
    put(store, ROLES, role("r", "ns", [r(["get", "delete"], [""], ["pods"])]))
    assert authz.allowed(ALICE, res("delete", "pods", "ns", name="p"))
    delete(store, ROLES, "r", "ns")
    assert authz.authorize(ALICE, res("get", "pods", "ns", name="p")) == (
        False, f'RBAC: role.{G} "r" not found')


def test_explicit_invalidate(store, authz):
    authz.allowed(ALICE, res("get", "pods", "ns", name="p"))
    built = authz.rebuilds
    authz.invalidate()
    authz.allowed(ALICE, res("get", "pods", "ns", name="p"))
    assert authz.rebuilds == built + 1


def test_many_bindings_stay_cheap(store, authz):
    put(store, CLUSTER_ROLES, cluster_role("pods", [r(["get"], [""], ["pods"])]))
    for i in range(300):
        put(store, ROLE_BINDINGS, rb(f"b{i}", f"ns{i % 30}", "ClusterRole", "pods",
                                     subj("User", f"user{i}")))
        put(store, CLUSTER_ROLE_BINDINGS, crb(f"c{i}", "view", subj("Group", f"g{i}")))
    users = [UserInfo(f"user{i}", ("system:authenticated",)) for i in range(300)]
    authz.allowed(users[0], res("get", "pods", "ns0", name="p"))
    built = authz.rebuilds
    start = time.perf_counter()
    for i, u in enumerate(users * 10):
        assert authz.allowed(u, res("get", "pods", f"ns{i % 300 % 30}", name="p"))
        assert not authz.allowed(u, res("get", "pods", f"ns{(i + 1) % 300 % 30}", name="p"))
    assert time.perf_counter() - start < 2.0
    assert authz.rebuilds == built


# -- rules review -------------------------------------------------------------------------------
def test_rules_for(store, authz):
    put(store, ROLES, role("r", "ns", [r(["get"], [""], ["configmaps"], ["cfg"])]))
    put(store, ROLE_BINDINGS, rb("b", "ns", "Role", "r", subj("User", "alice")))
    resource_rules, non_resource_rules = authz.rules_for(ALICE, "ns")
    assert {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
            "resourceNames": ["cfg"]} in resource_rules
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in resource_rules
    assert any("/api/*" in n["nonResourceURLs"] for n in non_resource_rules)
    assert all("resources" not in n for n in non_resource_rules)
    other, _ = authz.rules_for(ALICE, "other")
    assert not any("configmaps" in x["resources"] for x in other)


def test_rules_review_reports_missing_roles(store, authz):
    put(store, ROLE_BINDINGS, rb("b", "ns", "Role", "ghost", subj("User", "alice")))
    status = authz.rules_review(ALICE, "ns")
    assert status["incomplete"] is False
    assert status["evaluationError"] == f'role.{G} "ghost" not found'
    assert status["resourceRules"]
    assert "evaluationError" not in authz.rules_review(BOB, "ns")


def test_rules_for_cluster_admin(store, authz):
    rr, nrr = authz.rules_for(ADMIN, "default")
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in rr
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} in nrr


# -- access reviews -----------------------------------------------------------------------------
def test_review_resource_attributes(store, authz):
    put(store, ROLE_BINDINGS, rb("b", "ns", "ClusterRole", "view", subj("User", "alice")))
    spec = {"resourceAttributes": {"namespace": "ns", "verb": "list", "resource": "pods"}}
    assert authz.review(ALICE, spec) == {
        "allowed": True,
        "reason": 'RBAC: allowed by RoleBinding "b/ns" of ClusterRole "view" to User "alice"'}
    spec = {"resourceAttributes": {"namespace": "ns", "verb": "get", "resource": "pods",
                                   "subresource": "log", "name": "p", "version": "v1"}}
    assert authz.review(ALICE, spec)["allowed"] is True
    assert authz.review(ALICE, {"resourceAttributes": {"namespace": "ns", "verb": "delete",
                                                       "resource": "pods"}}) == {"allowed": False}
    assert authz.review(ADMIN, {"resourceAttributes": {"verb": "*", "resource": "*",
                                                       "group": "*"}}) == {"allowed": True}


def test_review_non_resource_attributes(authz):
    assert authz.review(ALICE, {"nonResourceAttributes": {"path": "/apis", "verb": "get"}})[
        "allowed"]
    assert authz.review(ANON, {"nonResourceAttributes": {"path": "/apis", "verb": "get"}}) == {
        "allowed": False}


def test_review_spec_must_name_one_kind(authz):
    with pytest.raises(APIError) as err:
        authz.review(ALICE, {})
    assert err.value.code == 422 and "exactly one of" in err.value.message
    with pytest.raises(APIError) as err:
        authz.review(ALICE, {"resourceAttributes": {}, "nonResourceAttributes": {}})
    assert err.value.code == 422


def test_attributes_and_users_from_review_specs():
    a = attributes_from_spec({"resourceAttributes": {"verb": "get", "group": "apps",
                                                     "resource": "deployments",
                                                     "namespace": "", "name": ""}})
    assert a == Attributes("get", "apps", "deployments")
    assert attributes_from_spec({"nonResourceAttributes": {"path": "/x", "verb": "get"}}) == (
        Attributes.non_resource("get", "/x"))
    u = user_from_review_spec({"user": "bob", "groups": ["g"], "extra": {"k": ["v"]}})
    assert u == UserInfo("bob", ("g",), "", {"k": ["v"]})
    assert hash(UserInfo("x")) == hash(UserInfo("x", extra={"a": 1}))


# -- bootstrap policy ---------------------------------------------------------------------------
def test_bootstrap_objects_shape():
    objs = bootstrap_objects()
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    for n in ("cluster-admin", "admin", "edit", "view", "system:aggregate-to-admin",
              "system:aggregate-to-edit", "system:aggregate-to-view", "system:discovery",
              "system:basic-user", "system:public-info-viewer"):
        assert ("ClusterRole", n) in names
    for n in ("cluster-admin", "system:discovery", "system:basic-user",
              "system:public-info-viewer"):
        assert ("ClusterRoleBinding", n) in names
    for o in objs:
        assert o["apiVersion"] == f"{G}/v1"
        assert o["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert o["metadata"]["annotations"] == {
            "rbac.authorization.kubernetes.io/autoupdate": "true"}
        assert "resourceVersion" not in o["metadata"]
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    assert by["ClusterRoleBinding", "cluster-admin"]["subjects"] == [
        {"apiGroup": G, "kind": "Group", "name": "system:masters"}]
    assert [s["name"] for s in by["ClusterRoleBinding", "system:public-info-viewer"][
        "subjects"]] == ["system:authenticated", "system:unauthenticated"]
    assert [s["name"] for s in by["ClusterRoleBinding", "system:discovery"]["subjects"]] == [
        "system:authenticated"]
    edit = by["ClusterRole", "edit"]
    assert edit["aggregationRule"] == {"clusterRoleSelectors": [
        {"matchLabels": {f"{G}/aggregate-to-edit": "true"}}]}
    assert edit["metadata"]["labels"][f"{G}/aggregate-to-admin"] == "true"
    assert by["ClusterRole", "view"]["metadata"]["labels"][f"{G}/aggregate-to-edit"] == "true"
    # Aggregated roles arrive with their rules filled in: view's 10, edit's 13 + view's.
    assert len(by["ClusterRole", "view"]["rules"]) == 10
    assert len(edit["rules"]) == 23
    assert len(by["ClusterRole", "admin"]["rules"]) == 25
    view_resources = {x for rule in by["ClusterRole", "view"]["rules"]
                      for x in rule["resources"]}
    assert "secrets" not in view_resources and "pods/log" in view_resources
    # Each call hands out fresh objects.
    edit["rules"].clear()
    assert len(next(o for o in bootstrap_objects()
                    if o["metadata"]["name"] == "edit")["rules"]) == 23
