"""Why a scheduler or runner Pod is not doing its job, read from its status alone (pure).

Why a Pod cannot start at all (``start_problem``: unschedulable, image or config errors) is
read in the contract layer (``contract/pods.py``), because the Airflow provider's startup
diagnosis reads it too; this module adds what only the operator decides on.

The operator decides from these whether to wait, say why it waits, or end an attempt. Each
answer carries the kubelet's or the scheduler's own words (a waiting reason and message, an
exit code and a termination message, a PodScheduled condition), so a DaskJob's status says
what a user would otherwise dig out of ``kubectl describe pod``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

# IMAGE_ERRORS: operator/job.py reads it as diagnosis.IMAGE_ERRORS (it moved to the contract
# layer with start_problem; job.py is being edited elsewhere, so its import is left for then).
from ..contract.pods import IMAGE_ERRORS, Problem, pod_ready, start_problem  # noqa: F401
from ..contract.times import parse_time

Obj = dict[str, Any]

#: A scheduler container restarted this often without becoming ready is failing, not starting.
SCHEDULER_MAX_RESTARTS = 2
#: Seconds a running scheduler may stay unready before its attempt fails (per cluster:
#: ``spec.schedulerStartupTimeoutSeconds``).
SCHEDULER_STARTUP_TIMEOUT = 300


#: A scheduler Pod that ended, or crash-loops: the reason of both the job's failure and the
#: cluster's SchedulerReady condition.
REASON_SCHEDULER_FAILED = "SchedulerFailed"
#: How much of a log's last line a status message quotes.
LOG_END_CHARS = 300


def with_log_end(message: str, log: str | None) -> str:
    """``message`` plus the last non-blank line of ``log``: where a crashed Python program
    says why (a traceback's last line is the exception).

    >>> with_log_end("exited with code 1", "Traceback ...\\nImportError: no jupyterlab\\n\\n")
    'exited with code 1; its log ends: ImportError: no jupyterlab'
    """
    lines = [line.strip() for line in (log or "").splitlines() if line.strip()]
    if not lines:
        return message
    return f"{message}; its log ends: {lines[-1][-LOG_END_CHARS:]}"


def _age(stamp: str | None, now: dt.datetime) -> float:
    t = parse_time(stamp)
    return (now - t).total_seconds() if t else 0.0


def _termination(cs: Obj) -> Obj:
    state = cs.get("state") or {}
    return state.get("terminated") or (cs.get("lastState") or {}).get("terminated") or {}


def describe_exit(container: str, term: Obj) -> str:
    """``container "x" exited with code 1 (Error): <its termination message>``."""
    code = term.get("exitCode")
    text = f'container "{container}" exited with code {code}' if code is not None \
        else f'container "{container}" ended'
    if term.get("reason"):
        text += f" ({term['reason']})"
    if term.get("message"):
        text += f": {str(term['message']).strip()[:500]}"
    return text


def scheduler_problem(pod: Obj, *, now: dt.datetime, startup_timeout: float,
                      pending_timeout: float) -> Problem | None:
    """Why a scheduler Pod that is not ready will not become ready, or None while it may.

    * ended (phase Failed/Succeeded), or crash-looping (``SCHEDULER_MAX_RESTARTS`` restarts):
      ``SchedulerFailed`` with the container's exit code, reason and message;
    * running for ``startup_timeout`` seconds without passing readiness: ``SchedulerNotReady``;
    * unable to start (unschedulable, image or config error) for ``pending_timeout`` seconds:
      ``Scheduler<kubelet's reason>``.
    """
    if pod_ready(pod):
        return None
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    phase = status.get("phase")
    if phase in ("Failed", "Succeeded"):
        ended = [describe_exit(cs.get("name", "?"), _termination(cs)) for cs in statuses
                 if _termination(cs)]
        detail = "; ".join(ended) or status.get("message") or f"phase {phase}"
        return Problem(REASON_SCHEDULER_FAILED, f"the scheduler Pod ended: {detail}")
    for cs in statuses:
        restarts = int(cs.get("restartCount") or 0)
        if restarts >= SCHEDULER_MAX_RESTARTS and not cs.get("ready"):
            last = describe_exit(cs.get("name", "?"), _termination(cs))
            return Problem(REASON_SCHEDULER_FAILED,
                           f"the scheduler keeps crashing ({restarts} restarts): last {last}",
                           previous_log=True)
    problem = start_problem(pod)
    if problem is not None:
        if _age((pod.get("metadata") or {}).get("creationTimestamp"), now) > pending_timeout:
            return Problem(f"Scheduler{problem.reason}",
                           f"the scheduler Pod cannot start: {problem.message}")
        return None
    started = [((cs.get("state") or {}).get("running") or {}).get("startedAt") for cs in statuses]
    if statuses and all(started):
        running_for = min(_age(s, now) for s in started)
        if running_for > startup_timeout:
            return Problem("SchedulerNotReady",
                           f"the scheduler has run for more than {startup_timeout:g}s "
                           "(schedulerStartupTimeoutSeconds) without passing its readiness "
                           "probe; is it listening on the port the probe checks?")
    return None


def scheduler_problem_in(pod: Obj, *, now: dt.datetime, startup_timeout: float,
                         pending_timeout: float) -> float | None:
    """Seconds until ``scheduler_problem`` may answer differently through time alone (a pending
    or startup timeout running out), or None when only a change of the Pod can change it.

    A daemon waiting for a scheduler sleeps this long instead of polling: everything else that
    ends the wait (ready, ended, restarted) arrives as a watch event of the Pod."""
    if pod_ready(pod):
        return None
    status = pod.get("status") or {}
    if status.get("phase") in ("Failed", "Succeeded"):
        return None
    if start_problem(pod) is not None:
        return max(0.0, pending_timeout - _age((pod.get("metadata") or {}).get("creationTimestamp"), now))
    statuses = status.get("containerStatuses") or []
    started = [((cs.get("state") or {}).get("running") or {}).get("startedAt") for cs in statuses]
    if statuses and all(started):
        return max(0.0, startup_timeout - min(_age(s, now) for s in started))
    return None


def workers_problem(pods: list[Obj]) -> tuple[int, Problem] | None:
    """Why live worker Pods are not running: (how many have a start problem, the first
    problem), or None. Ready workers do not hide the others: a group half-scheduled says so."""
    found = [(p, problem) for p in pods
             if not (p.get("metadata") or {}).get("deletionTimestamp")
             and (p.get("status") or {}).get("phase", "Pending") == "Pending"
             and (problem := start_problem(p)) is not None]
    if not found:
        return None
    return len(found), found[0][1]


def workers_note(pods: list[Obj]) -> str | None:
    """A line for ``status.message`` while worker Pods cannot start, or None."""
    found = workers_problem(pods)
    if found is None:
        return None
    count, problem = found
    return (f"waiting: {count} worker Pod(s) cannot start yet: {problem.reason}: "
            f"{problem.message}")


def waiting_note(pod: Obj, what: str) -> str | None:
    """A line for ``status.message`` while a Pod cannot start yet, or None."""
    problem = start_problem(pod)
    if problem is None:
        return None
    return f"waiting: the {what} Pod cannot start yet: {problem.reason}: {problem.message}"
