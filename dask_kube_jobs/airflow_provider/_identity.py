"""Task identity on a DaskJob: labels and a deterministic name from the Airflow task try.

Why labels and not only a stored job name: a worker can die between creating the job and
recording anything in Airflow's database, so the only record that is certain to exist is the
object itself. Labels carrying dag_id/task_id/run_id/map_index let the next try *find* it, and
``try-number`` lets it tell its own try's job from an earlier one:

* a job of the same task that is still running is reattached to (a retry after a worker crash
  must not start a second copy of the work);
* a finished job is never reattached by a *later* try (the retry exists because the user wants
  the work done again), but the same try finds its own job again, finished or not;
* the name is a function of the identity and the try number, so two executes of the same try
  racing to create it meet at a harmless 409 instead of two jobs (apache/airflow#16290 is the
  fixed-name variant of this going wrong).

Label values are at most 63 characters of ``[A-Za-z0-9._-]``, starting and ending
alphanumeric; run ids (``manual__2024-01-01T00:00:00+00:00``) are not, so values are sanitised
and, when that changed or shortened them, suffixed with a hash of the original so two different
ids never collide. Selection always uses ``task-key``, a hash of the four fields.

Pure: no I/O, no Airflow import.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..contract.names import MAX_CLUSTER_NAME

PREFIX = "airflow.dask.org/"
LABEL_KEY = PREFIX + "task-key"
LABEL_DAG = PREFIX + "dag-id"
LABEL_TASK = PREFIX + "task-id"
LABEL_RUN = PREFIX + "run-id"
LABEL_MAP_INDEX = PREFIX + "map-index"
LABEL_TRY = PREFIX + "try-number"
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "airflow"

MAX_JOB_NAME = MAX_CLUSTER_NAME  # the job's cluster names a Service '<name>-scheduler'
_BAD_LABEL_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_BAD_NAME_CHARS = re.compile(r"[^a-z0-9-]+")


def _digest(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def label_value(value: str) -> str:
    """``value`` as a valid label value; a hash suffix marks (and disambiguates) any change.

    >>> label_value("extract")
    'extract'
    >>> label_value("manual__2024-01-01T00:00:00+00:00")
    'manual__2024-01-01T00_00_00_00_00-c87eaaa6'
    """
    clean = _BAD_LABEL_CHARS.sub("_", value).strip("._-")
    if clean == value and len(value) <= 63:
        return value
    suffix = "-" + _digest(value, 8)
    return (clean[: 63 - len(suffix)].rstrip("._-") + suffix).lstrip("._-")


@dataclass(frozen=True)
class TaskIdentity:
    """Which Airflow task try a DaskJob belongs to (primitives only: triggers carry it)."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int = 1

    @property
    def key(self) -> str:
        """A hash of dag_id/task_id/run_id/map_index: the same for every try of one task."""
        return _digest(f"{self.dag_id}\0{self.task_id}\0{self.run_id}\0{self.map_index}", 20)

    def labels(self) -> dict[str, str]:
        return {
            LABEL_KEY: self.key,
            LABEL_DAG: label_value(self.dag_id),
            LABEL_TASK: label_value(self.task_id),
            LABEL_RUN: label_value(self.run_id),
            LABEL_MAP_INDEX: str(self.map_index) if self.map_index >= 0 else "none",
            LABEL_TRY: str(self.try_number),
            LABEL_MANAGED: MANAGED_BY,
        }

    def selector(self) -> str:
        """The label selector matching every try of this task."""
        return f"{LABEL_KEY}={self.key}"

    def job_name(self, prefix: str | None = None) -> str:
        """``<prefix>-<hash of identity and try>``: deterministic, a valid DNS-1035 label that
        leaves room for ``-scheduler``.

        >>> TaskIdentity("d", "Sum_Numbers", "r").job_name()
        'sum-numbers-25f3e586-1'
        """
        suffix = f"-{_digest(self.key, 8)}-{self.try_number}"
        base = _BAD_NAME_CHARS.sub("-", (prefix or self.task_id).lower()).strip("-")
        base = base[: MAX_JOB_NAME - len(suffix)].rstrip("-")
        if not base or not base[0].isalpha():
            base = ("j-" + base)[: MAX_JOB_NAME - len(suffix)].rstrip("-")
        return base + suffix


def try_of(job: dict) -> int:  # type: ignore[type-arg]
    """The try number a job was created by (0 if it carries none)."""
    labels = (job.get("metadata") or {}).get("labels") or {}
    try:
        return int(labels.get(LABEL_TRY, "0"))
    except ValueError:
        return 0
