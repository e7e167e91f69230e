"""``@task.daskjob``: run a Python function as the runner of a DaskJob; return its result.

The function does not run in the Airflow worker. Its source becomes the runner script of a
DaskJob built like ``DaskJobOperator``'s keyword form (``n_workers``, ``image``,
``resources``, ``env``... are the decorator's arguments), so it runs in a Pod next to its own
Dask cluster, with a ``distributed.Client`` already connected to that cluster's scheduler
(through ``DASK_SCHEDULER_ADDRESS``, which the Dask operator puts in the runner's environment):
``dask.array``/``dask.dataframe`` computations inside the function use the cluster. What the
function returns goes back through ``dask_kube_jobs.set_result`` into the job's
``status.result`` and becomes the task's return value (XCom).

What that implies, on purpose, as for ``@task.kubernetes`` and ``@task.virtualenv``:

* only the function's own source is shipped: import what it needs *inside* it, and it cannot
  see the DAG file's globals;
* arguments travel inside the script as JSON, so they must be JSON values (XComs of other
  tasks usually are); Airflow context variables are not passed;
* the result must be a *small* JSON value: it travels in the runner container's termination
  message, at most ``dask_kube_jobs.result.RESULT_MAX_BYTES`` (4096) bytes; a larger one
  fails the job with a message saying so (return a location instead);
* it is a DaskJobOperator underneath: blocking or ``deferrable``, reattach on retry, the
  runner's log in the task log, ``on_finish_action``, dynamic task mapping (``.expand``).

>>> @task.daskjob(n_workers=2)                                          # doctest: +SKIP
... def total(n: int) -> int:
...     import dask.array as da
...     return int(da.ones((n, n), chunks=n // 4).sum().compute())
"""

from __future__ import annotations

import ast
import inspect
import json
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    TaskDecorator,
    task_decorator_factory,
)

from ..operators.daskjob import DaskJobOperator

# The runner's entry point, appended to the function's source. Names are prefixed so they do
# not shadow anything the function's module-level code might define.
_MAIN = '''

if __name__ == "__main__":
    import json as _dkj_json
    import sys as _dkj_sys

    from dask.distributed import Client as _DkjClient

    from dask_kube_jobs import ResultError as _DkjResultError
    from dask_kube_jobs import set_result as _dkj_set_result

    _dkj_args, _dkj_kwargs = _dkj_json.loads({arguments})
    with _DkjClient() as _dkj_client:  # the job's scheduler: $DASK_SCHEDULER_ADDRESS
        print(f"@task.daskjob: running {name}() on {{_dkj_client.scheduler.address}}",
              flush=True)
        _dkj_value = {name}(*_dkj_args, **_dkj_kwargs)
    try:
        _dkj_set_result(_dkj_value)
    except _DkjResultError as _dkj_exc:
        print(f"@task.daskjob: the return value of {name}() cannot be the task's result: "
              f"{{_dkj_exc}}", file=_dkj_sys.stderr, flush=True)
        _dkj_sys.exit(1)
'''
_PLACEHOLDER = "raise SystemExit('replaced by the decorated function at execute time')\n"


def function_source(func: Callable[..., Any]) -> str:
    """The source of ``func`` without its decorators, as a module defining it.

    Parsed rather than cut by lines, so a decorator spanning several lines (``@task.daskjob(
    n_workers=2, ...)``) goes entirely; the function body is kept as written.
    """
    if inspect.iscoroutinefunction(func):
        raise TypeError(f"@task.daskjob: {func.__name__}() is async; the runner calls the "
                        "function synchronously, so make it a plain def")
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as exc:
        raise TypeError(f"@task.daskjob: cannot read the source of {func.__name__}() "
                        f"({exc}); define it in a .py file") from exc
    try:
        node: ast.stmt | None = ast.parse(source).body[0]
    except SyntaxError:  # a lambda's line cut out of a larger expression
        node = None
    if not isinstance(node, ast.FunctionDef) or node.name != func.__name__:
        raise TypeError(f"@task.daskjob: {func.__name__} must be a function defined with def "
                        "(not a lambda or a callable object)")
    lines = source.splitlines(keepends=True)
    return "".join(lines[node.lineno - 1:node.end_lineno])  # from 'def': decorators sit above


def runner_script(func: Callable[..., Any], args: Sequence[Any],
                  kwargs: dict[str, Any]) -> str:
    """The runner script: the function, then a main that calls it with ``args``/``kwargs``
    inside a ``Client()`` of the job's cluster and stores what it returns."""
    try:
        arguments = json.dumps([list(args), kwargs], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"@task.daskjob: the arguments of {func.__name__}() must be JSON "
                        f"values (they travel inside the runner's script): {exc}") from exc
    return function_source(func) + _MAIN.format(arguments=repr(arguments), name=func.__name__)


class DaskJobDecoratedOperator(DecoratedOperator, DaskJobOperator):
    """The operator behind ``@task.daskjob``: a DaskJobOperator whose script is the function.

    The script is built at execute time, from the rendered ``op_args``/``op_kwargs`` (XComs
    resolved); it is not a template field, so braces in the function's code stay as written.
    """

    custom_operator_name = "@task.daskjob"
    template_fields: Sequence[str] = ("op_args", "op_kwargs", "job_name", "namespace",
                                      "image", "env", "job_spec_kwargs", "profile",
                                      "profile_options")
    template_fields_renderers = {"op_args": "py", "op_kwargs": "py", "env": "json",
                                 "job_spec_kwargs": "json", "profile_options": "json"}
    # No manifest here, so no template files: an argument "data.json" stays a string.
    template_ext: Sequence[str] = ()

    def __init__(self, *, python_callable: Callable[..., Any], **kwargs: Any) -> None:
        for field in ("manifest", "command", "script"):
            if kwargs.get(field) is not None:
                raise ValueError(f"@task.daskjob: {field}= does not apply (the decorated "
                                 "function is the runner); use DaskJobOperator for that")
        function_source(python_callable)  # fail at parse time, not when the task runs
        super().__init__(python_callable=python_callable, script=_PLACEHOLDER, **kwargs)

    def execute(self, context: Any) -> Any:
        self.script = runner_script(self.python_callable, list(self.op_args),
                                    dict(self.op_kwargs))
        return super().execute(context)


def daskjob_task(python_callable: Callable[..., Any] | None = None,
                 multiple_outputs: bool | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.daskjob(...)``: the keyword arguments are DaskJobOperator's (``n_workers``,
    ``image``, ``resources``, ``env``, ``profile``, ``profile_options``, ``job_spec_kwargs``,
    ``deferrable``,
    ``on_finish_action``, ``follow_logs``, ``job_name``, ``namespace``,
    ``dask_kube_jobs_conn_id``) plus every BaseOperator argument."""
    return task_decorator_factory(python_callable=python_callable,
                                  multiple_outputs=multiple_outputs,
                                  decorated_operator_class=DaskJobDecoratedOperator, **kwargs)
