"""Upstream dask-kubernetes' client driven against this project's operator (the compat CI leg).

People migrating from the upstream Dask Kubernetes Operator keep their client code; these tests
run that code, unmodified, against our operator on the local control plane. They need
``dask-kubernetes`` installed beside this project (the ``compat`` extra pins the version);
plain ``python -m pytest`` leaves this directory out (``norecursedirs`` in pyproject.toml), and
the third leg of ``.ci/run`` runs exactly this directory. There a missing dask-kubernetes is an
error, never a skip: the leg exists to run these tests.
"""

from __future__ import annotations

from typing import Any

import pytest

try:
    import dask_kubernetes  # noqa: F401
except ImportError as exc:
    raise pytest.UsageError(
        "tests/compat drives upstream dask-kubernetes' client, which is not installed: "
        "pip install -e '.[compat]' (the compat leg of .ci/run does)") from exc


@pytest.fixture(autouse=True)
def upstream_kubeconfig(local_control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point kr8s (upstream's client library) at the local control plane through
    ``$KUBECONFIG``, as a user's shell would: upstream's port-forward threads each build their
    own kr8s API object, and only the environment reaches them."""
    monkeypatch.setenv("KUBECONFIG", local_control_plane.kubeconfig)
    return local_control_plane.kubeconfig

