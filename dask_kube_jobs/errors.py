"""The exceptions of dask-kube-jobs: one base class, subclasses by what went wrong.

Callers catch by meaning -- "the job failed", "no such job", "waited too long" -- not by which
layer noticed (kr8s, httpx, our API server). Every error the Python API raises on purpose is a
:class:`DaskKubeJobsError`, so ``except DaskKubeJobsError`` is the one line a script needs, and the
CLI turns any of them into one line plus :attr:`~DaskKubeJobsError.hint`.

Errors the API server answered are built from its ``Status`` body (code, reason, message), as
kopf builds its ``APIError`` family, and raised ``from`` the low-level error.

>>> from dask_kube_jobs import submit, DaskJobFailed
>>> try:                                                      # doctest: +SKIP
...     submit("job.yaml").wait()
... except DaskJobFailed as exc:
...     print(exc.exit_code, exc.reason, exc.log_tail)

This module imports nothing from the package, so ``spec`` and ``result`` can subclass the base.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "APIRequestError",
    "CRDsNotInstalled",
    "ClusterExistsError",
    "ClusterFailed",
    "ClusterNotFoundError",
    "ClusterStartupError",
    "DaskJobFailed",
    "DaskKubeJobsError",
    "JobAlreadyExists",
    "JobNotFound",
    "KubeClusterError",
    "KubeconfigError",
    "NamespaceNotFound",
    "ProfileNotFound",
    "ProfileOptionError",
    "WaitTimeout",
]


class DaskKubeJobsError(Exception):
    """Base of every error raised by dask-kube-jobs on purpose.

    ``hint`` is a short "what to do next" shown by the CLI under the message (may be empty).
    """

    hint: str = ""


class CLIError(DaskKubeJobsError):
    """A command of the CLI that cannot do what it was asked (not an error of the Python API,
    hence not in ``__all__``): one line, and a hint on what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class KubeconfigError(DaskKubeJobsError):
    """No cluster to talk to: no kubeconfig found, or it cannot be read."""

    hint = "run with --local, or start one with `dask-kube-jobs local up`, or pass --kubeconfig"


class APIRequestError(DaskKubeJobsError):
    """The API server refused a request; ``code``/``reason``/``message`` come from its Status."""

    def __init__(self, code: int, reason: str, message: str, *, status: Any = None) -> None:
        super().__init__(f"{message} ({code} {reason})" if reason else f"{message} ({code})")
        self.code = code
        self.reason = reason
        self.message = message
        self.status = status


class CRDsNotInstalled(APIRequestError):
    """The cluster does not know the DaskJob resource: the operator's CRDs are not installed."""

    hint = ("install the operator and its CRDs (helm install dask-kube-jobs "
            "charts/dask-kube-jobs), or use --local")


class NamespaceNotFound(APIRequestError):
    """The namespace a request names does not exist (not the same as missing CRDs)."""

    def __init__(self, namespace: str, code: int, reason: str, *, status: Any = None) -> None:
        super().__init__(code, reason, f'namespace "{namespace}" does not exist', status=status)
        self.namespace = namespace
        self.hint = (f"create it (kubectl create namespace {namespace}) or pass another "
                     "--namespace")


class JobNotFound(DaskKubeJobsError):
    """There is no DaskJob of that name (or it was deleted while we were waiting for it)."""

    hint = "list the jobs with `dask-kube-jobs list` (check --namespace)"

    def __init__(self, name: str, namespace: str, detail: str = "") -> None:
        super().__init__(f'DaskJob "{name}" not found in namespace "{namespace}"'
                         + (f" ({detail})" if detail else ""))
        self.name = name
        self.namespace = namespace


class JobAlreadyExists(DaskKubeJobsError):
    """A DaskJob of that name already exists; names are unique per namespace."""

    def __init__(self, name: str, namespace: str) -> None:
        super().__init__(f'a DaskJob named "{name}" already exists in namespace "{namespace}"')
        self.hint = (f"delete it (dask-kube-jobs delete {name} -n {namespace}) or choose another "
                     "name (--name)")
        self.name = name
        self.namespace = namespace


class WaitTimeout(DaskKubeJobsError, TimeoutError):
    """The job did not finish within the timeout; it keeps running (nothing was deleted)."""

    def __init__(self, name: str, namespace: str, timeout: float, phase: str | None,
                 message: str | None = None) -> None:
        # A job held by the operator (a server-side limit) waits in JobCreated with a message
        # saying why: a timeout that hid it would leave the user guessing.
        why = f"; {message}" if message else ""
        super().__init__(f'DaskJob "{name}" in "{namespace}" did not finish within '
                         f"{timeout:g}s (phase: {phase or 'unknown'}{why})")
        self.hint = f"it is still running; follow it with `dask-kube-jobs status {name}`"
        self.name = name
        self.namespace = namespace
        self.timeout = timeout
        self.phase = phase
        self.message = message


class DaskJobFailed(DaskKubeJobsError):
    """The job ended ``Failed``: the runner exited non-zero (after its retries), could not start,
    or hit its deadline.

    ``exit_code`` is the last runner's exit code (None if it never ran), ``reason`` the short
    machine word (``Error``, ``DeadlineExceeded``, ``ErrImagePull``...), ``message`` the human
    sentence, ``log_tail`` the last lines of the runner's log, ``job`` the job's name and
    ``status`` the full final :class:`~dask_kube_jobs.JobStatus` (when known).
    """

    def __init__(self, exit_code: int | None, reason: str | None, message: str | None,
                 log_tail: str | None, job: str, *, namespace: str = "",
                 status: Any = None) -> None:
        head = f'DaskJob "{job}" failed'
        details = ", ".join(x for x in (reason, message) if x)
        if exit_code is not None and "code" not in (message or ""):
            details += f" (exit code {exit_code})"
        super().__init__(f"{head}: {details}" if details else head)
        self.exit_code = exit_code
        self.reason = reason
        self.message = message
        self.log_tail = log_tail
        self.job = job
        self.namespace = namespace
        self.status = status
        self.hint = f"see the runner's log with `dask-kube-jobs logs {job}`"

    def __reduce__(self) -> Any:  # picklable for Airflow/Dask, whatever the keyword arguments
        return (_rebuild_failed, (self.exit_code, self.reason, self.message, self.log_tail,
                                  self.job, self.namespace))


def _rebuild_failed(*args: Any) -> DaskJobFailed:
    exit_code, reason, message, log_tail, job, namespace = args
    return DaskJobFailed(exit_code, reason, message, log_tail, job, namespace=namespace)


class KubeClusterError(DaskKubeJobsError):
    """Base of the errors about a DaskCluster (the cluster API's and :class:`KubeCluster`'s)."""


class ClusterExistsError(KubeClusterError):
    """A DaskCluster of that name already exists (creating it, or ``create_mode=CREATE_ONLY``)."""

    hint = "connect with KubeCluster.from_name(name), or choose another name"


class ClusterNotFoundError(KubeClusterError):
    """No DaskCluster of that name exists (or it was deleted while we were using it)."""

    hint = "check the name and the namespace: kubectl get daskclusters -A"


class ClusterStartupError(KubeClusterError, TimeoutError):
    """The DaskCluster did not become usable in time: the operator never answered, or the
    scheduler (or the workers asked for) never became ready. ``details`` holds what was
    observed (the conditions' words, the scheduler Pod's log tail)."""

    hint = "see kubectl describe daskcluster/pod, and the operator's log"

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message + (f"\n{details}" if details else ""))
        self.details = details


class ClusterFailed(KubeClusterError):
    """The operator marked the DaskCluster ``Failed`` (a child refused for good): final.
    ``status`` is its :class:`~dask_kube_jobs.clusters.ClusterStatus`."""

    hint = "see kubectl describe daskcluster, fix the manifest and create it again"

    def __init__(self, message: str, *, status: Any = None) -> None:
        super().__init__(message)
        self.status = status


class ProfileNotFound(DaskKubeJobsError):
    """No DaskClusterProfile of that name exists (profiles are cluster-scoped)."""

    def __init__(self, name: str, available: list[str] | None = None) -> None:
        offered = f" (there are: {', '.join(available)})" if available else \
            " (there are none)" if available is not None else ""
        super().__init__(f'DaskClusterProfile "{name}" does not exist{offered}')
        self.name = name
        self.available = available
        self.hint = "list the profiles with `dask-kube-jobs profiles`, or ask your administrator"


class ProfileOptionError(DaskKubeJobsError, ValueError):
    """A profile or its options are not acceptable: a malformed name, an option the profile
    does not offer, a value out of its range or not one of its choices. ``profile``,
    ``option``, ``value`` and ``allowed`` say which (those known)."""

    def __init__(self, message: str, *, profile: str | None = None, option: str | None = None,
                 value: Any = None, allowed: str | None = None) -> None:
        super().__init__(message)
        self.profile = profile
        self.option = option
        self.value = value
        self.allowed = allowed
        if profile and option:
            self.hint = f"see what it offers: dask-kube-jobs profiles {profile}"
