"""Reading a DaskJob manifest and checking it before it is sent.

Nothing here does I/O except reading a manifest file, so the job API, the CLI and the Airflow
provider share it, and it is unit-tested without a cluster.

A manifest is checked before it is sent because the API server's answer to a bad one is a 422
listing schema paths, after a round trip, and some mistakes (a missing runner image) are only
noticed by the kubelet minutes later. :func:`check_job_manifest` names the field, in the
manifest's own terms (``spec.job.spec.containers[0].image``), in a :class:`SpecError`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..contract.names import API_VERSION, cluster_name_problem
from ..errors import ProfileOptionError
from ..profile_spec import profile_block
from ..spec import SpecError

__all__ = ["API_VERSION", "check_job_manifest", "load_job_manifest"]



def load_job_manifest(source: Any) -> dict[str, Any]:
    """A DaskJob manifest from a dict, a path to a YAML/JSON file, or YAML text.

    A multi-document file may hold other kinds too; exactly one DaskJob is taken from it.

    >>> load_job_manifest("apiVersion: kubernetes.dask.org/v1\\nkind: DaskJob\\n"
    ...                   "metadata: {name: x}\\nspec: {}")["metadata"]
    {'name': 'x'}
    """
    if isinstance(source, Mapping):
        return _copy(source)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SpecError("manifest", f"cannot read {str(path)!r}: {exc.strerror or exc}") \
                from exc
        where = str(path)
    elif isinstance(source, str):
        text, where = source, "the YAML text"
    else:
        raise SpecError("manifest", "give a dict, a path to a YAML file, or YAML text "
                        f"(got {type(source).__name__})")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError("manifest", f"{where} is not valid YAML: {exc}") from exc
    jobs = [d for d in docs if isinstance(d, dict) and d.get("kind") == "DaskJob"]
    if len(jobs) == 1:
        return jobs[0]
    if not jobs and len(docs) == 1 and isinstance(docs[0], dict):
        return docs[0]  # let check_job_manifest say what is wrong with it
    found = ", ".join(str(d.get("kind")) if isinstance(d, dict) else type(d).__name__
                      for d in docs) or "nothing"
    raise SpecError("manifest", f"{where} must hold exactly one DaskJob (found: {found})")


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and ":" not in text.split("/")[0] or text.endswith(
        (".yaml", ".yml", ".json"))


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _need(obj: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(obj, kind):
        got = "nothing" if obj is None else type(obj).__name__
        raise SpecError(path, f"must be {what} (got {got})")
    return obj


def _check_containers(pod_spec: Any, path: str, *, image_required: bool = True) -> None:
    _need(pod_spec, path, dict, "a PodSpec mapping")
    containers = _need(pod_spec.get("containers"), f"{path}.containers", list,
                       "a list of containers")
    if not containers:
        raise SpecError(f"{path}.containers", "must hold at least one container")
    for i, c in enumerate(containers):
        where = f"{path}.containers[{i}]"
        _need(c, where, dict, "a container mapping")
        for key in ("name", "image") if image_required or "image" in c else ("name",):
            value = c.get(key)
            if not isinstance(value, str) or not value.strip():
                raise SpecError(f"{where}.{key}", "is required (a non-empty string)")
        for key in ("command", "args"):
            if key in c and not (isinstance(c[key], list) and
                                 all(isinstance(a, str) for a in c[key])):
                raise SpecError(f"{where}.{key}", "must be a list of strings")


def _check_profile(spec: Mapping[str, Any]) -> None:
    block = _need(spec.get("profile"), "spec.profile", dict,
                  "a mapping {name: <DaskClusterProfile>, options: {...}}")
    try:
        profile_block(block.get("name"), block.get("options"))
    except ProfileOptionError as exc:
        raise SpecError("spec.profile", str(exc)) from exc


def _check_cluster(spec: Mapping[str, Any]) -> None:
    """With a profile (``spec.profile``) the cluster may be left out, or given in part (the
    operator builds the standard containers and the profile fills them), and a cluster
    container may leave its image to the profile; without one all of it is required."""
    profiled = "profile" in spec
    if profiled:
        _check_profile(spec)
        if spec.get("cluster") is None:
            return
    cluster = _need(spec.get("cluster"), "spec.cluster", dict,
                    "a mapping with a DaskCluster spec (or set spec.clusterRef to use an existing "
                    "one, or spec.profile to have a profile fill it)")
    cspec = _need(cluster.get("spec", {} if profiled else None), "spec.cluster.spec", dict,
                  "a DaskCluster spec")
    for part in ("scheduler", "worker"):
        if profiled and cspec.get(part) is None:
            continue
        block = _need(cspec.get(part), f"spec.cluster.spec.{part}", dict, "a mapping")
        if profiled and block.get("spec") is None:
            continue
        _check_containers(block.get("spec"), f"spec.cluster.spec.{part}.spec",
                          image_required=not profiled)
    replicas = (cspec.get("worker") or {}).get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)
                                 or replicas < 0):
        raise SpecError("spec.cluster.spec.worker.replicas",
                        f"must be a whole number >= 0 (got {replicas!r})")


def _check_cluster_ref(spec: Mapping[str, Any]) -> None:
    if "cluster" in spec:
        raise SpecError("spec.clusterRef", "and spec.cluster are both set; set exactly one: "
                                           "spec.cluster makes a cluster for the job, "
                                           "spec.clusterRef names an existing DaskCluster")
    ref = _need(spec.get("clusterRef"), "spec.clusterRef", dict, "a mapping {name: <DaskCluster>}")
    name = _need(ref.get("name"), "spec.clusterRef.name", str, "the name of a DaskCluster")
    problem = cluster_name_problem(name)
    if problem:
        raise SpecError("spec.clusterRef.name", problem.removeprefix("metadata.name "))


def with_cluster_ref(manifest: Mapping[str, Any], cluster: str) -> dict[str, Any]:
    """A copy of a DaskJob manifest that runs on the existing DaskCluster ``cluster``
    (``spec.clusterRef``) instead of a cluster of its own (``spec.cluster`` is dropped).

    >>> with_cluster_ref({"spec": {"job": {}, "cluster": {}}}, "shared")["spec"]
    {'job': {}, 'clusterRef': {'name': 'shared'}}
    """
    out = _copy(manifest)
    spec = out.get("spec") if isinstance(out.get("spec"), dict) else {}
    spec.pop("cluster", None)
    spec["clusterRef"] = {"name": cluster}
    out["spec"] = spec
    return out


def check_job_manifest(manifest: Mapping[str, Any]) -> None:
    """Raise :class:`SpecError` naming the first field a DaskJob manifest gets wrong.

    Checks what the server or the kubelet would otherwise reject late: kind and apiVersion, the
    name (a DNS label short enough for ``<name>-scheduler``), and that the runner, the
    scheduler and the workers each have containers with a name and an image.

    >>> check_job_manifest({"apiVersion": "v1", "kind": "Pod"})
    Traceback (most recent call last):
    ...
    dask_kube_jobs.spec.SpecError: kind: must be DaskJob (got 'Pod')
    """
    if manifest.get("kind") != "DaskJob":
        raise SpecError("kind", f"must be DaskJob (got {manifest.get('kind')!r})")
    if manifest.get("apiVersion") != API_VERSION:
        raise SpecError("apiVersion", f"must be {API_VERSION} (got "
                        f"{manifest.get('apiVersion')!r})")
    meta = _need(manifest.get("metadata"), "metadata", dict, "a mapping")
    name, generate = meta.get("name"), meta.get("generateName")
    if not name and not generate:
        raise SpecError("metadata.name", "is required")
    if name:
        _need(name, "metadata.name", str, "a string")
        problem = cluster_name_problem(name)
        if problem:
            raise SpecError("metadata.name", problem.removeprefix("metadata.name "))
    spec = _need(manifest.get("spec"), "spec", dict, "a mapping")
    job = _need(spec.get("job"), "spec.job", dict, "a mapping with the runner's Pod spec")
    _check_containers(job.get("spec"), "spec.job.spec")
    if "clusterRef" in spec:
        if "profile" in spec:
            raise SpecError("spec.profile", "shapes a cluster made for the job; with "
                            "spec.clusterRef the job makes none")
        _check_cluster_ref(spec)
    else:
        _check_cluster(spec)
    for key, minimum in (("backoffLimit", 0), ("activeDeadlineSeconds", 1),
                         ("ttlSecondsAfterFinished", 0)):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < minimum):
            raise SpecError(f"spec.{key}", f"must be a whole number >= {minimum} (got {value!r})")
