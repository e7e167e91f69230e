"""The REST resources the package talks to, each defined once: enough to build their paths.

The four Dask kinds are the resource contract (group ``kubernetes.dask.org``, version ``v1``,
DESIGN.md); the built-in kinds are the ones the client library, the operator and the local
control plane's controllers and kubelet read and write.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .names import GROUP, VERSION


@dataclass(frozen=True)
class Resource:
    """One REST resource: enough to build its paths."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str] = field(default=frozenset(), compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def prefix(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None,
             sub: str | None = None) -> str:
        parts = [self.prefix]
        if self.namespaced and namespace:
            parts += ["namespaces", namespace]
        parts.append(self.plural)
        if name:
            parts.append(name)
            if sub:
                parts.append(sub)
        return "/".join(parts)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


DASKCLUSTERS = Resource(GROUP, VERSION, "daskclusters", "DaskCluster", True)
DASKWORKERGROUPS = Resource(GROUP, VERSION, "daskworkergroups", "DaskWorkerGroup", True)
DASKJOBS = Resource(GROUP, VERSION, "daskjobs", "DaskJob", True)
DASKAUTOSCALERS = Resource(GROUP, VERSION, "daskautoscalers", "DaskAutoscaler", True)
#: The four kinds of the contract, in the order their CRDs are best installed.
DASK_RESOURCES = (DASKCLUSTERS, DASKWORKERGROUPS, DASKJOBS, DASKAUTOSCALERS)
#: Cluster-scoped: the named cluster shapes an administrator offers (contract/profiles.py).
DASKCLUSTERPROFILES = Resource(GROUP, VERSION, "daskclusterprofiles", "DaskClusterProfile", False)

PODS = Resource("", "v1", "pods", "Pod", True)
NODES = Resource("", "v1", "nodes", "Node", False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", False)
SERVICES = Resource("", "v1", "services", "Service", True)
ENDPOINTS = Resource("", "v1", "endpoints", "Endpoints", True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
EVENTS = Resource("", "v1", "events", "Event", True)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", True)
SERVICEACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount", True)
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment", True)
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet", True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", True)
CLUSTERROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False)
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions",
                "CustomResourceDefinition", False)
