"""Build DaskCluster and DaskJob manifests from a few keyword arguments.

``make_cluster_spec``, ``make_worker_spec`` and ``make_scheduler_spec`` take the arguments of the
upstream Dask Kubernetes Operator's builders, with the same names, order and meanings, so code
written for ``dask_kubernetes.operator`` keeps working. Two deliberate differences:

* the containers run the commands current ``distributed`` has, ``dask scheduler`` and
  ``dask worker`` (the ``dask-scheduler``/``dask-worker`` scripts were removed); a
  ``worker_command`` that names the old script is translated;
* arguments are validated here, before anything reaches the API, and a mistake raises
  :class:`SpecError` naming the argument (``resources['requests']: unknown resource name
  'memroy' (did you mean 'memory'?)``) instead of a Pod that never starts.

``make_job_spec`` builds a whole DaskJob: the same cluster plus a runner that runs ``command`` or
a Python ``script``. A script is carried inside the manifest (no ConfigMap to create and clean
up), in the runner's environment variable ``DKJ_SCRIPT``; Linux refuses any single environment
string longer than 128 KiB (``MAX_ARG_STRLEN``), hence :data:`SCRIPT_MAX_BYTES`.

Everything here is pure: dicts in, dicts out, no I/O except reading a script file.
"""

from __future__ import annotations

import difflib
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .contract.names import (
    API_VERSION,
    COMPONENT_SCHEDULER,
    DASHBOARD_PORT,
    DNS1035_LABEL,
    LABEL_CLUSTER,
    LABEL_COMPONENT,
    MAX_CLUSTER_NAME,
    SCHEDULER_PORT,
    scheduler_name,
)
from .contract.quantity import parse_quantity
from .errors import DaskKubeJobsError, ProfileOptionError
from .profile_spec import profile_block

__all__ = [
    "DEFAULT_IMAGE",
    "SCRIPT_ENV",
    "SCRIPT_MAX_BYTES",
    "SpecError",
    "jupyter_enabled",
    "make_cluster_spec",
    "make_job_spec",
    "make_scheduler_spec",
    "make_worker_spec",
]

DEFAULT_IMAGE = "ghcr.io/dask/dask:latest"
SCRIPT_ENV = "DKJ_SCRIPT"
SCRIPT_MAX_BYTES = 128 * 1024 - 1024  # MAX_ARG_STRLEN minus room for the variable's name
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
MAX_NAME_LENGTH = MAX_CLUSTER_NAME  # the scheduler Service '<name>-scheduler' is a DNS label

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_RESOURCE_KEYS = ("limits", "requests", "claims")
_LEGACY_COMMANDS = {"dask-worker": ["dask", "worker"], "dask-scheduler": ["dask", "scheduler"]}
# `dask scheduler --jupyter` serves JupyterLab from the dashboard's HTTP server; click's
# boolean flag pair, so the last of the two on the command line wins.
_JUPYTER_FLAGS = ("--jupyter", "--no-jupyter")

# The runner's entry point for a script: run the source from $DKJ_SCRIPT as __main__, with the
# source registered in linecache so tracebacks in the log show the failing lines.
_SCRIPT_BOOTSTRAP = (
    "import linecache, os, sys\n"
    f"source = os.environ.pop({SCRIPT_ENV!r})\n"
    "name = os.environ.get('DKJ_SCRIPT_NAME', 'job.py')\n"
    "linecache.cache[name] = (len(source), None, source.splitlines(True), name)\n"
    "sys.argv = [name]\n"
    "exec(compile(source, name, 'exec'), {'__name__': '__main__', '__file__': name})\n"
)


class SpecError(DaskKubeJobsError, ValueError):
    """An argument of a spec builder is invalid; ``argument`` names it (``resources``, ``name``,
    ``env['FOO']``...). Raised before any request is made."""

    def __init__(self, argument: str, problem: str) -> None:
        super().__init__(f"{argument}: {problem}")
        self.argument = argument
        self.problem = problem


# ---------------------------------------------------------------- validation

def _check_int(argument: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(argument, f"must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise SpecError(argument, f"must be >= {minimum}, got {value}")
    return value


def _check_bool(argument: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SpecError(argument, f"must be True or False, got {value!r}")
    return value


def _check_name(argument: str, value: Any) -> str:
    if not isinstance(value, str):
        raise SpecError(argument, f"must be a string, got {type(value).__name__}")
    if not value:
        raise SpecError(argument, "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise SpecError(argument, f"{value!r} is {len(value)} characters; at most "
                        f"{MAX_NAME_LENGTH} are allowed so that the scheduler Service "
                        f"'{scheduler_name(value)}' is a valid DNS label")
    if not DNS1035_LABEL.fullmatch(value):
        raise SpecError(argument, f"{value!r} must consist of lower case letters, digits and "
                        "'-', start with a letter and end with a letter or digit (it names a "
                        "Service, a DNS-1035 label), e.g. 'my-cluster'")
    return value


def _check_image(argument: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(argument, f"must be a non-empty image reference, got {value!r}")
    if any(c.isspace() for c in value):
        raise SpecError(argument, f"{value!r} contains whitespace")
    return value


def _check_argv(argument: str, value: Any) -> list[str]:
    """A command as a list of strings; a string is split like a shell would."""
    argv = shlex.split(value) if isinstance(value, str) else value
    if not isinstance(argv, Sequence) or isinstance(argv, (bytes, str)) or not argv:
        raise SpecError(argument, f"must be a non-empty list of strings, got {value!r}")
    bad = [a for a in argv if not isinstance(a, str)]
    if bad:
        raise SpecError(argument, f"every item must be a string, got {bad[0]!r}; "
                        "write numbers as strings, e.g. '2'")
    return list(argv)


def _check_env(value: Any) -> list[dict[str, Any]] | None:
    """``env`` as a dict of names to values, or a list of Kubernetes EnvVar dicts."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        out = []
        for key, val in value.items():
            where = f"env[{key!r}]"
            if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
                raise SpecError(where, "is not a valid environment variable name")
            if isinstance(val, bool) or not isinstance(val, (str, int, float)):
                raise SpecError(where, f"must be a string, got {type(val).__name__} {val!r}")
            out.append({"name": key, "value": str(val)})
        return out
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise SpecError("env", "must be a dict of names to values or a list of "
                        f"{{'name': ..., 'value': ...}} dicts, got {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise SpecError(f"env[{i}]", f"must be a dict with a 'name', got {item!r}")
        if not _ENV_NAME.fullmatch(item["name"]):
            raise SpecError(f"env[{i}]", f"{item['name']!r} is not a valid environment "
                            "variable name")
        unknown = set(item) - {"name", "value", "valueFrom"}
        if unknown:
            raise SpecError(f"env[{i}]", f"unknown key {min(unknown)!r}; an EnvVar has "
                            "'name', 'value' and 'valueFrom'")
        if "value" in item and not isinstance(item["value"], str):
            raise SpecError(f"env[{i}]", f"'value' must be a string, got {item['value']!r}")
    return [dict(item) for item in value]


def _check_resource_name(where: str, name: Any) -> None:
    if not isinstance(name, str):
        raise SpecError(where, f"resource names are strings, got {name!r}")
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-"):
        return
    prefix, slash, rest = name.partition("/")
    if slash and _DNS1123_SUBDOMAIN.fullmatch(prefix) and _QUALIFIED.fullmatch(rest):
        return  # an extended resource such as nvidia.com/gpu
    close = difflib.get_close_matches(name, _STANDARD_RESOURCES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else (
        "; use cpu, memory, ephemeral-storage, hugepages-<size> or a domain-prefixed "
        "extended resource such as nvidia.com/gpu")
    raise SpecError(where, f"unknown resource name {name!r}{hint}")


def _check_resources(value: Any, argument: str = "resources") -> dict[str, Any] | None:
    """``resources`` as a Kubernetes ResourceRequirements dict."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(argument, "must be a dict such as {'requests': {'memory': '2Gi'}, "
                        f"'limits': {{'memory': '4Gi'}}}}, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for key, section in value.items():
        if key not in _RESOURCE_KEYS:
            close = difflib.get_close_matches(str(key), _RESOURCE_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(argument, f"unknown key {key!r}{hint}; use 'requests' and "
                            "'limits'")
        where = f"{argument}[{key!r}]"
        if key == "claims":
            if not isinstance(section, list) or not all(
                    isinstance(c, Mapping) and isinstance(c.get("name"), str) for c in section):
                raise SpecError(where, "must be a list of {'name': ...} dicts")
            out[key] = [dict(c) for c in section]
            continue
        if not isinstance(section, Mapping):
            raise SpecError(where, f"must be a dict of resource names to quantities, got "
                            f"{section!r}")
        for name, quantity in section.items():
            _check_resource_name(where, name)
            text = str(quantity) if isinstance(quantity, (int, float)) and not isinstance(
                quantity, bool) else quantity
            if not isinstance(text, str) or text.startswith("-") or not _is_quantity(text):
                raise SpecError(f"{where}[{name!r}]", f"{quantity!r} is not a quantity; use "
                                "e.g. 2, '500m', '4Gi'")
        out[key] = dict(section)
    return out


def _is_quantity(text: str) -> bool:
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True


def _check_string_map(argument: str, value: Any, *, labels: bool) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(argument, f"must be a dict of strings, got {type(value).__name__}")
    for key, val in value.items():
        prefix, _, name = key.rpartition("/") if isinstance(key, str) else ("", "", "")
        if not name or len(name) > 63 or not _QUALIFIED.fullmatch(name) or (
                prefix and not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
            raise SpecError(argument, f"key {key!r} must be a name of at most 63 characters "
                            "(alphanumerics, '-', '_', '.') with an optional DNS prefix and '/'")
        if not isinstance(val, str):
            raise SpecError(f"{argument}[{key!r}]", f"must be a string, got {val!r}")
        if labels and val and (len(val) > 63 or not _QUALIFIED.fullmatch(val)):
            raise SpecError(f"{argument}[{key!r}]", f"{val!r} is not a valid label value (at "
                            "most 63 alphanumerics, '-', '_' or '.')")
    return dict(value)


def _check_metadata(argument: str, value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise SpecError(argument, "must be a dict with 'labels' and/or 'annotations'")
    unknown = set(value) - {"labels", "annotations"}
    if unknown:
        raise SpecError(argument, f"unknown key {min(unknown)!r}; only 'labels' and "
                        "'annotations' may be set")
    out: dict[str, Any] = {}
    for key in ("labels", "annotations"):
        checked = _check_string_map(f"{argument}[{key!r}]", value.get(key),
                                    labels=key == "labels")
        if checked is not None:
            out[key] = checked
    return out


def _container(name: str, image: str, args: list[str], env: list[dict[str, Any]] | None,
               resources: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "image": image, "args": args}
    if env:
        out["env"] = env
    if resources:
        out["resources"] = resources
    return out


def _worker_argv(worker_command: Any) -> list[str]:
    argv = _check_argv("worker_command", worker_command)
    return _LEGACY_COMMANDS.get(argv[0], argv[:1]) + argv[1:]


# ---------------------------------------------------------------- upstream-compatible builders

def make_worker_spec(image: str = DEFAULT_IMAGE, n_workers: int = 3,
                     resources: dict[str, Any] | None = None,
                     env: dict[str, Any] | list[dict[str, Any]] | None = None,
                     worker_command: str | list[str] = "dask worker") -> dict[str, Any]:
    """The ``worker`` section of a DaskCluster (or a DaskWorkerGroup's ``spec.worker``).

    Each worker is named after its Pod (``$(DASK_WORKER_NAME)``, set by the operator) and serves
    its dashboard on 8788.

    >>> make_worker_spec(n_workers=2)["spec"]["containers"][0]["args"][:4]
    ['dask', 'worker', '--name', '$(DASK_WORKER_NAME)']
    """
    container = _container("worker", _check_image("image", image),
                           _worker_argv(worker_command) + [
                               "--name", "$(DASK_WORKER_NAME)", "--dashboard",
                               "--dashboard-address", "8788"],
                           _check_env(env), _check_resources(resources))
    container["ports"] = [{"name": "http-dashboard", "containerPort": 8788, "protocol": "TCP"}]
    return {"replicas": _check_int("n_workers", n_workers, 0),
            "spec": {"containers": [container]}}


def make_scheduler_spec(cluster_name: str,
                        env: dict[str, Any] | list[dict[str, Any]] | None = None,
                        resources: dict[str, Any] | None = None, image: str = DEFAULT_IMAGE,
                        scheduler_service_type: str = "ClusterIP",
                        jupyter: bool = False) -> dict[str, Any]:
    """The ``scheduler`` section of a DaskCluster: the scheduler Pod and its Service.

    >>> make_scheduler_spec("demo")["service"]["selector"]["dask.org/component"]
    'scheduler'
    """
    _check_name("cluster_name", cluster_name)
    if scheduler_service_type not in SERVICE_TYPES:
        raise SpecError("scheduler_service_type", f"{scheduler_service_type!r} is not one of "
                        + ", ".join(SERVICE_TYPES))
    args = ["dask", "scheduler", "--host", "0.0.0.0"]
    if _check_bool("jupyter", jupyter):
        args.append(_JUPYTER_FLAGS[0])
    container = _container("scheduler", _check_image("image", image), args, _check_env(env),
                           _check_resources(resources))
    health = {"httpGet": {"port": "http-dashboard", "path": "/health"}}
    container.update({
        "ports": [{"name": "tcp-comm", "containerPort": SCHEDULER_PORT, "protocol": "TCP"},
                  {"name": "http-dashboard", "containerPort": DASHBOARD_PORT, "protocol": "TCP"}],
        # Probe often at first so a job's runner starts as soon as the scheduler answers.
        "readinessProbe": {**health, "initialDelaySeconds": 0, "periodSeconds": 1,
                           "timeoutSeconds": 5},
        "livenessProbe": {**health, "initialDelaySeconds": 15, "periodSeconds": 20},
    })
    return {
        "spec": {"containers": [container]},
        "service": {
            "type": scheduler_service_type,
            "selector": {LABEL_CLUSTER: cluster_name, LABEL_COMPONENT: COMPONENT_SCHEDULER},
            "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": SCHEDULER_PORT,
                       "targetPort": "tcp-comm"},
                      {"name": "http-dashboard", "protocol": "TCP", "port": DASHBOARD_PORT,
                       "targetPort": "http-dashboard"}],
        },
    }


def _or(value: Any, default: Any) -> Any:
    """``value``, or ``default`` when it is None (an empty string is a mistake to report)."""
    return default if value is None else value


def jupyter_enabled(cluster: Mapping[str, Any]) -> bool:
    """Whether a DaskCluster's scheduler serves JupyterLab: its scheduler container's command
    or args end up with ``--jupyter`` (what ``make_cluster_spec(jupyter=True)`` writes, and what
    a hand-written manifest adds). Read from the manifest, so a cluster made by anyone says it.

    >>> jupyter_enabled(make_cluster_spec("demo", jupyter=True))
    True
    >>> jupyter_enabled({"spec": {"scheduler": {"spec": {"containers": [
    ...     {"name": "scheduler", "args": ["dask", "scheduler", "--jupyter", "--no-jupyter"]}]}}}})
    False
    """
    pod = (((cluster.get("spec") or {}).get("scheduler") or {}).get("spec")) or {}
    containers = pod.get("containers") or []
    main = next((c for c in containers if c.get("name") == "scheduler"),
                containers[0] if containers else {})
    flags = [a for a in [*(main.get("command") or []), *(main.get("args") or [])]
             if a in _JUPYTER_FLAGS]
    return bool(flags) and flags[-1] == _JUPYTER_FLAGS[0]


def _cluster_body(name: str, image: str | None, n_workers: int | None, resources: Any,
                  env: Any, worker_command: Any, scheduler_service_type: str | None,
                  idle_timeout: int | None, jupyter: bool | None,
                  profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DaskCluster's spec. Without a profile every part is written, None meaning upstream's
    default. With one, only what was given is written, so the profile fills the rest: a default
    written here would override the profile's value, or be refused where the profile locks it.
    """
    if profile is None:
        return {
            "idleTimeout": _check_int("idle_timeout", _or(idle_timeout, 0), 0),
            "worker": make_worker_spec(image=_or(image, DEFAULT_IMAGE),
                                       n_workers=3 if n_workers is None else n_workers,
                                       resources=resources, env=env,
                                       worker_command=_or(worker_command, "dask worker")),
            "scheduler": make_scheduler_spec(
                cluster_name=name, env=env, resources=resources, image=_or(image, DEFAULT_IMAGE),
                scheduler_service_type=_or(scheduler_service_type, "ClusterIP"),
                jupyter=_or(jupyter, False)),
        }
    body: dict[str, Any] = {"profile": profile}
    if idle_timeout is not None:
        body["idleTimeout"] = _check_int("idle_timeout", idle_timeout, 0)
    if any(v is not None for v in (image, resources, env, worker_command,
                                   scheduler_service_type, jupyter)):
        # The standard containers, carrying only what was given: no image unless one was.
        worker = make_worker_spec(image=_or(image, DEFAULT_IMAGE), resources=resources, env=env,
                                  worker_command=_or(worker_command, "dask worker"))
        scheduler = make_scheduler_spec(
            cluster_name=name, env=env, resources=resources, image=_or(image, DEFAULT_IMAGE),
            scheduler_service_type=_or(scheduler_service_type, "ClusterIP"),
            jupyter=_or(jupyter, False))
        if image is None:
            for part in (worker, scheduler):
                del part["spec"]["containers"][0]["image"]
        del worker["replicas"]
        body["worker"], body["scheduler"] = worker, scheduler
    if n_workers is not None:
        body.setdefault("worker", {})["replicas"] = _check_int("n_workers", n_workers, 0)
    return body


def _profile(profile: str | None, profile_options: dict[str, Any] | None) -> dict[str, Any] | None:
    if profile is None:
        if profile_options:
            raise SpecError("profile_options", "are options of a profile; name it with "
                            "profile=...")
        return None
    try:
        return profile_block(profile, profile_options)
    except ProfileOptionError as exc:
        raise SpecError("profile" if exc.option is None else "profile_options",
                        str(exc).split(": ", 1)[-1]) from exc


def make_cluster_spec(name: str, image: str | None = None, n_workers: int | None = None,
                      resources: dict[str, Any] | None = None,
                      env: dict[str, Any] | list[dict[str, Any]] | None = None,
                      worker_command: str | list[str] | None = None,
                      scheduler_service_type: str | None = None,
                      idle_timeout: int | None = None, jupyter: bool | None = None, *,
                      profile: str | None = None,
                      profile_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete DaskCluster manifest. Unset arguments mean upstream's defaults: image
    :data:`DEFAULT_IMAGE`, 3 workers (KubeCluster's default), ``dask worker``, a ClusterIP
    Service, no idle timeout.

    ``resources`` and ``env`` apply to the scheduler and the workers. Edit the result freely
    before creating it, e.g. to add a ``nodeSelector`` to the workers:

    >>> spec = make_cluster_spec(name="selector-example", n_workers=2)
    >>> spec["spec"]["worker"]["spec"]["nodeSelector"] = {"disktype": "ssd"}

    ``profile`` names a DaskClusterProfile (``spec.profile``) and ``profile_options`` sets its
    options; then only the arguments given are written and the profile fills the rest:

    >>> make_cluster_spec("p", profile="standard", profile_options={"worker_memory": "8Gi"})[
    ...     "spec"]
    {'profile': {'name': 'standard', 'options': {'worker_memory': '8Gi'}}}
    """
    _check_name("name", name)
    return {
        "apiVersion": API_VERSION,
        "kind": "DaskCluster",
        "metadata": {"name": name},
        "spec": _cluster_body(name, image, n_workers, resources, env, worker_command,
                              scheduler_service_type, idle_timeout, jupyter,
                              _profile(profile, profile_options)),
    }


# ---------------------------------------------------------------- DaskJob

def _script_source(script: Any) -> tuple[str, str]:
    """(source, file name) of ``script``: Python source, or the path of a ``.py`` file."""
    if isinstance(script, os.PathLike) or (
            isinstance(script, str) and script.endswith(".py") and "\n" not in script):
        path = Path(script)
        try:
            return path.read_text(encoding="utf-8"), path.name
        except OSError as exc:
            raise SpecError("script", f"cannot read {str(path)!r}: {exc.strerror or exc}") \
                from exc
    if not isinstance(script, str) or not script.strip():
        raise SpecError("script", "must be Python source or the path of a .py file")
    return script, "job.py"


def _runner_args(command: Any, script: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if (command is None) == (script is None):
        raise SpecError("command", "give exactly one of command=[argv...] or script=<Python "
                        "source or .py file>")
    if command is not None:
        return _check_argv("command", command), []
    source, filename = _script_source(script)
    try:
        compile(source, filename, "exec")
    except (SyntaxError, ValueError) as exc:
        raise SpecError("script", f"is not valid Python: {exc}") from exc
    size = len(source.encode("utf-8"))
    if size > SCRIPT_MAX_BYTES:
        raise SpecError("script", f"is {size} bytes; at most {SCRIPT_MAX_BYTES} fit in the "
                        "runner's environment. Put larger code in the image (or a volume) and "
                        "use command=['python', 'path/in/image.py'] instead")
    # Kubernetes expands $(VAR) in env values; '$$' is its escape for a literal '$'.
    env = [{"name": SCRIPT_ENV, "value": source.replace("$", "$$")},
           {"name": "DKJ_SCRIPT_NAME", "value": filename}]
    return ["python", "-c", _SCRIPT_BOOTSTRAP], env


def make_job_spec(name: str, *, image: str | None = None,
                  command: str | list[str] | None = None, script: str | os.PathLike[str] | None
                  = None, n_workers: int | None = None, resources: dict[str, Any] | None = None,
                  env: dict[str, Any] | list[dict[str, Any]] | None = None,
                  runner_resources: dict[str, Any] | None = None,
                  worker_command: str | list[str] | None = None,
                  scheduler_service_type: str | None = None, idle_timeout: int | None = None,
                  backoff_limit: int | None = None, active_deadline_seconds: int | None = None,
                  ttl_seconds_after_finished: int | None = None, suspend: bool | None = None,
                  keep_cluster_on_failure: bool | None = None,
                  cluster_metadata: dict[str, Any] | None = None,
                  labels: dict[str, str] | None = None,
                  annotations: dict[str, str] | None = None,
                  cluster_ref: str | None = None, profile: str | None = None,
                  profile_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A complete DaskJob manifest: a cluster plus a runner running ``command`` or ``script``.

    ``resources`` apply to the scheduler and workers, ``runner_resources`` to the runner;
    ``env`` to all three. The policy arguments map to the DaskJob fields of the same meaning
    as in a batch/v1 Job (``backoffLimit``, ``activeDeadlineSeconds``,
    ``ttlSecondsAfterFinished``, ``suspend``) plus ``keepClusterOnFailure``; None leaves the
    CRD's default. ``cluster_metadata`` ({'labels': ..., 'annotations': ...}) goes on the
    DaskCluster, ``labels``/``annotations`` on the DaskJob itself. ``cluster_ref`` runs the
    runner on that existing DaskCluster (``spec.clusterRef``) instead: no cluster is made, so
    the cluster's own arguments (``n_workers``, ``resources``, ``worker_command``, ...) are
    not used, and ``cluster_metadata`` or ``keep_cluster_on_failure`` is an error.
    ``profile``/``profile_options`` name the DaskClusterProfile of the job's cluster
    (``spec.profile``), as for :func:`make_cluster_spec`: the cluster's arguments not given are
    left to the profile (the runner's image stays ``image`` or :data:`DEFAULT_IMAGE`).
    Unset arguments otherwise mean upstream's defaults (3 workers, ``dask worker``...).

    >>> job = make_job_spec("sum", script="import dask; print(1 + 1)", n_workers=2)
    >>> job["spec"]["job"]["spec"]["containers"][0]["args"][:2]
    ['python', '-c']
    """
    _check_name("name", name)
    args, script_env = _runner_args(command, script)
    env_list = _check_env(env) or []
    runner = _container("job", _check_image("image", _or(image, DEFAULT_IMAGE)), args,
                        env_list + script_env,
                        _check_resources(runner_resources, "runner_resources"))
    spec: dict[str, Any] = {"job": {"spec": {"restartPolicy": "Never", "containers": [runner]}}}
    profile_spec = _profile(profile, profile_options)
    if cluster_ref is not None:
        _check_name("cluster_ref", cluster_ref)
        for argument, value in (("cluster_metadata", cluster_metadata),
                                ("keep_cluster_on_failure", keep_cluster_on_failure),
                                ("profile", profile)):
            if value is not None:
                raise SpecError(argument, "is for a cluster made for the job; with cluster_ref "
                                          "the job makes none")
        spec["clusterRef"] = {"name": cluster_ref}
    else:
        body = _cluster_body(name, image, n_workers, resources, env, worker_command,
                             scheduler_service_type, idle_timeout, None, profile_spec)
        if profile_spec is not None:  # a DaskJob names its profile beside the cluster
            spec["profile"] = body.pop("profile")
        if body or profile_spec is None:
            spec["cluster"] = {"spec": body}
    meta = _check_metadata("cluster_metadata", cluster_metadata)
    if meta and cluster_ref is None:
        spec.setdefault("cluster", {"spec": {}})["metadata"] = meta
    for field, argument, value, minimum in (
            ("backoffLimit", "backoff_limit", backoff_limit, 0),
            ("activeDeadlineSeconds", "active_deadline_seconds", active_deadline_seconds, 1),
            ("ttlSecondsAfterFinished", "ttl_seconds_after_finished",
             ttl_seconds_after_finished, 0)):
        if value is not None:
            spec[field] = _check_int(argument, value, minimum)
    for field, argument, value in (("suspend", "suspend", suspend), ("keepClusterOnFailure",
                                   "keep_cluster_on_failure", keep_cluster_on_failure)):
        if value is not None:
            spec[field] = _check_bool(argument, value)
    metadata: dict[str, Any] = {"name": name}
    for key, value in (("labels", _check_string_map("labels", labels, labels=True)),
                       ("annotations", _check_string_map("annotations", annotations,
                                                         labels=False))):
        if value:
            metadata[key] = value
    return {"apiVersion": API_VERSION, "kind": "DaskJob", "metadata": metadata,
            "spec": spec}

