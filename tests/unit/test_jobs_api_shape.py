"""The job handles' shape: the same names with the same meanings on both faces, and the
one-release grace of the sync reads that were properties (``_deprecated.py``)."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest

from dask_kube_jobs import DaskJobHandle
from dask_kube_jobs.asyncio import AsyncDaskJobHandle
from dask_kube_jobs.jobs._deprecated import MethodOrOldValue, formerly_a_property


def public(cls: type) -> dict[str, str]:
    """Each public attribute of a class and what it is: a method or a property."""
    kinds = {}
    for name in dir(cls):
        if not name.startswith("_"):
            kinds[name] = "property" if isinstance(getattr(cls, name), property) else "method"
    return kinds


def test_both_faces_have_the_same_names_of_the_same_kinds() -> None:
    assert public(DaskJobHandle) == public(AsyncDaskJobHandle)
    reads = {"status", "result", "refresh", "dashboard_link", "watch", "wait", "logs", "delete"}
    seen = {"phase", "last_status", "raw", "name", "namespace", "uid"}
    kinds = public(DaskJobHandle)
    assert {n for n in reads if kinds[n] == "method"} == reads
    assert {n for n in seen if kinds[n] == "property"} == seen
    for name in ("status", "result", "refresh", "dashboard_link", "wait", "delete"):
        assert inspect.iscoroutinefunction(getattr(AsyncDaskJobHandle, name)), name


def test_a_handle_made_by_name_knows_no_phase_and_reads_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "config.yaml"
    config.write_text("apiVersion: v1\nkind: Config\n")  # no cluster in it: a read would fail
    for job in (DaskJobHandle.from_name("etl", "data", kubeconfig=config),
                AsyncDaskJobHandle.from_name("etl", "data", kubeconfig=config)):
        assert job.phase is None and job.last_status.phase is None
        assert job.last_status.attempts == 0 and job.raw["metadata"]["name"] == "etl"


class Counted:
    """A read that counts how often it ran and returns a fresh value each time."""

    def __init__(self, value: Any) -> None:
        self.value, self.reads = value, 0

    def __call__(self) -> Any:
        self.reads += 1
        return self.value


def stand_in(value: Any) -> tuple[MethodOrOldValue[Any], Counted]:
    read = Counted(value)
    return MethodOrOldValue(read, "DaskJobHandle.result", "job.result()"), read


def test_calling_reads_each_time_and_never_warns() -> None:
    attr, read = stand_in({"rows": 3})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert attr() == {"rows": 3} and attr() == {"rows": 3}
    assert read.reads == 2


@pytest.mark.parametrize("use,expected", [
    (lambda v: v == {"rows": 3, "ok": True}, True),
    (lambda v: v != {"rows": 3, "ok": True}, False),
    (lambda v: v["rows"], 3),
    (lambda v: "ok" in v, True),
    (lambda v: sorted(v), ["ok", "rows"]),
    (lambda v: len(v), 2),
    (lambda v: bool(v), True),
    (lambda v: v.get("rows"), 3),
    (lambda v: dict(v), {"rows": 3, "ok": True}),
    (lambda v: str(v), "{'rows': 3, 'ok': True}"),
    (lambda v: repr(v), "{'rows': 3, 'ok': True}"),
    (lambda v: f"{v}", "{'rows': 3, 'ok': True}"),
], ids=["eq", "ne", "getitem", "in", "iter", "len", "bool", "attribute", "dict", "str", "repr",
        "format"])
def test_an_old_value_use_works_and_warns_once_naming_the_call(use: Any, expected: Any) -> None:
    attr, read = stand_in({"rows": 3, "ok": True})
    with pytest.warns(DeprecationWarning) as record:
        assert use(attr) == expected
        use(attr)  # the same stand-in used again: no second warning, no second read
    assert len(record) == 1, [str(w.message) for w in record]
    message = str(record[0].message)
    assert message.startswith("DaskJobHandle.result is a method now: call job.result()")
    assert record[0].filename == __file__  # pointed at the user's line
    assert read.reads == 1


def test_ordering_and_hashing_use_the_value() -> None:
    attr, _ = stand_in(7)
    with pytest.warns(DeprecationWarning):
        assert attr < 8 and attr <= 7 and attr > 6 and attr >= 7 and hash(attr) == hash(7)


def test_it_is_not_the_value_so_type_checks_and_json_fail_loudly() -> None:
    import json

    attr, read = stand_in({"rows": 3})
    assert not isinstance(attr, dict)
    with pytest.raises(TypeError, match="MethodOrOldValue"):
        json.dumps(attr)
    with pytest.raises(AttributeError):
        attr.__deepcopy__  # noqa: B018  (copy's probe is not an old use: no read, no warning)
    assert read.reads == 0


class Handle:
    def __init__(self) -> None:
        self.reads = 0

    @formerly_a_property
    def status(self) -> str:
        """The status, read now."""
        self.reads += 1
        return "Running"


def test_the_decorator_gives_instances_the_stand_in_and_the_class_the_method() -> None:
    assert Handle.status.__doc__ == "The status, read now."
    assert inspect.isfunction(Handle.status)
    job = Handle()
    assert job.status() == "Running"
    with pytest.warns(DeprecationWarning, match=r"Handle\.status is a method now: call "
                                                r"job\.status\(\)"):
        assert job.status == "Running"
    assert job.reads == 2
