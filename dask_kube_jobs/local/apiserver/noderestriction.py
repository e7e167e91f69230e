"""NodeRestriction admission: a node may change only its own Node and the Pods bound to it.

The Node authorizer (``nodeauthz.py``) lets every node write Nodes, ``pods/status`` and Pod
deletions, because authorization sees only names; this admission step, which sees the objects,
narrows each write to the node's own: its Node object (create, update, patch, delete), status
and deletion of Pods whose ``spec.nodeName`` is the node, evictions of those Pods, tokens bound
to those Pods, and its own Lease. A node may create and delete only mirror Pods (annotated
``kubernetes.io/config.mirror``), which this control plane never needs. The refusals are worded
as kube-apiserver's admission plugin words them (``<resource> "<name>" is forbidden: ...``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import APIError
from .nodeauthz import node_name_of
from .rbac import UserInfo

MIRROR = "kubernetes.io/config.mirror"

Lookup = Callable[[str, str | None, str], dict[str, Any] | None]


def _forbidden(resource: str, group: str, name: str | None, message: str) -> APIError:
    what = f"{resource}.{group}" if group else resource
    return APIError(403, "Forbidden", f'{what} "{name or ""}" is forbidden: {message}',
                    kind=resource, name=name, group=group or None)


def admit(user: UserInfo, verb: str, group: str, resource: str, subresource: str,
          namespace: str | None, name: str | None, body: Any, lookup: Lookup) -> None:
    """Raise a 403 when a node asks to change what is not its own; do nothing for others.

    ``verb`` is the RBAC verb (create, update, patch, delete); ``body`` the request's object
    when the verb is create (None otherwise); ``lookup(resource, namespace, name)`` reads a
    stored core object.
    """
    node = node_name_of(user)
    if node is None or verb not in ("create", "update", "patch", "delete"):
        return
    body = body if isinstance(body, dict) else {}
    if group == "" and resource == "nodes":
        target = name if verb != "create" else (body.get("metadata") or {}).get("name")
        if target != node:
            raise _forbidden("nodes", "", target,
                             f'node "{node}" is not allowed to modify node "{target}"')
    elif group == "" and resource == "pods":
        _admit_pod(node, verb, subresource, namespace, name, body, lookup)
    elif group == "" and resource == "serviceaccounts" and subresource == "token":
        ref = (body.get("spec") or {}).get("boundObjectRef") or {}
        if ref.get("kind") != "Pod":
            raise _forbidden("serviceaccounts", "", name,
                             "node requested token not bound to a pod")
        pod = lookup("pods", namespace, ref.get("name") or "")
        if pod is None or (ref.get("uid") and pod["metadata"].get("uid") != ref.get("uid")):
            raise _forbidden("serviceaccounts", "", name,
                             "node requested token bound to a pod that does not exist")
        if (pod.get("spec") or {}).get("nodeName") != node:
            raise _forbidden("serviceaccounts", "", name,
                             "node requested token bound to a pod scheduled on a different node")
    elif group == "coordination.k8s.io" and resource == "leases" and verb == "create":
        if (body.get("metadata") or {}).get("name") != node:
            raise _forbidden("leases", group, (body.get("metadata") or {}).get("name"),
                             "can only access node lease with the same name as the requesting "
                             "node")


def _admit_pod(node: str, verb: str, subresource: str, namespace: str | None, name: str | None,
               body: dict[str, Any], lookup: Lookup) -> None:
    if subresource == "status":
        pod = lookup("pods", namespace, name or "")
        if pod is not None and (pod.get("spec") or {}).get("nodeName") != node:
            raise _forbidden("pods", "", name, f'node "{node}" can only update pod status for '
                             "pods with spec.nodeName set to itself")
        return
    if subresource == "eviction":
        pod = lookup("pods", namespace, name or "")
        if pod is not None and (pod.get("spec") or {}).get("nodeName") != node:
            raise _forbidden("pods", "", name, f'node "{node}" can only evict pods with '
                             "spec.nodeName set to itself")
        return
    if subresource:
        raise _forbidden("pods", "", name, f'unexpected operation "{verb}", node "{node}" can '
                         "only update pod status")
    if verb == "create":
        meta = body.get("metadata") or {}
        if MIRROR not in (meta.get("annotations") or {}):
            raise _forbidden("pods", "", meta.get("name"), f'pod does not have "{MIRROR}" '
                             f'annotation, node "{node}" can only create mirror pods')
        if (body.get("spec") or {}).get("nodeName") != node:
            raise _forbidden("pods", "", meta.get("name"), f'node "{node}" can only create '
                             "pods with spec.nodeName set to itself")
        return
    if verb == "delete":
        pod = lookup("pods", namespace, name or "")
        if pod is not None and (pod.get("spec") or {}).get("nodeName") != node:
            raise _forbidden("pods", "", name, f'node "{node}" can only delete pods with '
                             "spec.nodeName set to itself")
        return
    raise _forbidden("pods", "", name, f'unexpected operation "{verb}", node "{node}" can only '
                     "create and delete mirror pods")
