"""The operator's object cache: what the watch delivered, its own writes until the watch shows
them, and "unknown" (read the server) whenever it cannot tell."""

from __future__ import annotations

from typing import Any

from dask_kube_jobs.operator.cache import UNKNOWN, WRITTEN_TTL, ObjectCache, at_least_as_new


def obj(name: str, rv: str, **status: Any) -> dict[str, Any]:
    return {"kind": "DaskJob", "metadata": {"namespace": "ns", "name": name, "resourceVersion": rv},
            "status": status}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_miss_is_unknown_until_the_watch_reports_a_deletion() -> None:
    cache = ObjectCache()
    assert cache.lookup("DaskJob", "ns", "a") is UNKNOWN
    cache.observe("DaskJob", None, obj("a", "5"))  # kopf's initial listing
    assert cache.lookup("DaskJob", "ns", "a")["metadata"]["resourceVersion"] == "5"
    assert cache.lookup("DaskCluster", "ns", "a") is UNKNOWN  # kinds are apart
    cache.observe("DaskJob", "DELETED", obj("a", "9"))
    assert cache.lookup("DaskJob", "ns", "a") is None
    cache.observe("DaskJob", "ADDED", obj("a", "12"))  # the name reused
    assert cache.lookup("DaskJob", "ns", "a")["metadata"]["resourceVersion"] == "12"


def test_an_own_write_is_read_back_until_the_watch_catches_up() -> None:
    cache = ObjectCache()
    cache.observe("DaskJob", "ADDED", obj("a", "5"))
    cache.wrote(obj("a", "7", jobStatus="Running"))
    cache.observe("DaskJob", "MODIFIED", obj("a", "6"))  # older than the write: still the write
    assert cache.lookup("DaskJob", "ns", "a")["status"] == {"jobStatus": "Running"}
    cache.observe("DaskJob", "MODIFIED", obj("a", "7", jobStatus="Running"))
    cache.observe("DaskJob", "MODIFIED", obj("a", "8", jobStatus="Successful"))  # someone else
    assert cache.lookup("DaskJob", "ns", "a")["status"] == {"jobStatus": "Successful"}


def test_a_write_older_than_the_watched_copy_is_ignored() -> None:
    cache = ObjectCache()
    cache.observe("DaskJob", "ADDED", obj("a", "10", jobStatus="Failed"))
    cache.wrote(obj("a", "9", jobStatus="Running"))
    assert cache.lookup("DaskJob", "ns", "a")["status"] == {"jobStatus": "Failed"}


def test_an_unwatched_write_is_trusted_for_a_while_only() -> None:
    clock = Clock()
    cache = ObjectCache(clock=clock)
    created = {**obj("svc", "3"), "kind": "Service"}
    cache.wrote(created)
    assert cache.lookup("Service", "ns", "svc") is created
    clock.now += WRITTEN_TTL + 1
    assert cache.lookup("Service", "ns", "svc") is UNKNOWN


def test_deletion_after_a_write_wins_and_a_create_after_a_deletion_wins() -> None:
    cache = ObjectCache()
    cache.wrote(obj("a", "4"))
    cache.observe("DaskJob", "DELETED", obj("a", "6"))
    assert cache.lookup("DaskJob", "ns", "a") is None
    cache.wrote(obj("a", "8"))  # made again by this process; the watch has not shown it yet
    assert cache.lookup("DaskJob", "ns", "a")["metadata"]["resourceVersion"] == "8"
    # A deletion older than the copy written after it does not hide that copy.
    cache.observe("DaskJob", "DELETED", obj("a", "6"))
    assert cache.lookup("DaskJob", "ns", "a")["metadata"]["resourceVersion"] == "8"


def test_versions_that_are_not_numbers_send_the_reader_to_the_server() -> None:
    assert at_least_as_new(obj("a", "x1"), obj("a", "x1")) is True
    assert at_least_as_new(obj("a", "x2"), obj("a", "x1")) is None
    assert at_least_as_new(obj("a", "12"), obj("a", "9")) is True  # numbers, not strings
    cache = ObjectCache()
    cache.observe("DaskJob", "ADDED", obj("a", "x1"))
    cache.wrote(obj("a", "x2"))
    assert cache.lookup("DaskJob", "ns", "a") is UNKNOWN
