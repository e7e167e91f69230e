"""The HTTP client toolkit (layer 2): the part of client-go that the job API, the operator and
the local control plane's controllers and kubelet need, built on kr8s's transport
(``Api.call_api``: kubeconfig, TLS, bearer token).

The controllers are clients of the API server exactly as kube-controller-manager is: they list
and watch over HTTP and write through the same REST paths ``kubectl`` uses. One concern a
module:

* ``client.py``: ``Client`` (``Client.connect``, the one way a kubeconfig becomes a client;
  raw JSON requests, a bounded number in flight, each with a deadline; Pod logs) and
  ``default_namespace``;
* ``errors.py``: the API's refusals as exceptions by status (``NotFound``, ``Conflict``...);
* ``watch.py``: the watch-line decoder and the list-then-watch iterator;
* ``informer.py``: ``Informer``, a cache kept current by list-then-watch;
* ``workqueue.py``: ``WorkQueue``, client-go's rate-limited queue;
* ``events.py``: ``EventRecorder``, core/v1 Events counted as client-go counts them;
* ``retry.py``: bounded exponential back-off with jitter, for transient errors only.

This module is the package's face: ``from dask_kube_jobs.kube import Client, PODS, NotFound``.
The resources and the pure helpers it hands on are defined in ``dask_kube_jobs.contract``.
"""

from ..contract.api_resources import (
    CLUSTERROLES,
    CONFIGMAPS,
    CRDS,
    DEPLOYMENTS,
    ENDPOINTS,
    ENDPOINTSLICES,
    EVENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    SERVICEACCOUNTS,
    SERVICES,
    Resource,
)
from ..contract.objects import Obj
from .client import (
    MAX_IN_FLIGHT,
    REQUEST_TIMEOUT,
    SERVICE_ACCOUNT,
    Client,
    Kubeconfig,
    default_namespace,
    kubeconfig_contexts,
    kubeconfig_origin,
)
from .errors import (
    TRANSIENT_ERRORS,
    AlreadyExists,
    APIError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    MethodNotAllowed,
    NotFound,
    Origin,
    RequestTimeout,
    ServerError,
    TooManyRequests,
    Unauthorized,
    api_error,
    namespace_terminating,
    origin_of,
)
from .events import EventRecorder
from .informer import Handler, Informer, run_informers, wait_synced
from .retry import NETWORK_ERRORS, Backoff, exponential_delay, is_transient, retrying
from .watch import ListThenWatch, Relisted, WatchEvent, decode_event
from .workqueue import WorkQueue

__all__ = [
    "CLUSTERROLES", "CONFIGMAPS", "CRDS", "DEPLOYMENTS", "ENDPOINTS", "ENDPOINTSLICES", "EVENTS", "LEASES",
    "MAX_IN_FLIGHT", "NAMESPACES", "NETWORK_ERRORS", "NODES", "PODS", "REPLICASETS",
    "REQUEST_TIMEOUT", "SERVICEACCOUNTS", "SERVICE_ACCOUNT", "SERVICES", "TRANSIENT_ERRORS", "APIError",
    "AlreadyExists", "Backoff", "BadRequest", "Client", "Conflict", "EventRecorder", "Forbidden",
    "Gone", "Handler", "Informer", "Invalid", "Kubeconfig", "ListThenWatch", "MethodNotAllowed", "NotFound",
    "Obj", "Origin", "Relisted", "RequestTimeout", "Resource", "ServerError", "TooManyRequests",
    "Unauthorized", "WatchEvent", "WorkQueue", "api_error", "decode_event", "default_namespace",
    "exponential_delay", "is_transient", "kubeconfig_contexts", "kubeconfig_origin", "namespace_terminating",
    "origin_of", "retrying", "run_informers",
    "wait_synced",
]
