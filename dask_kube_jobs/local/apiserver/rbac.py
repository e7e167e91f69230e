"""Role-based access control, decided the way kube-apiserver's RBAC authorizer decides.

Clients discover what they may do by asking (``kubectl auth can-i``, kopf's and Helm's
pre-flight checks) and react to 403s, so the answers and the wording have to match a real
cluster: a request is allowed when some binding that names the user (directly, through one of
its groups, or as a ServiceAccount) refers to a role holding a rule that covers the request.
ClusterRoleBindings apply everywhere; RoleBindings only to requests in their own namespace,
even when they refer to a ClusterRole. Nothing is ever denied explicitly: no matching rule
simply means "no", with a reason only when a binding pointed at a role that does not exist.
Members of ``system:masters`` are allowed before RBAC is consulted, as kube-apiserver's
privileged-group authorizer does, so the admin kubeconfig works even with no policy stored.

Who "the user" is (name and groups, including ``system:authenticated`` and, for
ServiceAccounts, ``system:serviceaccounts`` and ``system:serviceaccounts:<ns>``) is the
authenticator's business; this module takes it as given. So is turning a request into
``Attributes``: as kube-apiserver does, a request on ``/api/v1/namespaces/<n>`` carries
namespace ``<n>``, and a list or watch with a ``metadata.name=<x>`` field selector carries name
``<x>`` so that rules limited by ``resourceNames`` can allow it.

Speed: bindings are indexed by the user names and group names they mention, and compiled role
rules are cached, so a decision looks only at the few bindings that concern the caller. The
index is rebuilt lazily after any write to an RBAC resource, detected by comparing the last
event of each RBAC resource in the store (the server may also call ``invalidate()``).

Aggregated ClusterRoles (``admin``, ``edit``, ``view`` and anyone's role with an
``aggregationRule``) are evaluated with their aggregated rules computed at authorization time
from the ClusterRoles their selectors match, so a newly labelled role takes effect at once even
before a controller has rewritten the aggregated role's ``rules``. ``aggregate_cluster_roles``
gives that controller what to write so that ``kubectl get clusterrole edit -o yaml`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._aggregation import aggregated_rules
from .bootstrap_rbac import bootstrap_objects  # noqa: F401  (re-exported for the server)
from .errors import APIError, Cause, invalid

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = (RBAC_GROUP, "roles")
ROLE_BINDINGS = (RBAC_GROUP, "rolebindings")
CLUSTER_ROLES = (RBAC_GROUP, "clusterroles")
CLUSTER_ROLE_BINDINGS = (RBAC_GROUP, "clusterrolebindings")
RBAC_KEYS = (ROLES, ROLE_BINDINGS, CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS)

MASTERS = "system:masters"
SA_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) caller, as the authenticator established it."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def service_account(cls, namespace: str, name: str, uid: str = "") -> UserInfo:
        """The user a ServiceAccount token authenticates as, with the groups Kubernetes adds."""
        return cls(f"{SA_PREFIX}{namespace}:{name}",
                   ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                    "system:authenticated"), uid)

    @classmethod
    def anonymous(cls) -> UserInfo:
        return cls("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True)
class Attributes:
    """What a request wants to do. ``namespace`` None or "" means cluster scope.

    Non-resource requests (``/healthz``, ``/apis``) set ``resource_request=False`` and ``path``;
    their verb is the lower-cased HTTP method.
    """

    verb: str
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str | None = None
    name: str | None = None
    path: str | None = None
    resource_request: bool = True

    @classmethod
    def non_resource(cls, verb: str, path: str) -> Attributes:
        return cls(verb=verb, path=path, resource_request=False)


# -- rules --------------------------------------------------------------------------------------
class CompiledRule:
    """One PolicyRule, turned into sets so that matching a request is a few lookups."""

    __slots__ = ("verbs", "all_verbs", "groups", "all_groups", "resources", "all_resources",
                 "names", "urls", "url_prefixes")

    def __init__(self, rule: Mapping[str, Any]) -> None:
        self.verbs = frozenset(rule.get("verbs") or ())
        self.all_verbs = "*" in self.verbs
        self.groups = frozenset(rule.get("apiGroups") or ())
        self.all_groups = "*" in self.groups
        self.resources = frozenset(rule.get("resources") or ())
        self.all_resources = "*" in self.resources
        self.names = frozenset(rule.get("resourceNames") or ())
        urls = rule.get("nonResourceURLs") or ()
        # "/apis/*" covers everything under "/apis/", "*" covers every path.
        self.urls = frozenset(u for u in urls if not u.endswith("*"))
        self.url_prefixes = tuple(u.rstrip("*") for u in urls if u.endswith("*"))

    def allows(self, a: Attributes) -> bool:
        if not (self.all_verbs or a.verb in self.verbs):
            return False
        if not a.resource_request:
            path = a.path or ""
            return path in self.urls or any(path.startswith(p) for p in self.url_prefixes)
        if not (self.all_groups or a.group in self.groups):
            return False
        if not self.all_resources:
            if a.subresource:
                if (f"{a.resource}/{a.subresource}" not in self.resources
                        and f"*/{a.subresource}" not in self.resources):
                    return False
            elif a.resource not in self.resources:
                return False
        # A rule limited to names never covers a request without one (create, plain list).
        return not self.names or (a.name or "") in self.names


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule (a dict) covers the request."""
    return CompiledRule(rule).allows(attrs)


# -- aggregation --------------------------------------------------------------------------------
def aggregate_cluster_roles(store: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(name, rules)`` for every aggregated ClusterRole in the store, for a controller to
    write into ``.rules`` when they differ from what is stored."""
    roles = store.list(CLUSTER_ROLES)
    return [(r["metadata"]["name"], aggregated_rules(r, roles))
            for r in roles if r.get("aggregationRule")]


# -- bindings index -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Grant:
    """One binding as it applies to one of its subjects."""

    seq: int  # the binding's position; earlier bindings are consulted first
    subject_index: int
    kind: str  # "ClusterRoleBinding" or "RoleBinding"
    name: str
    namespace: str  # "" for ClusterRoleBindings
    role_kind: str
    role_name: str
    subject: Mapping[str, Any]

    def describe(self) -> str:
        s = self.subject
        who = s.get("name", "")
        if s.get("kind") == "ServiceAccount":
            who = f"{who}/{s.get('namespace') or self.namespace}"
        subject = f'{s.get("kind")} "{who}"'
        binding = f"{self.name}/{self.namespace}" if self.kind == "RoleBinding" else self.name
        return f'{self.kind} "{binding}" of {self.role_kind} "{self.role_name}" to {subject}'


def _subject_key(subject: Mapping[str, Any], binding_ns: str) -> tuple[str, str] | None:
    """The (user or group, name) a subject stands for; ServiceAccounts are user names."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return ("u", name)
    if kind == "Group":
        return ("g", name)
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_ns
        # A ServiceAccount subject of a ClusterRoleBinding must name its namespace.
        return ("u", f"{SA_PREFIX}{ns}:{name}") if ns else None
    return None


class _Index:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.cluster: dict[tuple[str, str], list[Grant]] = {}
        self.namespaced: dict[str, dict[tuple[str, str], list[Grant]]] = {}
        self.rule_cache: dict[tuple[str, str, str], tuple[list[CompiledRule], list[dict], str]] = {}
        self.aggregated: dict[str, list[dict[str, Any]]] = {}
        seq = 0
        for kind, key in (("ClusterRoleBinding", CLUSTER_ROLE_BINDINGS),
                          ("RoleBinding", ROLE_BINDINGS)):
            for binding in store.list(key):
                seq += 1
                ns = (binding["metadata"].get("namespace") or "") if kind == "RoleBinding" else ""
                ref = binding.get("roleRef") or {}
                target = self.cluster if kind == "ClusterRoleBinding" else \
                    self.namespaced.setdefault(ns, {})
                for i, subject in enumerate(binding.get("subjects") or ()):
                    skey = _subject_key(subject, ns)
                    if skey is None:
                        continue
                    target.setdefault(skey, []).append(Grant(
                        seq, i, kind, binding["metadata"]["name"], ns,
                        ref.get("kind", ""), ref.get("name", ""), subject))

    def grants(self, user: UserInfo, namespace: str) -> list[Grant]:
        """Bindings that apply to the user, ClusterRoleBindings first, each once (with its
        first matching subject), in the order kube-apiserver would visit them."""
        keys = [("u", user.name)] + [("g", g) for g in user.groups]
        out: list[Grant] = []
        for table in (self.cluster, self.namespaced.get(namespace) if namespace else None):
            if not table:
                continue
            best: dict[int, Grant] = {}
            for k in keys:
                for g in table.get(k, ()):
                    cur = best.get(g.seq)
                    if cur is None or g.subject_index < cur.subject_index:
                        best[g.seq] = g
            out.extend(best[s] for s in sorted(best))
        return out

    def rules(self, grant: Grant) -> tuple[list[CompiledRule], list[dict], str]:
        """The compiled and raw rules of a grant's role, or an error message if unresolvable."""
        ns = grant.namespace if grant.role_kind == "Role" else ""
        ck = (grant.role_kind, ns, grant.role_name)
        hit = self.rule_cache.get(ck)
        if hit is None:
            hit = self.rule_cache[ck] = self._resolve(*ck)
        return hit

    def _resolve(self, kind: str, namespace: str, name: str
                 ) -> tuple[list[CompiledRule], list[dict], str]:
        if kind == "Role":
            role = self.store.get(ROLES, namespace, name) if namespace else None
            if role is None:
                return [], [], f'role.{RBAC_GROUP} "{name}" not found'
            raw = list(role.get("rules") or [])
        elif kind == "ClusterRole":
            role = self.store.get(CLUSTER_ROLES, None, name)
            if role is None:
                return [], [], f'clusterrole.{RBAC_GROUP} "{name}" not found'
            raw = self.cluster_role_rules(role)
        else:
            return [], [], f'unsupported role reference kind: "{kind}"'
        return [CompiledRule(r) for r in raw], raw, ""

    def cluster_role_rules(self, role: Mapping[str, Any]) -> list[dict[str, Any]]:
        if not role.get("aggregationRule"):
            return list(role.get("rules") or [])
        name = role["metadata"]["name"]
        if name not in self.aggregated:
            self.aggregated[name] = aggregated_rules(role, self.store.list(CLUSTER_ROLES))
        return self.aggregated[name]


def _aggregate_errors(errors: list[str]) -> str:
    # Like Kubernetes' error aggregates: one message alone, several as "[a, b]", deduplicated.
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# -- the authorizer -----------------------------------------------------------------------------
class Authorizer:
    """RBAC decisions over the RBAC objects in a ``Store``."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._index: _Index | None = None
        self._stamp: tuple = ()
        #: how many times the bindings index was (re)built; tests use it to check caching
        self.rebuilds = 0

    def invalidate(self) -> None:
        """Forget the index; the server may call this after writing any RBAC object."""
        self._index = None

    def _current_stamp(self) -> tuple:
        # The last event of each RBAC resource changes on every create, update and delete;
        # identity comparison keeps the check O(1) however many bindings there are.
        return tuple(self.store.last_event(key) for key in RBAC_KEYS)

    def _idx(self) -> _Index:
        stamp = self._current_stamp()
        if (self._index is None or len(stamp) != len(self._stamp)
                or any(a is not b for a, b in zip(stamp, self._stamp, strict=True))):
            self._index = _Index(self.store)
            self._stamp = stamp
            self.rebuilds += 1
        return self._index

    def authorize(self, user: UserInfo, attrs: Attributes) -> tuple[bool, str]:
        """``(allowed, reason)``; the reason names the binding that allowed the request, or,
        for a denial, the roles that bindings of this user refer to but do not exist."""
        if MASTERS in user.groups:
            return True, ""
        idx = self._idx()
        namespace = (attrs.namespace or "") if attrs.resource_request else ""
        errors: list[str] = []
        for grant in idx.grants(user, namespace):
            compiled, _, error = idx.rules(grant)
            if error:
                errors.append(error)
                continue
            for rule in compiled:
                if rule.allows(attrs):
                    return True, f"RBAC: allowed by {grant.describe()}"
        return False, f"RBAC: {_aggregate_errors(errors)}" if errors else ""

    def allowed(self, user: UserInfo, attrs: Attributes) -> bool:
        return self.authorize(user, attrs)[0]

    def _rules(self, user: UserInfo, namespace: str | None
               ) -> tuple[list[dict[str, Any]], list[str]]:
        idx = self._idx()
        rules: list[dict[str, Any]] = []
        errors: list[str] = []
        for grant in idx.grants(user, namespace or ""):
            _, raw, error = idx.rules(grant)
            if error:
                errors.append(error)
            rules.extend(raw)
        return rules, errors

    def rules_for(self, user: UserInfo, namespace: str | None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The user's rules in a namespace, shaped as SelfSubjectRulesReview ``resourceRules``
        and ``nonResourceRules``: every rule of every applicable role, in visiting order."""
        rules, _ = self._rules(user, namespace)
        return _split_rules(rules)

    def rules_review(self, user: UserInfo, namespace: str | None) -> dict[str, Any]:
        """The ``status`` of a SelfSubjectRulesReview for ``spec.namespace``. Kubernetes'
        RBAC reports unresolvable role references as ``evaluationError``, not as incomplete."""
        rules, errors = self._rules(user, namespace)
        resource_rules, non_resource_rules = _split_rules(rules)
        status: dict[str, Any] = {"resourceRules": resource_rules,
                                  "nonResourceRules": non_resource_rules, "incomplete": False}
        if errors:
            status["evaluationError"] = _aggregate_errors(errors)
        return status

    def review(self, user: UserInfo, spec: Mapping[str, Any],
               kind: str = "SelfSubjectAccessReview") -> dict[str, Any]:
        """The ``status`` of a (Self|Local)SubjectAccessReview whose ``spec`` is given.

        Raises a 422 when the spec names neither or both kinds of attributes. The reason is
        left out when empty, as Kubernetes omits it.
        """
        allowed, reason = self.authorize(user, attributes_from_spec(spec, kind))
        status: dict[str, Any] = {"allowed": allowed}
        if reason:
            status["reason"] = reason
        return status


def _split_rules(rules: list[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    resource_rules: list[dict[str, Any]] = []
    non_resource_rules: list[dict[str, Any]] = []
    for r in rules:
        if r.get("resources"):
            entry: dict[str, Any] = {"verbs": list(r.get("verbs") or [])}
            for f in ("apiGroups", "resources", "resourceNames"):
                if r.get(f):
                    entry[f] = list(r[f])
            resource_rules.append(entry)
        if r.get("nonResourceURLs"):
            non_resource_rules.append({"verbs": list(r.get("verbs") or []),
                                       "nonResourceURLs": list(r["nonResourceURLs"])})
    return resource_rules, non_resource_rules


def attributes_from_spec(spec: Mapping[str, Any],
                         kind: str = "SelfSubjectAccessReview") -> Attributes:
    """Request attributes from an access review's ``spec``."""
    ra = spec.get("resourceAttributes")
    nra = spec.get("nonResourceAttributes")
    if ra is None and nra is None:
        raise _review_invalid(kind, "spec.resourceAttributes", 'Invalid value: "null": exactly '
                              "one of nonResourceAttributes or resourceAttributes must be "
                              "specified")
    if ra is not None and nra is not None:
        raise _review_invalid(kind, "spec.nonResourceAttributes", "Invalid value: "
                              '"{...}": cannot be specified in combination with '
                              "resourceAttributes")
    if nra is not None:
        return Attributes.non_resource(nra.get("verb") or "", nra.get("path") or "")
    return Attributes(
        verb=ra.get("verb") or "", group=ra.get("group") or "",
        resource=ra.get("resource") or "", subresource=ra.get("subresource") or "",
        namespace=ra.get("namespace") or None, name=ra.get("name") or None,
    )


def _review_invalid(kind: str, field_path: str, message: str) -> APIError:
    return invalid(kind, "", [Cause(field_path, message)], group="authorization.k8s.io")


def user_from_review_spec(spec: Mapping[str, Any]) -> UserInfo:
    """The user a SubjectAccessReview asks about (``spec.user``, ``groups``, ``uid``,
    ``extra``); Kubernetes takes these as written, adding no groups."""
    return UserInfo(spec.get("user") or "", tuple(spec.get("groups") or ()),
                    spec.get("uid") or "", dict(spec.get("extra") or {}))
