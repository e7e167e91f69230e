"""What ``dask-kube-jobs run FILE`` applies besides its DaskJob, and how.

A job's file often carries what its Pods mount (``examples/result-job.yaml``: a ConfigMap with
the runner script, then the DaskJob). ``run`` applies every document in the file's order, as
``kubectl apply -f`` would, and reports each as kubectl does (``configmap/x created``,
``configured`` or ``unchanged``). It only applies what a job's Pods read and a user who may
create DaskJobs may usually create beside them: ConfigMaps and Secrets, in the job's namespace.
A file with anything else (a Role, a Namespace, a second DaskJob) is refused before anything is
applied, naming those documents, so nothing is left half-applied; ``kubectl apply`` is the tool
for those.

The DaskJob itself is created, never replaced (``--replace`` deletes the old one first), as
before; the other objects are updated in place when they exist, so running the same file again
works.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .contract.api_resources import CONFIGMAPS, Resource
from .kube import AlreadyExists, Client
from .spec import SpecError

SECRETS = Resource("", "v1", "secrets", "Secret", True)
#: What ``run`` applies besides the DaskJob, by (apiVersion, kind).
APPLICABLE: dict[tuple[str, str], Resource] = {
    ("v1", "ConfigMap"): CONFIGMAPS, ("v1", "Secret"): SECRETS}
#: The fields compared to tell ``unchanged`` from ``configured``.
_PAYLOAD = ("data", "binaryData", "stringData", "type", "immutable")


@dataclass
class RunFile:
    """A file's documents in order; ``job_index`` is the DaskJob's place among them."""

    documents: list[dict[str, Any]]
    job_index: int

    @property
    def job(self) -> dict[str, Any]:
        return self.documents[self.job_index]

    @property
    def before(self) -> list[dict[str, Any]]:
        return self.documents[:self.job_index]

    @property
    def after(self) -> list[dict[str, Any]]:
        return self.documents[self.job_index + 1:]


def _label(doc: Any, number: int) -> str:
    if not isinstance(doc, dict):
        return f"document {number} (a {type(doc).__name__}, not an object)"
    name = (doc.get("metadata") or {}).get("name") or "(no name)"
    return f"{doc.get('kind') or '(no kind)'}/{name} (document {number})"


def read_run_file(path: str) -> RunFile:
    """The documents of ``path``, or :class:`SpecError` naming every one ``run`` would not
    apply. A file with one document is taken as the DaskJob (the manifest check says what is
    wrong with it if it is not one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("manifest", f"cannot read {path!r}: {exc.strerror or exc}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise SpecError("manifest", f"{path} is not valid YAML: {exc}") from exc
    if len(docs) == 1 and isinstance(docs[0], dict):
        return RunFile(docs, 0)
    jobs = [i for i, d in enumerate(docs) if isinstance(d, dict) and d.get("kind") == "DaskJob"]
    refused = [_label(d, i + 1) for i, d in enumerate(docs)
               if i not in jobs[:1] and not (isinstance(d, dict) and
                                             (d.get("apiVersion"), d.get("kind")) in APPLICABLE)]
    if len(jobs) != 1 or refused:
        found = "no DaskJob" if not jobs else ", ".join(refused)
        raise SpecError("FILE", f"{path}: `run` would not apply {found}; it applies one "
                        "DaskJob and the ConfigMaps and Secrets beside it (apply anything else "
                        "with kubectl apply -f first, then run the DaskJob alone)")
    return RunFile(docs, jobs[0])


def check_namespaces(docs: list[dict[str, Any]], namespace: str | None) -> None:
    """Refuse, before anything is applied, a document whose own namespace is not ``--namespace``
    (kubectl refuses the same)."""
    for number, doc in enumerate(docs, 1):
        own = (doc.get("metadata") or {}).get("namespace")
        if namespace and own and own != namespace:
            raise SpecError("metadata.namespace", f"{_label(doc, number)} is for namespace "
                            f"{own!r} but --namespace {namespace!r} was given; remove one")


async def apply(client: Client, doc: dict[str, Any], namespace: str) -> str:
    """Create ``doc`` in ``namespace``, or update it if it exists; kubectl's words for what
    happened (``configmap/x created``)."""
    res = APPLICABLE[(doc["apiVersion"], doc["kind"])]
    body = {**doc, "metadata": {**(doc.get("metadata") or {}), "namespace": namespace}}
    name = body["metadata"].get("name")
    if not name:
        raise SpecError("metadata.name", f"the {doc['kind']} has no name")
    what = f"{res.kind.lower()}/{name}"
    try:
        await client.create(res, namespace, body)
        return f"{what} created"
    except AlreadyExists:
        pass
    current = await client.get(res, namespace, name) or {}
    if all(current.get(f) == body.get(f) for f in _PAYLOAD):
        return f"{what} unchanged"
    body["metadata"]["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
    await client.replace(res, namespace, name, body)
    return f"{what} configured"
