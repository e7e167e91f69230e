"""``@task.daskjob``: the function's source becomes a DaskJob's runner, its arguments travel as
JSON, its return value comes back as the task's XCom, and a too-large result fails clearly."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest

from dask_kube_jobs.airflow_provider.decorators.daskjob import (
    DaskJobDecoratedOperator,
    function_source,
    runner_script,
)
from dask_kube_jobs.errors import DaskJobFailed

from .helpers import FakeTI

pytestmark = pytest.mark.timeout(300)


def decorated(n: int, *, scale: int = 1) -> dict:  # stand-in, decorated below in a DAG
    return {"n": n * scale}


def test_the_runner_script_is_the_function_without_decorators_and_a_main() -> None:
    from airflow.providers.common.compat.sdk import task

    @task.daskjob(
        n_workers=1,
        image="ghcr.io/dask/dask:latest",
    )
    def brace_yourself(values: list, scale: int = 1) -> dict:
        text = "{{ not a template }}"
        return {"total": sum(values) * scale, "text": text}

    source = function_source(brace_yourself.function)
    assert source.startswith("def brace_yourself(values: list, scale: int = 1) -> dict:")
    assert "@task" not in source and "n_workers" not in source
    script = runner_script(brace_yourself.function, [[1, 2]], {"scale": 3})
    namespace: dict[str, Any] = {}
    exec(compile(script, "job.py", "exec"), namespace)  # defines it; main only as __main__
    assert namespace["brace_yourself"]([1, 2], scale=3) == {"total": 9,
                                                            "text": "{{ not a template }}"}
    assert '[[[1, 2]], {"scale": 3}]' in script


def test_arguments_that_are_not_json_are_refused_naming_the_function() -> None:
    with pytest.raises(TypeError, match=r"arguments of decorated\(\) must be JSON"):
        runner_script(decorated, [object()], {})


async def _coroutine() -> None:
    return None


def test_functions_the_runner_cannot_run_are_refused_at_parse_time() -> None:
    with pytest.raises(TypeError, match="is async"):
        function_source(_coroutine)
    with pytest.raises(TypeError, match="defined with def"):
        function_source(lambda: 1)
    with pytest.raises(ValueError, match="script= does not apply"):
        DaskJobDecoratedOperator(task_id="t", python_callable=decorated, op_args=[1],
                                 script="print(1)")


def build_dag() -> Any:
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG(dag_id="daskjob_decorator_test", schedule=None, catchup=False,
             start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:

        @task.daskjob(n_workers=1, deferrable=False)
        def scaled_sum(values: list, scale: int = 1) -> dict:
            from dask.distributed import get_client

            client = get_client()  # the Client the runner connected to the job's cluster
            total = client.submit(sum, values).result() * scale
            print(f"scaled sum is {total}", flush=True)
            return {"total": total, "scheduler": client.scheduler.address}

        @task.daskjob(n_workers=1, deferrable=False)
        def too_big() -> str:
            return "x" * 5000

        scaled_sum(list(range(10)), scale=3)
        too_big()
    return dag


def test_string_arguments_that_look_like_template_files_stay_strings() -> None:
    op = build_dag().get_task("scaled_sum")
    assert op.render_template("input.json", {}) == "input.json"


def test_the_decorator_passes_a_profile_to_the_jobs_spec() -> None:
    from airflow.providers.common.compat.sdk import DAG, task

    with DAG(dag_id="daskjob_decorator_profile", schedule=None, catchup=False,
             start_date=pendulum.datetime(2024, 1, 1, tz="UTC")) as dag:

        @task.daskjob(profile="standard", profile_options={"workers": 2})
        def profiled() -> int:
            return 1

        profiled()
    op = dag.get_task("profiled")
    assert {"profile", "profile_options"} <= set(op.template_fields)
    spec = op.build_manifest("profiled")["spec"]
    assert spec["profile"] == {"name": "standard", "options": {"workers": 2}}
    assert "cluster" not in spec


def test_a_decorated_function_runs_as_the_runner_and_returns_its_result(
        local_control_plane: Any, namespace: str, dkj_connection: Any,
        capfd: pytest.CaptureFixture[str]) -> None:
    dag = build_dag()
    op = dag.get_task("scaled_sum")
    assert isinstance(op, DaskJobDecoratedOperator)
    ti = FakeTI(task_id="scaled_sum")
    result = op.execute({"ti": ti})
    out, err = capfd.readouterr()
    assert result["total"] == 135 and result["scheduler"].startswith("tcp://")
    assert ti.xcoms["job_name"].startswith("scaled-sum-")
    assert "scaled sum is 135" in out + err  # the runner's own line, in the task log
    assert "@task.daskjob: running scaled_sum() on tcp://" in out + err


def test_a_too_large_result_fails_the_task_saying_why_and_what_to_do(
        local_control_plane: Any, namespace: str, dkj_connection: Any) -> None:
    op = build_dag().get_task("too_big")
    with pytest.raises(DaskJobFailed) as failed:
        op.execute({"ti": FakeTI(task_id="too_big")})
    tail = failed.value.log_tail or ""
    assert "the return value of too_big() cannot be the task's result" in tail, tail
    assert "at most 4096 fit" in tail
