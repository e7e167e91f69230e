"""An operator upgraded before its CRDs: on a cluster without the DaskClusterProfile CRD the
operator's profile source says so once in its log, answers "not found" (so an object naming a
profile waits as ProfileNotFound) and does not crash; once the CRD and the profile are
installed it finds the profile and wakes whoever waited for it.

It needs an API server whose CRDs it may remove, with no operator watching: this suite's bare
control plane (no kubelet, no operator), rather than one more control plane of its own. It
puts the CRD back before it ends."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dask_kube_jobs import crds
from dask_kube_jobs.contract.api_resources import CRDS, DASKCLUSTERPROFILES
from dask_kube_jobs.kube import Client
from dask_kube_jobs.local.launcher import LocalControlPlane
from dask_kube_jobs.operator.profile_admission import ProfileSource

pytestmark = pytest.mark.timeout(60)


async def test_a_cluster_without_the_profile_crd_is_told_apart_and_caught_up_with(
        plane: LocalControlPlane, caplog: pytest.LogCaptureFixture) -> None:
    client = await Client.connect(plane.kubeconfig)
    woken: list[tuple[str, str, str]] = []
    source = ProfileSource(client, lambda *key: woken.append(key))
    try:
        # As on an old cluster. No controllers run here to clean up after a CRD, so its
        # clean-up finalizer is removed by hand (there are no profiles to clean up).
        await client.delete(CRDS, None, f"{DASKCLUSTERPROFILES}")
        await client.patch(CRDS, None, f"{DASKCLUSTERPROFILES}", {"metadata": {"finalizers": None}})
        for _ in range(100):
            if await client.get(CRDS, None, f"{DASKCLUSTERPROFILES}") is None:
                break
            await asyncio.sleep(0.1)
        with caplog.at_level(logging.WARNING, logger="dask_kube_jobs.operator"):
            task = await source.start()
        assert any("DaskClusterProfile CRD" in r.getMessage() and "not installed" in r.getMessage()
                   for r in caplog.records), caplog.text
        assert await source.get("standard") is None
        source.wait_for("standard", ("team", "DaskCluster", "waiting"))
        assert not task.done()  # the informer keeps trying, it does not crash

        await client.create(CRDS, None, crds.load_crd("DaskClusterProfile"))
        profile = {"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskClusterProfile",
                   "metadata": {"name": "standard"}, "spec": {"description": "d"}}
        # (the CRD is back as `local up` installs it; the profile is deleted below)
        for _ in range(100):  # the API server serves the new kind within moments
            try:
                await client.create(DASKCLUSTERPROFILES, None, profile)
                break
            except Exception:
                await asyncio.sleep(0.1)
        for _ in range(300):  # the informer re-lists within its back-off (at most 10 s)
            if woken:
                break
            await asyncio.sleep(0.1)
        assert woken == [("team", "DaskCluster", "waiting")]
        found = await source.get("standard")
        assert found is not None and found["spec"]["description"] == "d"
        task.cancel()
        await client.delete(DASKCLUSTERPROFILES, None, "standard")
    finally:
        await client.close()
