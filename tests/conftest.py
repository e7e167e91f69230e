"""Shared fixtures: the local control plane and real kubectl (opt-in, never autouse)."""

from dask_kube_jobs.local.testing import kubectl, local_control_plane, namespace  # noqa: F401
