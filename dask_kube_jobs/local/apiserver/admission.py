"""Admission refusals the HTTP layer waits out instead of answering at once.

kube-apiserver's ServiceAccount admission looks a namespace's ``default`` ServiceAccount up
again for a while before it refuses a Pod, because the controller manager creates that account
just after the namespace. ``APICore`` is synchronous and refuses with
``errors.AdmissionRefused`` (saying how often to try in all); this is the asynchronous retry
around it, so the event loop stays free for the controller that lifts the refusal.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from . import errors
from .core import APICore
from .registry import ResourceType


async def create_admitted(core: APICore, rtype: ResourceType, version: str, namespace: str | None,
                 body: Any, **options: Any) -> dict[str, Any]:
    """``core.create``, tried again every 100-200 ms while its refusal may still be lifted."""
    attempt = 0
    while True:
        try:
            return core.create(rtype, version, namespace, body, **options)
        except errors.AdmissionRefused as exc:
            attempt += 1
            if attempt >= exc.attempts:
                raise
            await asyncio.sleep(random.uniform(0.1, 0.2))
