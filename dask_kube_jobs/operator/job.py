"""DaskJob: a cluster and, once its scheduler Pod and Service exist, a runner Pod that waits
for the scheduler (docs/operator-failures.md); retries within limits; a final status; teardown.

The job's whole state is in the cluster and in ``status`` (current attempt, its runner's name,
the phase), so any pass -- repeated, or the first one of a new operator process after the old
one was killed mid-way -- derives the next step from what it observes:

* runner names are a function of the job's uid and the attempt number, so creating the runner
  of an attempt twice is a harmless 409, never a second runner;
* a terminal status is written *before* the cluster is torn down, and teardown treats
  NotFound as done, so a job can never be left Running after its cluster is gone;
* phases only move forward (JobCreated < ClusterCreated < Running < Successful | Failed).

Retries follow batch/v1 Job: ``backoffLimit`` failed attempts are retried with a delay of 10 s
doubling up to 6 min, ``activeDeadlineSeconds`` bounds the whole run, ``ttlSecondsAfterFinished``
deletes the finished job, ``suspend`` holds it (tearing down what runs). A runner that cannot
start (unschedulable, image errors) fails its attempt after a grace period instead of waiting
for ever, with the scheduler's or kubelet's own words in ``status.message``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from typing import Any

from ..contract import conditions, names
from ..contract.api_resources import DASKCLUSTERS, DASKJOBS
from ..contract.pods import pod_ready
from ..contract.times import fmt_time, now, parse_time
from ..kube import PODS, Conflict, NotFound, exponential_delay
from . import builders, cluster_ref, diagnosis, limits, pod_policy, profile_admission, profiles
from .cluster import create_if_missing, startup_timeout
from .failures import REASON_POLICY, ChildRefused
from .job_status import ORDER, StatusDraft
from .runtime import SETTLED, Runtime

Obj = dict[str, Any]

#: The next pass of a job waiting on something with no event of its own (the cluster's
#: scheduler Pod to appear, an expectation to be met), and after it deletes itself.
RESYNC = 10.0
#: Extra seconds the runner's first connection waits beyond the operator's own verdict on the
#: scheduler, so a runner never gives up before the operator has said why (docs/operator-failures.md).
CONNECT_MARGIN = 60.0
TERMINAL = ("Successful", "Failed")


#: Why a job may wait before admission (cleared from status once it is admitted).
_WAIT_REASONS = (limits.REASON_EXCEEDED, profiles.REASON_NOT_FOUND)


def backoff_base() -> float:
    return float(os.environ.get("DKJ_OPERATOR_BACKOFF_BASE", "10"))


def pending_timeout() -> float:
    # Ten minutes: long enough for a cluster autoscaler to add a node for an Unschedulable Pod,
    # short enough that a job whose Pods can never start says so the same morning.
    return float(os.environ.get("DKJ_OPERATOR_PENDING_TIMEOUT", "600"))


def retry_delay(failures: int) -> float:
    """batch/v1 Job's back-off: 10 s after the first failure, doubling, at most 6 minutes."""
    return exponential_delay(failures - 1, first=backoff_base(), most=360.0)


def _seconds_since(stamp: str | None) -> float:
    t = parse_time(stamp)
    return (now() - t).total_seconds() if t else 0.0


def _terminated(pod: Obj) -> Obj:
    """The terminated state of the runner's main container (the first one)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    first = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name")
    for cs in statuses:
        if cs.get("name") == first:
            return (cs.get("state") or {}).get("terminated") or \
                (cs.get("lastState") or {}).get("terminated") or {}
    return {}


def _started(status: Obj) -> bool:
    """Past admission already: it has made its cluster (an operator from before limits)."""
    return ORDER.get(status.get("jobStatus") or "", 0) >= ORDER["ClusterCreated"]


def _holds_place(job: Obj) -> bool:
    """An admitted job that has not finished counts against maxJobsPerNamespace."""
    status = job.get("status") or {}
    return not job["metadata"].get("deletionTimestamp") and \
        status.get("jobStatus") not in TERMINAL and not (job.get("spec") or {}).get("suspend") and \
        limits.is_admitted(status, started=_started(status))


def _waiting(status: Obj) -> bool:
    """Its message is a start problem said while it happens (``diagnosis.waiting_note``)."""
    return str(status.get("message") or "").startswith("waiting: ")


def _decode_result(message: str | None) -> Any:
    if not message:
        return None
    try:
        return json.loads(message)
    except ValueError:
        return message


class JobReconciler:
    """One pass over one DaskJob (a fresh object per pass: no state survives between passes).

    Status fields and Events decided during a pass are sent together: one status patch and
    then the Events, at the end of the pass and before anything is deleted (so a terminal
    status is on the server before the cluster goes, and an Event is never said for a status
    that was not written). A pass that fails part-way still sends what it decided until then.
    """

    def __init__(self, rt: Runtime, job: Obj) -> None:
        self.rt = rt
        self.job = job
        self.meta = job["metadata"]
        self.ns, self.name = self.meta["namespace"], self.meta["name"]
        self.spec = job.get("spec") or {}
        self.draft = StatusDraft(job.get("status"))
        self.status: Obj = self.draft.current  # the status as this pass has decided it so far
        self.cluster_name = builders.cluster_of_job(job)
        self.unsaid: list[tuple[str, str, bool]] = []  # Events waiting for that status

    async def write(self, **fields: Any) -> None:
        """Merge ``fields`` into status (sent by ``flush``); a phase never moves backwards."""
        self.draft.set(**fields)

    def say(self, reason: str, message: str, *, warning: bool = False) -> None:
        """An Event about the job, said once the status decided before it is written."""
        self.unsaid.append((reason, message, warning))

    async def flush(self) -> None:
        """Send the status decided so far (one patch, only if something changed), then its Events."""
        changed = self.draft.take()
        if changed:
            changed["observedGeneration"] = self.meta.get("generation")
            await self.rt.patch_status(DASKJOBS, self.job, changed)
        said, self.unsaid = self.unsaid, []
        for reason, message, warning in said:
            await self.rt.event(self.job, reason, message, warning=warning)

    async def delete(self, res: Any, name: str, **options: Any) -> bool:
        """Delete a child (or the job), after writing what this pass has decided."""
        await self.flush()
        return await self.rt.client.delete(res, self.ns, name, **options)

    # -- the pass ----------------------------------------------------------------------------
    async def reconcile(self) -> float:
        try:
            try:
                delay = await self.reconcile_once()
            except ChildRefused as refused:
                # Retrying cannot help: end the job with the API server's words (and tear down
                # what was made for it, as for any failed job).
                delay = await self.fail(refused.reason, refused.message)
        except Exception:
            await self.flush()  # what was decided before the error is true: write it
            raise
        await self.flush()
        return self.within_deadline(delay)

    def within_deadline(self, delay: float) -> float:
        """``delay``, or less when ``activeDeadlineSeconds`` runs out sooner: the one promise
        of a running job that no watch event announces."""
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is None or self.status.get("jobStatus") in TERMINAL or \
                not self.status.get("startTime"):
            return delay
        left = int(deadline) - _seconds_since(self.status.get("startTime"))
        return min(delay, max(0.5, left + 0.5))

    async def reconcile_once(self) -> float:
        if self.meta.get("deletionTimestamp"):
            return SETTLED  # its daemon is stopped as it goes
        phase = self.status.get("jobStatus") or ""
        if phase in TERMINAL:
            return await self.finished()
        problem = names.cluster_name_problem(self.cluster_name)
        if problem:
            return await self.fail("InvalidName", f"{problem}; nothing was created")
        if not phase:
            # No Event yet: "accepted" is said on admission (admit), after the limits were checked.
            await self.write(jobStatus="JobCreated")
        if self.spec.get("suspend"):
            return await self.suspended()
        if self.status.get("conditions") and conditions.is_true(self.status.get("conditions"), "Suspended"):
            await self.write(conditions=conditions.put_condition(self.status.get("conditions"), "Suspended", False,
                                                       "Resumed", "the job was resumed"))
            self.say("Resumed", "the job was resumed")
        if not limits.is_admitted(self.status, started=_started(self.status)):
            refused = await self.admit()
            if refused is not None:
                return refused
        if not self.status.get("startTime"):
            await self.write(startTime=fmt_time())
        deadline = self.spec.get("activeDeadlineSeconds")
        if deadline is not None and _seconds_since(self.status.get("startTime")) >= int(deadline):
            return await self.fail("DeadlineExceeded",
                                   f"the job ran longer than activeDeadlineSeconds ({deadline}s)")
        if cluster_ref.ref_name(self.spec):  # an existing cluster: waited for, never made
            return await cluster_ref.reconcile(self)

        scheduler = self.rt.pod(self.ns, names.scheduler_name(self.cluster_name))
        if not _started(self.status) or not self.status.get("clusterName"):
            # The first time, or after a suspension (which deleted the cluster and cleared
            # clusterName): make the cluster.
            body = builders.job_cluster(self.job)
            pin = self.status.get("profile")
            if pin:
                # The cluster resolves against this pin (profile_admission), so the job's
                # status must be written before the cluster exists.
                body["spec"]["profile"] = {"name": pin["name"], "options": pin.get("options") or {}}
                await self.flush()
            if await create_if_missing(self.rt, DASKCLUSTERS, body):
                self.say("ClusterCreated", f"created DaskCluster {self.cluster_name}")
        elif scheduler is None or scheduler["metadata"].get("deletionTimestamp") or \
                (scheduler.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            # Its live scheduler Pod (which the cluster owns) proves the cluster exists;
            # without one, ask (a scheduler ends when its cluster is deleted). A cluster
            # deleted under a running job is not silently made again: the runner lost its
            # scheduler, so the job ends and says who removed what.
            if not await self.has_live_cluster():
                return await self.cluster_deleted()
        await self.write(jobStatus="ClusterCreated", clusterName=self.cluster_name,
                         activeCluster=self.cluster_name)
        refused = self.rt.refused_clusters.get((self.ns, self.cluster_name))
        if refused is not None:  # a child of its cluster can never be made (cluster.py)
            return await self.fail(refused.get("reason") or "InvalidSpec",
                                   f"DaskCluster {self.cluster_name}: {refused.get('message')}",
                                   stop_runner=True)

        if scheduler is None:
            return SETTLED  # its scheduler Pod's events wake this job
        if pod_ready(scheduler):
            return await self.drive_runner()
        problem = diagnosis.scheduler_problem(
            scheduler, now=now(), startup_timeout=startup_timeout(self.spec.get("cluster")),
            pending_timeout=pending_timeout())
        if problem is not None:
            return await self.scheduler_failed(scheduler, problem)
        if not self.status.get("jobRunnerPodName") and \
                self.rt.service(self.ns, names.scheduler_name(self.cluster_name)) is None:
            return SETTLED  # the Service comes right after the Pod; the Pod's events wake this job
        # The runner starts while the scheduler does: its first Client() waits for the
        # scheduler (runner_connect_timeout), and its failure meanwhile is not judged alone.
        delay = await self.drive_runner(scheduler=scheduler)
        left = diagnosis.scheduler_problem_in(
            scheduler, now=now(), startup_timeout=startup_timeout(self.spec.get("cluster")),
            pending_timeout=pending_timeout())
        return delay if left is None else min(delay, left + 0.5)

    def runner_connect_timeout(self) -> float:
        """How long the runner's first connection waits for its scheduler: as long as the
        operator may take to give up on that scheduler (pending, then startup), and a margin."""
        return pending_timeout() + startup_timeout(self.spec.get("cluster")) + CONNECT_MARGIN

    async def has_live_cluster(self) -> bool:
        """Its DaskCluster exists, is this job's, and is not being deleted."""
        cluster = await self.rt.read(DASKCLUSTERS, self.ns, self.cluster_name)
        return cluster is not None and not cluster["metadata"].get("deletionTimestamp") and any(
            r.get("uid") == self.meta["uid"] for r in cluster["metadata"].get("ownerReferences") or [])

    async def cluster_deleted(self) -> float:
        return await self.fail("ClusterDeleted", (
            f"DaskCluster {self.cluster_name} was deleted before the job finished (the operator "
            "deletes a job's cluster only when the job ends; its own spec.idleTimeout also "
            "deletes it); the runner lost its scheduler"))

    async def scheduler_failed(self, pod: Obj, problem: diagnosis.Problem) -> float:
        """A failed scheduler ends the attempt; within backoffLimit a fresh one is made."""
        if not await self.has_live_cluster():
            # A scheduler stopped by its cluster's deletion is not a failing scheduler.
            return await self.cluster_deleted()
        uid = pod["metadata"]["uid"]
        failures = int(self.status.get("failed") or 0)
        if self.status.get("lastFailedScheduler") != uid:
            failures += 1  # counted once per scheduler Pod, however many passes see it
            await self.write(failed=failures, lastFailedScheduler=uid, reason=problem.reason,
                             message=problem.message)
        limit = int(self.spec.get("backoffLimit", 0) or 0)
        if failures <= limit:
            self.say("BackOff",
                     f"{problem.reason}: {problem.message}; replacing the scheduler "
                     f"({failures}/{limit} retries used)", warning=True)
            with contextlib.suppress(NotFound, Conflict):  # gone, or already replaced
                await self.delete(PODS, pod["metadata"]["name"], uid=uid)
            return RESYNC
        tail = await self.rt.log_tail(self.ns, pod["metadata"]["name"],
                                      previous=problem.previous_log)
        return await self.fail(problem.reason, problem.message, log_tail=tail, failed=failures,
                               stop_runner=True)

    async def admission_problems(self, lim: limits.Limits, spec: Obj) -> list[limits.Violation]:
        if not lim.any:
            return []
        problem = limits.config_problem(lim)
        if problem:
            return [problem]
        found = limits.check_job_spec(lim, spec)
        cap = lim.max_jobs_per_namespace
        if not found and cap is not None:
            siblings, _ = await self.rt.client.list(DASKJOBS, self.ns)

            def waits_in_line(other: Obj) -> bool:
                st = other.get("status") or {}
                return not other["metadata"].get("deletionTimestamp") and \
                    st.get("jobStatus") not in TERMINAL and \
                    not (other.get("spec") or {}).get("suspend") and \
                    not limits.check_job_spec(lim, other.get("spec"))

            ok, taken = limits.has_place(self.job, siblings, cap, holds_place=_holds_place,
                                         waits_in_line=waits_in_line)
            if not ok:
                found.append(limits.Violation("metadata.namespace", (
                    f"namespace {self.ns} already has {taken} active DaskJob(s) of the {cap} allowed "
                    f"(older waiting jobs go first) by the operator's administrator "
                    f"({lim.where('maxJobsPerNamespace')}); this job starts by itself when one "
                    f"finishes or the limit is raised")))
        return found

    async def admit(self) -> float | None:
        """Admit a job within the limits, or hold it; None once admitted.

        A held job waits (``JobCreated``, ``Admitted=False``, reason ``LimitExceeded``) instead
        of failing: a busy namespace or a limit its administrator can raise is a reason to wait,
        like a Pod waiting for room on a node. Its deadline does not run while it waits
        (``startTime`` is set on admission). Nothing is created for it meanwhile. A job whose
        profile does not exist yet waits the same way (``ProfileNotFound``); one its profile
        refuses fails at once (``ProfileViolation``). The limits and the Pod policy judge the
        cluster spec as the profile resolves it, and the profile is pinned in ``status.profile``.
        """
        outcome = profile_admission.NONE if self.rt.profiles is None else \
            await profile_admission.admit_job(self.rt.profiles, self.job)
        if outcome.state == "refused":
            return await self.fail(outcome.reason, outcome.message)
        if outcome.state == "waiting":
            return await self._wait(outcome.reason, outcome.message)
        spec = self.spec if outcome.spec is None else \
            {**self.spec, "cluster": {**(self.spec.get("cluster") or {}), "spec": outcome.spec}}
        lim = await limits.limits_for(self.rt.client, self.rt.events, self.ns, fresh=True)
        broken = [] if lim.error else pod_policy.check_job_spec(lim.pod_policy, spec)
        if broken:  # waiting cannot make it acceptable: refused before anything is made
            return await self.fail(REASON_POLICY, pod_policy.summary(broken))
        found = await self.admission_problems(lim, spec)
        previous = limits.refused_message(self.status)
        if found:
            return await self._wait(limits.REASON_EXCEEDED, limits.summary(found))
        cleared: Obj = {"reason": None, "message": None} \
            if self.status.get("reason") in _WAIT_REASONS else {}
        if outcome.pin is not None:
            cleared["profile"] = outcome.pin
        await self.write(**cleared, conditions=conditions.put_condition(
            self.status.get("conditions"), limits.CONDITION_ADMITTED, True, "Admitted",
            "within the operator's limits", self.meta.get("generation")))
        # Said only after the Admitted condition is written: a pass cut off in between leaves
        # the Event unsaid rather than claiming an admission that was never recorded, and the
        # pass that resumes sees the job admitted and goes on.
        if previous is not None:
            self.say("Admitted", "now within the operator's limits; starting")
        else:
            self.say("JobCreated", "DaskJob accepted")
        return None

    async def _wait(self, reason: str, message: str) -> float:
        """Hold the job (``Admitted=False``), saying why once."""
        if message != limits.refused_message(self.status):
            await self.write(reason=reason, message=message, conditions=conditions.put_condition(
                self.status.get("conditions"), limits.CONDITION_ADMITTED, False,
                reason, message, self.meta.get("generation")))
            self.say(reason, f"{message}; the job waits", warning=True)
        return limits.RECHECK_SECONDS

    async def drive_runner(self, scheduler: Obj | None = None) -> float:
        """Start or follow the runner. ``scheduler``: its scheduler Pod while that is not ready
        yet (the runner waits for it): a runner that ends meanwhile is judged once the
        scheduler is ready or has failed, so a scheduler that never comes up ends the job with
        its own reason, not with the runner's "timed out connecting"."""
        attempt = int(self.status.get("attempts") or 0)
        if attempt == 0 or not self.status.get("jobRunnerPodName"):
            # First attempt, or the runner was retired by a suspension: start a fresh one.
            return await self.start_attempt(attempt + 1)
        name = names.runner_name(self.name, self.meta["uid"], attempt)
        pod = self.rt.pod(self.ns, name)
        if pod is None:
            key = (self.ns, "DaskJob", self.name)
            if not self.rt.expectations_met(key, self.ns):
                return 1.0
            pod = await self.rt.client.get(PODS, self.ns, name)
            if pod is None:
                # Created and lost (deleted by someone), or never created because the operator
                # stopped between the status write and the create: make it (again) -- the same
                # deterministic name keeps this idempotent.
                return await self.start_attempt(attempt, recreate=True)
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed") and scheduler is not None:
            # The cluster is part of the job: a runner that ended (for want of its scheduler,
            # or without needing it) before the scheduler was ready has its verdict wait for
            # the scheduler's, so a scheduler that never comes up ends the job with its reason.
            note = (f"waiting: runner Pod {name} ended ({phase}) before the scheduler was ready; "
                    "its attempt is judged once the scheduler is ready or has failed")
            if self.status.get("message") != note:
                await self.write(jobStatus="Running", jobRunnerPodName=name, message=note)
            return SETTLED
        if phase == "Succeeded":
            return await self.succeed(pod)
        if phase == "Failed":
            return await self.attempt_failed(pod, attempt)
        if pod["metadata"].get("deletionTimestamp"):
            # Not by us: the operator deletes a live runner only when it ends the job
            # (deadline, suspension), and then no longer drives it.
            return await self.attempt_failed(
                pod, attempt, reason="RunnerDeleted",
                message=f"runner Pod {name} was deleted before it finished (by someone other "
                        "than the operator)")
        note = diagnosis.waiting_note(scheduler, "scheduler") if scheduler is not None else None
        delay = SETTLED  # the runner's and its cluster's Pods wake this job
        if phase == "Pending":
            problem = diagnosis.start_problem(pod)
            if problem:
                fatal_now = problem.reason in diagnosis.IMAGE_ERRORS and problem.reason != "ImagePullBackOff"
                pending_for = _seconds_since(pod["metadata"].get("creationTimestamp"))
                if fatal_now or pending_for > pending_timeout():
                    await self.delete(PODS, name, uid=pod["metadata"]["uid"])
                    return await self.attempt_failed(pod, attempt, reason=problem.reason,
                                                     message=problem.message)
                note = note or diagnosis.waiting_note(pod, "runner")
                delay = max(0.5, pending_timeout() - pending_for + 0.5)
        if note is None:
            # A runner waiting for workers that cannot start would wait for ever in silence.
            note = diagnosis.workers_note(self.rt.pods(self.ns, **{
                names.LABEL_CLUSTER: self.cluster_name, names.LABEL_COMPONENT: names.COMPONENT_WORKER}))
        fields: Obj = {"jobStatus": "Running", "jobRunnerPodName": name}
        if note != self.status.get("message") and (note or _waiting(self.status)):
            fields["message"] = note  # said while it happens, cleared once it starts
        await self.write(**fields)
        return delay

    async def start_attempt(self, attempt: int, *, recreate: bool = False) -> float:
        # The spec may have been edited since admission: every runner is checked as it is made.
        lim = await limits.limits_for(self.rt.client, self.rt.events, self.ns)
        broken = [] if lim.error else pod_policy.check_job_spec(lim.pod_policy, {"job": self.spec.get("job")})
        if broken:
            return await self.fail(REASON_POLICY, pod_policy.summary(broken))
        pod = builders.runner_pod(self.job, attempt, connect_timeout=self.runner_connect_timeout())
        name = pod["metadata"]["name"]
        self.rt.expect((self.ns, "DaskJob", self.name), [name])
        created = await create_if_missing(self.rt, PODS, pod)
        await self.write(jobStatus="Running", jobRunnerPodName=name, attempts=attempt)
        if created:
            what = "re-created" if recreate else "created"
            self.say("RunnerCreated", f"{what} runner Pod {name} (attempt {attempt})")
        return SETTLED  # the new Pod's events wake this job

    async def attempt_failed(self, pod: Obj, attempt: int, *, reason: str | None = None,
                             message: str | None = None) -> float:
        term = _terminated(pod)
        exit_code = term.get("exitCode")
        reason = reason or term.get("reason") or "Error"
        message = message or term.get("message") or \
            (f"the runner exited with code {exit_code}" if exit_code is not None else "the runner failed")
        failures = int(self.status.get("failed") or 0)
        if self.status.get("lastFailedAttempt") != attempt:
            # Count each attempt's failure once, however many passes see the failed Pod.
            failures += 1
            await self.write(failed=failures, lastFailedAttempt=attempt, exitCode=exit_code,
                             reason=reason, message=message)
        limit = int(self.spec.get("backoffLimit", 0) or 0)
        if failures <= limit:
            finished = parse_time(term.get("finishedAt")) or now()
            wait = retry_delay(failures) - (now() - finished).total_seconds()
            if wait > 0:
                if self.status.get("retryAt") is None:
                    self.say("BackOff",
                             f"attempt {attempt} failed ({reason}); retrying in {wait:.0f}s "
                             f"({failures}/{limit} retries used)", warning=True)
                await self.write(retryAt=fmt_time(now() + dt.timedelta(seconds=wait)))
                return wait
            await self.write(retryAt=None)
            return await self.start_attempt(attempt + 1)
        tail = await self.rt.log_tail(self.ns, pod["metadata"]["name"])
        return await self.fail(reason, message, exit_code=exit_code, log_tail=tail, failed=failures)

    async def succeed(self, pod: Obj) -> float:
        term = _terminated(pod)
        result = _decode_result(term.get("message"))
        await self.write(jobStatus="Successful", endTime=fmt_time(), exitCode=term.get("exitCode", 0),
                         result=result, reason="Completed", message="the runner exited with code 0",
                         jobRunnerPodName=pod["metadata"]["name"],
                         conditions=conditions.put_condition(self.status.get("conditions"), "Complete", True,
                                                   "Completed", "the runner exited with code 0"))
        self.say("Successful", f"runner {pod['metadata']['name']} completed")
        return await self.finished()

    async def fail(self, reason: str, message: str, *, exit_code: int | None = None,
                   log_tail: str | None = None, failed: int | None = None,
                   stop_runner: bool = False) -> float:
        """End the job. ``stop_runner``: its runner cannot succeed any more (its scheduler
        never came up, its cluster was refused), so a live one is deleted instead of left
        waiting for a scheduler until its connect timeout."""
        fields: Obj = {"jobStatus": "Failed", "endTime": fmt_time(), "reason": reason,
                       "message": message,
                       "conditions": conditions.put_condition(self.status.get("conditions"), "Failed", True,
                                                    reason, message)}
        if exit_code is not None:
            fields["exitCode"] = exit_code
        if log_tail is not None:
            fields["logTail"] = log_tail
        if failed is not None:
            fields["failed"] = failed
        await self.write(**fields)
        self.say("Failed", f"{reason}: {message}", warning=True)
        runner = self.status.get("jobRunnerPodName")
        if runner and reason == "DeadlineExceeded":
            await self.delete(PODS, runner)
        elif runner and stop_runner:
            pod = self.rt.pod(self.ns, runner)  # an ended one is kept for its log
            if pod is None or (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                await self.delete(PODS, runner)
        return await self.finished()

    async def finished(self) -> float:
        """Tear down what a finished job no longer needs, then honour its TTL."""
        phase = self.status.get("jobStatus")
        keep = phase == "Failed" and bool(self.spec.get("keepClusterOnFailure"))
        key = (self.ns, "DaskJob", self.name)
        # A kept cluster is looked at while status.activeCluster names it, so that one deleted
        # by hand leaves kubectl get's CLUSTER column too.
        if self.rt.torn_down.get(key) != self.meta["uid"] and \
                (not keep or self.status.get("activeCluster")):
            cluster = await self.rt.read(DASKCLUSTERS, self.ns, self.cluster_name)
            found = (cluster or {}).get("metadata") or {}
            ours = any(r.get("uid") == self.meta["uid"] for r in found.get("ownerReferences") or [])
            going = bool(found.get("deletionTimestamp"))
            if not ours or going:
                # Gone, going, or someone else's: the Pod and job events of the teardown that
                # wake this daemon need not look at it again.
                self.rt.torn_down[key] = self.meta["uid"]
            elif not keep:
                # The uid precondition keeps a stale cache from deleting a newer cluster of
                # the same name.
                deleted = await self.delete(DASKCLUSTERS, self.cluster_name,
                                            uid=found["uid"], propagation="Background")
                self.rt.torn_down[key] = self.meta["uid"]
                if deleted:
                    self.say("ClusterDeleted", f"deleted DaskCluster {self.cluster_name}")
            if not (keep and ours and not going):
                await self.write(activeCluster=None)
        ttl = self.spec.get("ttlSecondsAfterFinished")
        if ttl is None:
            return SETTLED
        left = int(ttl) - _seconds_since(self.status.get("endTime"))
        if left > 0:
            return left
        with contextlib.suppress(NotFound):
            await self.delete(DASKJOBS, self.name, uid=self.meta["uid"], propagation="Background")
        return RESYNC

    async def suspended(self) -> float:
        runner = self.status.get("jobRunnerPodName")
        if runner:
            await self.delete(PODS, runner)
            await self.write(jobRunnerPodName=None)  # resuming starts a fresh attempt
        borrowed = cluster_ref.ref_name(self.spec) is not None  # not the job's to remove
        cluster = None if borrowed else await self.rt.read(DASKCLUSTERS, self.ns, self.cluster_name)
        if cluster is not None and not cluster["metadata"].get("deletionTimestamp"):
            await self.delete(DASKCLUSTERS, self.cluster_name, uid=cluster["metadata"]["uid"])
        if self.status.get("clusterName"):
            await self.write(clusterName=None, activeCluster=None)  # resuming makes a new cluster
        if limits.is_admitted(self.status, started=_started(self.status)):
            # A suspended job runs nothing, so it gives its place back and is admitted again
            # (within the limits of that moment) when it resumes.
            await self.write(conditions=conditions.put_condition(
                self.status.get("conditions"), limits.CONDITION_ADMITTED, False, "Suspended",
                "a suspended job holds no place; it is admitted again when resumed",
                self.meta.get("generation")))
        if not conditions.is_true(self.status.get("conditions"), "Suspended"):
            await self.write(conditions=conditions.put_condition(self.status.get("conditions"), "Suspended", True,
                                                       "JobSuspended", "spec.suspend is true"))
            self.say("Suspended", "the job is suspended; its cluster and runner were removed")
        return SETTLED  # resuming is a spec change, which wakes the daemon


async def reconcile(rt: Runtime, job: Obj) -> float:
    return await JobReconciler(rt, job).reconcile()
