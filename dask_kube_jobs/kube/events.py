"""``EventRecorder``: writes core/v1 Events for one component.

Like client-go's recorder it bumps ``count`` on a repeated event rather than writing a new one,
so periodic retries do not flood the namespace; and Events are best effort: a failure to write
one is logged, never raised into a reconcile.
"""

from __future__ import annotations

import contextlib
import logging
import secrets

import httpx
import kr8s

from ..contract.api_resources import EVENTS
from ..contract.objects import Obj
from ..contract.times import fmt_time
from .client import Client
from .errors import APIError, NotFound

log = logging.getLogger("dask_kube_jobs.local.controllers")


class EventRecorder:
    """Writes core/v1 Events for one component, counting repeats as client-go's recorder does."""

    def __init__(self, client: Client, component: str) -> None:
        self.client = client
        self.component = component
        self._seen: dict[tuple[str, ...], tuple[str, str, int]] = {}

    async def record(self, obj: Obj, type: str, reason: str, message: str, *,
                     action: str | None = None) -> None:
        meta = obj.get("metadata") or {}
        namespace = meta.get("namespace") or "default"
        key = (meta.get("uid", ""), type, reason, message)
        stamp = fmt_time()
        try:
            seen = self._seen.get(key)
            if seen is not None:
                ns, name, count = seen
                with contextlib.suppress(NotFound):  # expired or deleted: write a new one
                    await self.client.patch(EVENTS, ns, name, {"count": count + 1,
                                                               "lastTimestamp": stamp})
                    self._seen[key] = (ns, name, count + 1)
                    return
            name = f"{meta.get('name', 'unknown')}.{secrets.token_hex(8)}"
            event = {
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {k: v for k, v in {
                    "kind": obj.get("kind"), "apiVersion": obj.get("apiVersion"),
                    "namespace": meta.get("namespace"), "name": meta.get("name"),
                    "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion"),
                }.items() if v},
                "reason": reason, "message": message, "type": type,
                "source": {"component": self.component},
                "reportingComponent": self.component, "reportingInstance": self.component,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            }
            if action:
                event["action"] = action
            await self.client.create(EVENTS, namespace, event)
            if len(self._seen) > 5000:
                self._seen.clear()
            self._seen[key] = (namespace, name, 1)
        except (APIError, httpx.HTTPError, kr8s.APITimeoutError) as exc:
            # Events are best effort, as in client-go: never fail a reconcile over one.
            log.debug("could not record event %s for %s: %s", reason, meta.get("name"), exc)
