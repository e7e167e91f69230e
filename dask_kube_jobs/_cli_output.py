"""How ``dask-kube-jobs status`` and ``list`` print a DaskJob: ``-o text|wide|json|yaml``;
and how ``profiles`` prints the DaskClusterProfiles.

``text`` is for people: ``status`` as ``Key: value`` rows, ``list`` as a kubectl-like table.
``wide`` adds what is usually noise (the cluster, the runner Pod, the reason, the conditions).
``json`` and ``yaml`` are for programs: ``status`` prints the job's ``.status`` (what the
command reports), ``list`` prints the DaskJobs as a ``List``, the shape ``kubectl get -o json``
prints. Pure functions of the objects, so the unit tests check every format without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml

from .contract.times import now, parse_time
from .jobs._status import JobStatus
from .profile_spec import ClusterProfile

FORMATS = ("text", "wide", "json", "yaml")


def age(stamp: str | None) -> str:
    """kubectl's short age: ``42s``, ``17m``, ``5h``; ``-`` when unknown."""
    t = parse_time(stamp)
    if t is None:
        return "-"
    s = int((now() - t).total_seconds())
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


def structured(value: Any, fmt: str) -> str:
    """``value`` as JSON (indented, keys sorted) or YAML, ending with a newline."""
    if fmt == "json":
        return json.dumps(value, indent=2, sort_keys=True) + "\n"
    return yaml.safe_dump(value, sort_keys=True)


def status_text(job: dict[str, Any], st: JobStatus, *, wide: bool = False,
                dashboard: str | None = None) -> str:
    """``Key: value`` rows (those with a value), then the log tail of a failed job."""
    meta = job.get("metadata") or {}
    rows: list[tuple[str, Any]] = [
        ("Name", f"{meta.get('namespace')}/{meta.get('name')}"), ("Phase", st.phase or "Pending"),
        ("Cluster", st.cluster_name), ("Runner", st.runner_pod),
        ("Attempts", st.attempts or None), ("Exit code", st.exit_code), ("Reason", st.reason),
        ("Message", st.message), ("Started", st.start_time), ("Finished", st.end_time),
        ("Dashboard", dashboard),
        ("Result", None if st.result is None else json.dumps(st.result))]
    if wide:
        rows += [("Created", meta.get("creationTimestamp")), ("UID", meta.get("uid")),
                 ("Failed runs", st.failed or None)]
        rows += [(f"Condition {c.get('type')}",
                  f"{c.get('status')}" + (f" ({c['reason']})" if c.get("reason") else "")
                  + (f": {c['message']}" if c.get("message") else ""))
                 for c in (st.raw.get("conditions") or []) if isinstance(c, dict)]
    width = max(11, *(len(key) + 1 for key, value in rows if value is not None))
    lines = [f"{key + ':':{width}} {value}" for key, value in rows if value is not None]
    if st.phase == "Failed" and st.log_tail:
        lines.append("Log tail:")
        lines += [f"  {line}" for line in st.log_tail.rstrip("\n").splitlines()]
    return "\n".join(lines) + "\n"


def table(rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart (as kubectl prints them)."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n"
                   for r in rows)


def jobs_table(jobs: Sequence[dict[str, Any]], *, all_namespaces: bool = False,
               wide: bool = False) -> str:
    """``list``'s table: NAME PHASE ATTEMPTS EXIT AGE (+ CLUSTER RUNNER REASON with ``wide``)."""
    head = (["NAMESPACE"] if all_namespaces else []) + ["NAME", "PHASE", "ATTEMPTS", "EXIT", "AGE"]
    if wide:
        head += ["CLUSTER", "RUNNER", "REASON"]
    rows = [head]
    for job in jobs:
        meta = job.get("metadata") or {}
        st = JobStatus.from_job(job)
        row = ([meta.get("namespace") or ""] if all_namespaces else []) + [
            meta.get("name") or "", st.phase or "Pending", str(st.attempts),
            "-" if st.exit_code is None else str(st.exit_code),
            age(meta.get("creationTimestamp"))]
        if wide:
            row += [st.cluster_name or "-", st.runner_pod or "-", st.reason or "-"]
        rows.append(row)
    return table(rows)


def jobs_list(jobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The jobs as ``kubectl get -o json`` prints several objects."""
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
            "items": list(jobs)}


def profiles_table(profiles: Sequence[ClusterProfile]) -> str:
    """``profiles``' table: NAME OPTIONS DESCRIPTION."""
    rows = [["NAME", "OPTIONS", "DESCRIPTION"]]
    rows += [[p.name, ",".join(o.name for o in p.options) or "-", p.description or "-"]
             for p in profiles]
    return table(rows)


def profile_text(profile: ClusterProfile) -> str:
    """``profiles NAME``: the profile, then a row per option with its default and what it
    accepts, in the words a refusal would use."""
    lines = [f"Name:        {profile.name}"]
    if profile.description:
        lines.append(f"Description: {profile.description}")
    if profile.locked:
        lines.append(f"Locked:      {', '.join(profile.locked)}")
    if not profile.options:
        return "\n".join(lines + ["Options:     none"]) + "\n"
    lines.append("Options:")
    rows = [["  NAME", "TARGET", "DEFAULT", "ALLOWED", "DESCRIPTION"]]
    rows += [[f"  {o.name}", o.target, "-" if o.default is None else str(o.default),
              o.allowed(), o.description or "-"] for o in profile.options]
    return "\n".join(lines) + "\n" + table(rows)
