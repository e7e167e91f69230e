"""ClusterRole aggregation, as kcm's clusterrole-aggregation controller.

A ClusterRole with an ``aggregationRule`` owns no rules of its own: its ``rules`` are the union of
the rules of every ClusterRole its ``clusterRoleSelectors`` match (``admin``/``edit``/``view``
pick up CRD permissions this way, e.g. the chart's ``aggregate-to-*`` roles). The union is
computed by ``dask_kube_jobs.local._aggregation`` (``aggregated_rules``), which the API server's
authorizer uses too, so authorization and this controller agree; the controller writes it only
when it differs, and re-checks every aggregated role whenever any ClusterRole changes.
"""

from __future__ import annotations

import asyncio
import contextlib

from ...kube import CLUSTERROLES, Client, Informer, Invalid, NotFound, Obj, WorkQueue
from .._aggregation import aggregated_rules


class ClusterRoleAggregationController:
    name = "clusterrole-aggregation"

    def __init__(self, client: Client) -> None:
        self.client = client
        self.roles = Informer(client, CLUSTERROLES)
        self.queue = WorkQueue("clusterrole-aggregation")
        self.roles.on_change(self._on_change)

    def _on_change(self, kind: str, role: Obj, old: Obj | None) -> None:
        # Any role may be matched by any selector: re-check every aggregated role.
        for r in self.roles.items():
            if r.get("aggregationRule"):
                self.queue.add(r["metadata"]["name"])

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.roles.run())
            await self.roles.synced.wait()
            self._on_change("SYNC", {}, None)
            tg.create_task(self.queue.work(self.sync))

    async def sync(self, name: str) -> None:
        role = self.roles.get(None, name)
        if role is None or not role.get("aggregationRule"):
            return
        rules = aggregated_rules(role, self.roles.items())
        if rules == (role.get("rules") or []):
            return
        meta = role["metadata"]
        # 422: changed meanwhile (the test op failed); its event requeues it
        with contextlib.suppress(NotFound, Invalid):
            await self.client.patch(CLUSTERROLES, None, name, [
                {"op": "test", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "add", "path": "/rules", "value": rules}], type="json")
