"""set_result: the runner writes a small JSON value where the kubelet reads it."""

from __future__ import annotations

import math

import pytest

import dask_kube_jobs
from dask_kube_jobs.result import (
    DEFAULT_TERMINATION_MESSAGE_PATH,
    RESULT_MAX_BYTES,
    TERMINATION_PATH_ENV,
    ResultError,
    decode_result,
    encode_result,
    set_result,
)


@pytest.fixture
def message_file(tmp_path, monkeypatch):
    path = tmp_path / "termination-log"
    monkeypatch.setenv(TERMINATION_PATH_ENV, str(path))
    return path


@pytest.mark.parametrize("value", [{"rows": 10, "ok": True}, [1, 2.5, None], "done", 42, None,
                                   {"unicode": "µs ✓"}],
                         ids=["dict", "list", "string", "int", "none", "unicode"])
def test_the_value_is_written_as_json_and_decodes_back(message_file, value):
    text = set_result(value)
    assert message_file.read_text(encoding="utf-8") == text
    assert decode_result(text) == value


def test_a_later_result_replaces_an_earlier_one(message_file):
    set_result({"first": "a much longer value than the second"})
    set_result(2)
    assert message_file.read_text(encoding="utf-8") == "2"


def test_the_default_path_is_the_kubernetes_default(monkeypatch):
    monkeypatch.delenv(TERMINATION_PATH_ENV, raising=False)
    assert DEFAULT_TERMINATION_MESSAGE_PATH == "/dev/termination-log"
    written = []

    class FakeFile:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def write(self, text):
            written.append(text)

    def fake_open(path, mode, encoding):
        assert (path, mode) == ("/dev/termination-log", "w")
        return FakeFile()

    monkeypatch.setattr("builtins.open", fake_open)
    set_result([1])
    assert written == ["[1]"]


@pytest.mark.parametrize("value", [object(), {1, 2}, b"bytes", math.nan, {"x": math.inf}],
                         ids=["object", "set", "bytes", "nan", "inf"])
def test_values_json_cannot_carry_are_refused_clearly(message_file, value):
    with pytest.raises(ResultError, match="JSON-serialisable"):
        set_result(value)
    assert not message_file.exists()


def test_the_largest_result_that_fits_is_accepted(message_file):
    value = "x" * (RESULT_MAX_BYTES - 2)  # the quotes make it exactly the limit
    assert len(set_result(value).encode()) == RESULT_MAX_BYTES


def test_a_result_over_4096_bytes_is_refused_before_writing(message_file):
    with pytest.raises(ResultError, match="4097 bytes") as info:
        set_result("x" * (RESULT_MAX_BYTES - 1))
    assert "return its location" in str(info.value)
    assert not message_file.exists()


def test_multibyte_characters_count_as_bytes(message_file):
    with pytest.raises(ResultError):
        encode_result("é" * (RESULT_MAX_BYTES // 2))


def test_an_unwritable_path_explains_where_set_result_works(tmp_path, monkeypatch):
    monkeypatch.setenv(TERMINATION_PATH_ENV, str(tmp_path / "missing-dir" / "log"))
    with pytest.raises(ResultError, match=TERMINATION_PATH_ENV):
        set_result(1)


def test_decoding_an_empty_or_foreign_message():
    assert decode_result(None) is None
    assert decode_result("") is None
    with pytest.raises(ResultError, match="not JSON"):
        decode_result("Traceback (most recent call last):")


def test_set_result_is_exported_from_the_package():
    assert dask_kube_jobs.set_result is set_result
    assert issubclass(ResultError, ValueError)
