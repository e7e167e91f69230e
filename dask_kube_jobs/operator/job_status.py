"""A DaskJob's status as one reconcile pass builds it: phases that only move forward, the
columns ``kubectl get daskjob`` prints derived from what is written, and one patch per pass
holding only what changed. Apart from the reconciler so its rules can be read (and tested)
without the job's orchestration around them."""

from __future__ import annotations

from typing import Any

from ..contract.times import human_duration, parse_time

Obj = dict[str, Any]

#: Phases in the order a job moves through them; a write never moves one backwards.
ORDER = {"": 0, "JobCreated": 1, "ClusterCreated": 2, "Running": 3, "Successful": 4, "Failed": 4}


def printed_fields(status: Obj, fields: Obj) -> Obj:
    """The COMPLETIONS and DURATION that ``kubectl get daskjob`` prints, as for a batch/v1 Job
    (whose printer computes them; a CRD's columns can only show fields), derived from the phase
    and end time being written so that no status write can leave them behind."""
    out: Obj = {}
    phase = fields.get("jobStatus")
    if phase:
        out["completions"] = "1/1" if phase == "Successful" else "0/1"
    start = parse_time(fields.get("startTime") or status.get("startTime"))
    end = parse_time(fields.get("endTime"))
    if start and end:
        out["duration"] = human_duration((end - start).total_seconds())
    return out


class StatusDraft:
    """A job's status as one pass decides it, over the status it was delivered with.

    ``set`` merges fields (a phase never moves backwards); ``take`` hands out only the fields
    that differ from what the server holds, once, so a pass that decides nothing new writes
    nothing and one that decides many things writes them in one patch."""

    def __init__(self, status: Obj | None) -> None:
        self.sent: Obj = dict(status or {})  # what the server holds, as far as this pass knows
        self.current: Obj = dict(status or {})

    def set(self, **fields: Any) -> None:
        phase = fields.get("jobStatus")
        if phase and ORDER[phase] < ORDER.get(self.current.get("jobStatus") or "", 0):
            fields.pop("jobStatus")
        fields.update(printed_fields(self.current, fields))
        self.current.update(fields)

    def take(self) -> Obj:
        changed = {k: v for k, v in self.current.items() if self.sent.get(k) != v}
        self.sent.update(changed)
        return changed
