"""ClusterRole aggregation as pure logic: which rules an aggregated ClusterRole ends up with.

Two components need the same answer and must not import each other: the API server's RBAC
authorizer (which evaluates aggregated roles at authorization time, so a newly labelled role
takes effect at once) and the clusterrole-aggregation controller (which writes the union into
the role's ``rules`` so ``kubectl get clusterrole edit -o yaml`` shows it). Both import it from
here; it works on plain dicts and touches no store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A metav1.LabelSelector test; an empty selector matches everything, a null one nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or ():
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or ()
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return False
    return True


def _rule_key(rule: Mapping[str, Any]) -> tuple:
    # Semantic equality of PolicyRules: a missing list and an empty one are the same.
    return tuple(tuple(rule.get(f) or ()) for f in
                 ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"))


def aggregated_rules(clusterrole: Mapping[str, Any],
                     all_clusterroles: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rules an aggregated ClusterRole ends up with: the union, without duplicates, of the
    rules of every other ClusterRole one of its selectors matches, in selector order and then
    name order, as the aggregation controller writes them. A matched role that is itself
    aggregated contributes its own aggregated rules (the controller reaches the same fixed
    point over several passes). A role without an ``aggregationRule`` keeps its own rules."""
    by_name = {r["metadata"]["name"]: r for r in all_clusterroles}
    return _aggregate(clusterrole, by_name, set())


def _aggregate(role: Mapping[str, Any], by_name: Mapping[str, Mapping[str, Any]],
               visiting: set[str]) -> list[dict[str, Any]]:
    name = role["metadata"]["name"]
    agg = role.get("aggregationRule")
    if not agg or name in visiting:
        return list(role.get("rules") or [])
    visiting = visiting | {name}
    out: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for selector in agg.get("clusterRoleSelectors") or ():
        for other_name in sorted(by_name):
            other = by_name[other_name]
            if other_name == name:
                continue
            if not selector_matches(selector, other["metadata"].get("labels") or {}):
                continue
            for r in _aggregate(other, by_name, visiting):
                k = _rule_key(r)
                if k not in seen:
                    seen.add(k)
                    out.append(r)
    return out
