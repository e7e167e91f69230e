"""The runner's side of a DaskJob result: ``set_result(value)``.

A runner Pod has one channel back to the control plane that needs no extra rights, no
sidecar and no network: its container's termination message. The kubelet reads the file at
``terminationMessagePath`` (``/dev/termination-log`` unless the Pod says otherwise) when the
container exits and publishes it in the Pod status; the operator decodes it into the DaskJob's
``status.result``. That works identically on a real cluster and
on the local control plane, whose process kubelet points ``$DKJ_TERMINATION_MESSAGE_PATH`` at the
file it will read.

The price is size: the kubelet keeps at most 4096 bytes per container, so a result must be a
small JSON value (a summary, a path to bigger output), and it is checked here so an oversized
result fails loudly in the runner instead of arriving truncated and undecodable.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .errors import DaskKubeJobsError

__all__ = ["DEFAULT_TERMINATION_MESSAGE_PATH", "RESULT_MAX_BYTES", "TERMINATION_PATH_ENV",
           "ResultError", "decode_result", "encode_result", "set_result"]

RESULT_MAX_BYTES = 4096  # the kubelet's limit for one container's termination message
DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
TERMINATION_PATH_ENV = "DKJ_TERMINATION_MESSAGE_PATH"


class ResultError(DaskKubeJobsError, ValueError):
    """The value cannot be stored as a job result (not JSON, too large, nowhere to write)."""


def encode_result(value: Any) -> str:
    """The compact JSON text ``set_result`` would write; raises :class:`ResultError`.

    >>> encode_result({"rows": 10, "ok": True})
    '{"rows":10,"ok":true}'
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ResultError(f"the result must be JSON-serialisable (dicts, lists, strings, "
                          f"finite numbers, booleans, None): {exc}") from exc
    size = len(text.encode("utf-8"))
    if size > RESULT_MAX_BYTES:
        raise ResultError(f"the result is {size} bytes of JSON; at most {RESULT_MAX_BYTES} fit "
                          "in a termination message. Store large output elsewhere (object "
                          "storage, a volume) and return its location instead")
    return text


def decode_result(text: str | None) -> Any:
    """The value a runner passed to ``set_result``, from its termination message (None if
    empty). The operator stores the decoded value in the DaskJob's ``status.result``."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"the job's result is not JSON (was it written with "
                          f"dask_kube_jobs.set_result?): {text[:200]!r}") from exc


def set_result(value: Any) -> str:
    """Record ``value`` as this job's result; returns the JSON text written.

    Call it in the runner, typically last; a later call replaces an earlier one. The file is
    ``$DKJ_TERMINATION_MESSAGE_PATH`` when set, else ``/dev/termination-log``.

    >>> from dask_kube_jobs import set_result
    >>> set_result({"total": 42})                               # doctest: +SKIP
    '{"total":42}'
    """
    text = encode_result(value)
    path = os.environ.get(TERMINATION_PATH_ENV) or DEFAULT_TERMINATION_MESSAGE_PATH
    try:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ResultError(f"cannot write the result to {path!r} ({exc.strerror or exc}). "
                          "set_result works inside a DaskJob runner; elsewhere set "
                          f"{TERMINATION_PATH_ENV} to a writable file") from exc
    return text
