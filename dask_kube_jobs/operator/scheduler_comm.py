"""Talking to a running Dask scheduler: who is busy, whom to retire, what adaptive wants.

The operator reaches the scheduler at its Pod's IP (``status.podIP``), which is routable from
the controller on a real cluster and on the local control plane alike, rather than through the
Service's DNS name, which only resolves inside the cluster. Calls go through ``distributed``'s
RPC with short timeouts; every failure surfaces as ``SchedulerUnreachable`` so that callers can
say so (an Event and a condition) instead of guessing -- in particular, scale-down never falls
back to deleting workers at random.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from ..contract import names

RPC_TIMEOUT = 10.0


class SchedulerUnreachable(RuntimeError):
    """The scheduler could not be asked; what was wanted did not happen."""


@dataclass(frozen=True)
class WorkerInfo:
    address: str
    name: str
    executing: int
    in_memory: int
    memory: int


def scheduler_rpc_address(pod: dict[str, Any]) -> str | None:
    """``tcp://<podIP>:<comm port>`` of a scheduler Pod, or None before it has an IP."""
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        return None
    port = names.SCHEDULER_PORT
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") in ("tcp-comm", "comm") and p.get("containerPort"):
                port = int(p["containerPort"])
    return f"tcp://{ip}:{port}"


async def _call(address: str, method: str, **kwargs: Any) -> Any:
    from distributed.core import rpc

    try:
        async with rpc(address, timeout=RPC_TIMEOUT) as scheduler:
            return await asyncio.wait_for(getattr(scheduler, method)(**kwargs), RPC_TIMEOUT * 3)
    except (TimeoutError, OSError) as exc:
        raise SchedulerUnreachable(f"could not reach the Dask scheduler at {address}: {exc}") from exc
    except Exception as exc:  # version skew between operator and scheduler shows up here
        raise SchedulerUnreachable(f"the Dask scheduler at {address} refused {method}: {exc}") from exc


async def workers(address: str) -> list[WorkerInfo]:
    identity = await _call(address, "identity")
    out = []
    for addr, info in (identity.get("workers") or {}).items():
        metrics = info.get("metrics") or {}
        out.append(WorkerInfo(
            address=addr, name=str(info.get("name", addr)),
            executing=int(metrics.get("task_counts", {}).get("executing", 0)
                          if isinstance(metrics.get("task_counts"), dict)
                          else metrics.get("executing", 0) or 0),
            in_memory=int(metrics.get("in_memory", 0) or 0),
            memory=int(metrics.get("memory", 0) or 0),
        ))
    return out


def choose_to_retire(candidates: list[WorkerInfo], n: int) -> list[WorkerInfo]:
    """The ``n`` least busy workers: idle first, then least data held (least to move)."""
    return sorted(candidates, key=lambda w: (w.executing, w.in_memory, w.memory, w.name))[:n]


async def retire_workers(address: str, worker_names: list[str]) -> list[str]:
    """Retire workers by name, letting the scheduler move their data; returns those retired."""
    if not worker_names:
        return []
    result = await _call(address, "retire_workers", names=worker_names, close_workers=True,
                         remove=True)
    return [str(info.get("name", addr)) for addr, info in (result or {}).items()]


async def adaptive_target(address: str) -> int:
    return int(await _call(address, "adaptive_target"))


async def idle_since(address: str) -> float | None:
    """When the scheduler last became idle (epoch seconds), or None while it works."""
    value = await _call(address, "check_idle")
    return float(value) if value else None
