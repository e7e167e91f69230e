"""The words a failed scheduler's status carries (operator/diagnosis.py)."""

from __future__ import annotations

from dask_kube_jobs.operator.diagnosis import LOG_END_CHARS, with_log_end

JUPYTERLESS = """\
Traceback (most recent call last):
  File "/opt/conda/bin/dask", line 8, in <module>
    scheduler = Scheduler(
ImportError: In order to use the Dask jupyter option you need to have jupyterlab installed

"""


def test_the_last_line_of_a_crashed_schedulers_log_joins_the_message() -> None:
    assert with_log_end("exited with code 1 (Error)", JUPYTERLESS) == (
        "exited with code 1 (Error); its log ends: ImportError: In order to use the Dask "
        "jupyter option you need to have jupyterlab installed")


def test_no_log_leaves_the_message_alone_and_a_long_line_keeps_its_end() -> None:
    assert with_log_end("ended", None) == with_log_end("ended", " \n\n") == "ended"
    long = "x" * 1000 + "the end"
    said = with_log_end("ended", long)
    assert said.endswith("the end") and len(said) == len("ended; its log ends: ") + LOG_END_CHARS
