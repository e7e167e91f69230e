"""Names, labels and well-known values of the resource contract: the operator, the client
library, the KubeCluster and the Airflow provider all read them here.

The labels and child names are upstream's (``dask.org/cluster-name``, ``<cluster>-scheduler``,
``<cluster>-default``, ``<group>-worker-<id>``) so that tooling written for the upstream Dask
Kubernetes Operator -- dashboards, ``kubectl get -l`` habits, network policies -- keeps working.
Runner Pods are the exception: upstream's fixed ``<job>-runner`` clashes when a job is quickly
deleted and re-created, so each attempt of ours carries the job's uid and the attempt number.
"""

from __future__ import annotations

import re

GROUP = "kubernetes.dask.org"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"

LABEL_CLUSTER = "dask.org/cluster-name"
LABEL_COMPONENT = "dask.org/component"
LABEL_WORKER_GROUP = "dask.org/workergroup-name"
LABEL_JOB = "dask.org/job-name"
LABEL_ATTEMPT = "dask.org/job-attempt"

COMPONENT_SCHEDULER = "scheduler"
COMPONENT_WORKER = "worker"
COMPONENT_RUNNER = "job-runner"
COMPONENT_WORKER_GROUP = "workergroup"
COMPONENT_AUTOSCALER = "autoscaler"

SCHEDULER_PORT = 8786
DASHBOARD_PORT = 8787

#: Annotations the operator never copies from a parent onto its children.
PRIVATE_ANNOTATION_PREFIXES = ("kopf.zalando.org", "kubectl.kubernetes.io", "dask.org/operator-")

EVENT_COMPONENT = "dask-kube-jobs-operator"

#: On a Namespace: the DaskClusterProfile its DaskClusters and DaskJobs use when their spec
#: names none (docs/profiles.md).
ANNOTATION_DEFAULT_PROFILE = f"{GROUP}/default-profile"


#: The scheduler Pod and Service are ``<cluster><SCHEDULER_SUFFIX>``.
SCHEDULER_SUFFIX = "-scheduler"


def scheduler_name(cluster: str) -> str:
    return f"{cluster}{SCHEDULER_SUFFIX}"


def default_worker_group(cluster: str) -> str:
    return f"{cluster}-default"


def scheduler_address(cluster: str, namespace: str) -> str:
    """What runners and workers are told: the scheduler Service's cluster-local DNS name."""
    return f"tcp://{scheduler_name(cluster)}.{namespace}.svc.cluster.local:{SCHEDULER_PORT}"


def dashboard_address(cluster: str, namespace: str) -> str:
    return f"http://{scheduler_name(cluster)}.{namespace}.svc.cluster.local:{DASHBOARD_PORT}"


def job_cluster_name(job: str) -> str:
    """A DaskJob's cluster has the job's name, as upstream names it."""
    return job


def runner_name(job: str, job_uid: str, attempt: int) -> str:
    """A runner Pod name unique per job incarnation and attempt (``<job>-runner-<uid5>-<n>``)."""
    suffix = f"-runner-{job_uid.replace('-', '')[:5]}-{attempt}"
    return job[: 63 - len(suffix)].rstrip("-.") + suffix


def worker_name(group: str, token: str) -> str:
    suffix = f"-worker-{token}"
    return group[: 63 - len(suffix)].rstrip("-.") + suffix


#: A Service name (DNS-1035 label): what ``<cluster>-scheduler`` must be.
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_CLUSTER_NAME = 63 - len(SCHEDULER_SUFFIX)


def cluster_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a Dask cluster (its ``<name>-scheduler`` Service), or None.

    The CRDs carry the same rule as a CEL validation; this check covers API servers that do
    not evaluate CEL, so an invalid name is refused before anything is created for it. The job
    API checks a manifest with it too, so a name the operator would refuse (``1job``) is refused
    before it is sent, in the same words.
    """
    if len(name) > MAX_CLUSTER_NAME:
        return (f"metadata.name {name!r} is {len(name)} characters; at most {MAX_CLUSTER_NAME} "
                f"fit, because the scheduler Service is named '<name>-scheduler' (63 at most)")
    if not DNS1035_LABEL.fullmatch(name):  # not .match: "$" would let "x\n" through
        return (f"metadata.name {name!r} must start with a letter and contain only lowercase "
                "letters, digits and '-': it names the scheduler Service")
    return None
