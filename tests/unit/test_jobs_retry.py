"""Which API errors the job API retries, how long it backs off, and its argument checks."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from dask_kube_jobs import kube
from dask_kube_jobs.asyncio import AsyncDaskJobHandle
from dask_kube_jobs.errors import APIRequestError, JobNotFound, KubeconfigError
from dask_kube_jobs.jobs._client import Backoff, is_transient, retrying, translate


def translated(exc: Exception) -> BaseException:
    try:
        with translate("job", "ns"):
            raise exc
    except Exception as out:
        return out
    raise AssertionError("translate swallowed the error")  # pragma: no cover


@pytest.mark.parametrize("code,transient", [
    (500, True), (502, True), (503, True), (504, True), (429, True), (408, True),
    (400, False), (401, False), (403, False), (409, False), (422, False),
], ids=lambda v: str(v))
def test_api_errors_are_transient_by_code_raw_and_translated(code: int, transient: bool) -> None:
    raw = kube.api_error(code, {"reason": "Reason", "message": "message",
                                "details": {"name": "job"}})
    assert is_transient(raw) is transient
    assert is_transient(translated(raw)) is transient


def test_the_network_is_transient_but_a_missing_job_or_a_bad_kubeconfig_is_not() -> None:
    for exc in (httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), ConnectionResetError()):
        assert is_transient(exc) and is_transient(translated(exc))
    assert isinstance(translated(httpx.ConnectError("refused")), KubeconfigError)
    assert not is_transient(KubeconfigError("kubeconfig /x does not exist"))
    assert not is_transient(JobNotFound("job", "ns"))
    assert not is_transient(translated(kube.api_error(404, {"reason": "NotFound", "message": "gone",
                                                            "details": {"name": "job"}})))


async def test_retrying_backs_off_with_growing_bounded_pauses_then_gives_up() -> None:
    calls: list[float] = []

    async def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise APIRequestError(503, "ServiceUnavailable", "restarting") \
                from kube.api_error(503, {"reason": "ServiceUnavailable", "message": "restarting"})
        return "ok"

    assert await retrying(flaky, Backoff(first=0.02, most=0.05)) == "ok"
    pauses = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    assert len(pauses) == 3 and pauses[0] < pauses[1] and all(p < 0.2 for p in pauses)

    async def down() -> None:
        raise httpx.ConnectError("refused")

    started = time.monotonic()
    with pytest.raises(httpx.ConnectError):
        await retrying(down, Backoff(first=0.01, most=0.02, give_up_after=0.1))
    assert time.monotonic() - started < 1.0

    async def forbidden() -> None:
        calls.append(0.0)
        raise APIRequestError(403, "Forbidden", "no") from kube.api_error(403, {"message": "no"})

    before = len(calls)
    with pytest.raises(APIRequestError):
        await asyncio.wait_for(retrying(forbidden), 1)
    assert len(calls) == before + 1  # not retried


def test_a_handle_from_name_needs_no_request_and_checks_its_arguments(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: v1\nkind: Config\n")
    job = AsyncDaskJobHandle.from_name("etl", "data", uid="u-1", kubeconfig=config)
    assert (job.name, job.namespace, job.uid, job.phase) == ("etl", "data", "u-1", None)
    with pytest.raises(ValueError, match="namespace"):
        AsyncDaskJobHandle.from_name("etl", "")
    with pytest.raises(KubeconfigError, match="does not exist"):
        AsyncDaskJobHandle.from_name("etl", "data", kubeconfig=tmp_path / "missing.yaml")


@pytest.mark.parametrize("kwargs,field", [
    ({"follow": True, "skip": -1}, "skip must be a whole number"),
    ({"follow": True, "skip": 1.5}, "skip must be a whole number"),
    ({"follow": False, "skip": 2}, "pass follow=True"),
], ids=["negative", "fraction", "without-follow"])
def test_log_skip_is_checked(kwargs: dict[str, object], field: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: v1\nkind: Config\n")
    job = AsyncDaskJobHandle.from_name("etl", "data", kubeconfig=config)
    with pytest.raises(ValueError, match=field):
        job.logs(**kwargs)  # type: ignore[arg-type]
