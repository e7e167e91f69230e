"""Fixtures for the job API tests: the session's local control plane, one namespace per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from dask_kube_jobs.jobs._client import close_clients
from dask_kube_jobs.local.launcher import LocalControlPlane


@pytest.fixture
def kubeconfig(local_control_plane: LocalControlPlane) -> str:
    return local_control_plane.kubeconfig


@pytest.fixture
async def aclients() -> AsyncIterator[None]:
    """Close the clients an async test's event loop opened, before pytest closes the loop."""
    yield
    await close_clients()
