"""Shared fixtures: the local control plane and real kubectl (opt-in, never autouse)."""

import os

# Short back-offs so retry paths run in seconds; inherited by the control plane's components.
os.environ.setdefault("DKJ_OPERATOR_BACKOFF_BASE", "1")
os.environ.setdefault("DKJ_OPERATOR_PENDING_TIMEOUT", "20")
os.environ.setdefault("DKJ_KUBELET_BACKOFF_BASE", "1")
os.environ.setdefault("DKJ_SUPERVISOR_MAX_BACKOFF", "2")
# The session operator's limits: absent ConfigMap = no limits; tests/integration/operator/
# test_limits.py writes per-namespace limits into it and deletes it afterwards.
os.environ.setdefault("DKJ_LIMITS_CONFIGMAP", "default/dask-operator-limits")

from dask_kube_jobs.local.testing import kubectl, local_control_plane, namespace  # noqa: E402,F401
