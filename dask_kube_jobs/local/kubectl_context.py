"""The context ``local up`` adds to the kubeconfig kubectl uses, and ``local down`` removes.

kind, k3d and minikube make a new cluster usable by plain ``kubectl`` at once: they merge a
context for it into ``$KUBECONFIG`` (or ``~/.kube/config``) and make it current. ``local up``
does the same, with a cluster, user and context all named ``dask-kube-jobs-local``; like kind
(which always switches) and k3d (which switches unless told not to), it makes the context
current unless ``--no-switch-context``. ``local down`` takes the three entries out again and
gives back the context that was current before, so no kubectl is left pointing at a server
that no longer runs.

What ``up`` changed is recorded in the state directory (``kubectl-context.json``): ``down``
then finds the file even if ``$KUBECONFIG`` has changed since, and removes the entries only
while their server is still this control plane's (another one may have taken the name).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import kubeconfig as kc
from .state import StateDir

#: The name of the cluster, user and context ``local up`` adds.
CONTEXT = kc.CLUSTER_NAME


@dataclass(frozen=True)
class ContextChange:
    """Where the context was added or removed, and the current context afterwards."""

    kubeconfig: Path
    context: str
    current: str


def read_record(state: StateDir) -> dict[str, Any] | None:
    try:
        record = json.loads(state.kubectl_context.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _write_record(state: StateDir, record: dict[str, Any]) -> None:
    tmp = state.kubectl_context.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(state.kubectl_context)


def add_context(state: StateDir, target: Path, *, switch: bool) -> ContextChange:
    """Merge the admin identity of the running control plane into ``target`` as
    :data:`CONTEXT` (current if ``switch``), and record how to undo it."""
    admin = kc.read(state.admin_kubeconfig)
    target = target.expanduser()
    created = not target.exists()
    previous = kc.merge(target, admin, name=CONTEXT, switch=switch)
    old = read_record(state)
    if old and old.get("kubeconfig") == str(target) and previous == CONTEXT:
        # An `up` after one that was never taken down (a crash, a reboot): what to give back
        # is what the first one found.
        previous, created = old.get("previous") or "", bool(old.get("created"))
    _write_record(state, {"kubeconfig": str(target), "context": CONTEXT,
                          "server": kc.server_of(admin), "previous": previous,
                          "created": created})
    current = CONTEXT if switch or not previous else previous
    return ContextChange(target, CONTEXT, current)


def remove_context(state: StateDir) -> ContextChange | None:
    """Undo :func:`add_context`; None when there is nothing to undo or the entries are no
    longer this control plane's (then the file is left as it is)."""
    record = read_record(state)
    if record is None:
        return None
    target = Path(record["kubeconfig"])
    previous = record.get("previous") or ""
    current = kc.remove(target, name=record["context"], server=record["server"],
                        restore="" if previous == record["context"] else previous,
                        remove_empty=bool(record.get("created")))
    state.kubectl_context.unlink(missing_ok=True)
    return None if current is None else ContextChange(target, record["context"], current)
