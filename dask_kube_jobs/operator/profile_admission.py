"""Which profile a DaskCluster or DaskJob gets at admission, read from the operator's profile
informer (no GET per pass), and what becomes of it: nothing to apply, a wait for a profile
that does not exist yet, a refusal, or the resolved cluster spec with the pin to record.

The resolution itself is ``profiles.py`` (pure); this module does the reading. A job's own
cluster is resolved against the profile its job pinned (``status.profile``), so the two agree
even if the profile changed in between, and is never given the namespace default a second
time: the job decided.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from ..contract import names
from ..contract.api_resources import DASKCLUSTERPROFILES, DASKJOBS, NAMESPACES
from ..kube import Client, Forbidden, Informer, NotFound
from . import profiles

log = logging.getLogger("dask_kube_jobs.operator")

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (namespace, kind, name)

#: How soon a job's cluster looks again for the profile its job is pinning.
PIN_WAIT_SECONDS = 1.0


class ProfileSource:
    """The cluster's DaskClusterProfiles, kept by an informer, and who waits for which one.

    On a cluster without the DaskClusterProfile CRD (an operator upgraded before its CRDs) the
    informer keeps retrying, which picks the CRD up once it is installed; meanwhile an object
    naming a profile waits as ProfileNotFound, and the log says why once.
    """

    def __init__(self, client: Client, wake: Any) -> None:
        self.client = client
        self.informer = Informer(client, DASKCLUSTERPROFILES)
        self.informer.on_change(self._on_change)
        self._wake = wake
        self.waiting: dict[str, set[Key]] = {}
        self._namespace_forbidden = False

    async def start(self) -> asyncio.Task[None]:
        try:
            await self.client.list(DASKCLUSTERPROFILES)
        except NotFound:
            log.warning("the DaskClusterProfile CRD (%s) is not installed: DaskClusters and "
                        "DaskJobs that name a profile wait (ProfileNotFound) until it is; "
                        "install the chart's CRDs", DASKCLUSTERPROFILES)
        except Forbidden:
            log.warning("the operator may not list %s: DaskClusters and DaskJobs that name a "
                        "profile wait (ProfileNotFound); grant it get/list/watch (the chart's "
                        "ClusterRole does)", DASKCLUSTERPROFILES)
        return asyncio.create_task(self.informer.run(), name="profiles-informer")

    def _on_change(self, kind: str, profile: Obj, old: Obj | None) -> None:
        if kind == "DELETED":
            return
        for key in self.waiting.pop(profile["metadata"]["name"], set()):
            self._wake(*key)

    async def get(self, name: str) -> Obj | None:
        """The profile; None while it does not exist, or cannot be read (the CRD missing,
        or no right to read it: ``start`` logged which)."""
        if self.informer.synced.is_set():
            return self.informer.get(None, name)
        try:
            return await self.client.get(DASKCLUSTERPROFILES, None, name)
        except Forbidden:
            return None

    def wait_for(self, name: str, key: Key) -> None:
        self.waiting.setdefault(name, set()).add(key)

    async def namespace(self, name: str) -> Obj | None:
        """The Namespace object (its default-profile annotation and labels)."""
        try:
            return await self.client.get(NAMESPACES, None, name)
        except Forbidden:
            if not self._namespace_forbidden:
                self._namespace_forbidden = True
                log.warning("the operator may not get namespaces: namespace default profiles "
                            "and namespaceSelectors cannot be read; grant it get on namespaces "
                            "(the chart's ClusterRole does)")
            return {"metadata": {"name": name}}


@dataclass
class Outcome:
    """What admission makes of an object's profile."""

    state: str  # "none", "waiting", "refused" or "resolved"
    message: str = ""
    reason: str = ""
    spec: Obj | None = None  # the resolved cluster spec
    pin: Obj | None = None  # status.profile
    delay: float | None = None  # waiting: when to look again (None: the limits' recheck)


NONE = Outcome("none")


async def _resolve(source: ProfileSource, key: Key, choice: profiles.Choice, cluster_spec: Obj,
                   *, cluster: str, namespace: Obj | None, ns: str, prefix: str,
                   options_path: str) -> Outcome:
    profile = await source.get(choice.name)
    if profile is None:
        source.wait_for(choice.name, key)
        return Outcome("waiting", profiles.not_found_message(choice), profiles.REASON_NOT_FOUND)
    body = profile.get("spec") or {}
    if body.get("namespaceSelector") is not None and namespace is None:
        namespace = await source.namespace(ns)
    resolved = profiles.resolve(cluster_spec, choice.name, body, choice.options, cluster=cluster,
                                namespace=namespace if body.get("namespaceSelector") is not None
                                else None, prefix=prefix, options_path=options_path)
    if resolved.violations:
        return Outcome("refused", profiles.summary(resolved.violations), profiles.REASON_VIOLATION)
    return Outcome("resolved", spec=resolved.spec, pin=profiles.pin(choice.name, profile, resolved))


async def _choice(source: ProfileSource, ref: Obj | None, ns: str) -> tuple[profiles.Choice | None, Obj | None]:
    if ref and ref.get("name"):
        return profiles.chosen(ref, None, names.ANNOTATION_DEFAULT_PROFILE), None
    namespace = await source.namespace(ns)
    return profiles.chosen(None, namespace, names.ANNOTATION_DEFAULT_PROFILE), namespace


async def admit_job(source: ProfileSource, job: Obj) -> Outcome:
    """A DaskJob's profile at admission; its cluster spec is ``spec.cluster.spec``."""
    meta, spec = job["metadata"], job.get("spec") or {}
    if (spec.get("clusterRef") or {}).get("name"):
        return NONE  # an existing cluster: shaped when it was admitted
    choice, namespace = await _choice(source, spec.get("profile"), meta["namespace"])
    if choice is None:
        return NONE
    return await _resolve(source, (meta["namespace"], "DaskJob", meta["name"]), choice,
                          (spec.get("cluster") or {}).get("spec") or {},
                          cluster=names.job_cluster_name(meta["name"]), namespace=namespace,
                          ns=meta["namespace"], prefix="spec.cluster.spec.",
                          options_path="spec.profile.options")


async def admit_cluster(source: ProfileSource, rt: Any, cluster: Obj, *, job_owned: bool) -> Outcome:
    """A DaskCluster's profile at admission."""
    meta, spec = cluster["metadata"], cluster.get("spec") or {}
    ns, name = meta["namespace"], meta["name"]
    ref = spec.get("profile")
    job = await _owning_job(rt, cluster) if job_owned else None
    if job is not None:  # the job decided, at its own admission
        pin = profiles.pinned(job)
        if pin is None:
            if not ref:
                return NONE  # the job has no profile
            # The job's status is on its way (it pins before it makes the cluster).
            return Outcome("waiting", f"waiting for DaskJob {job['metadata']['name']} to record "
                           "its profile", profiles.REASON_NOT_FOUND, delay=PIN_WAIT_SECONDS)
        options = (ref or {}).get("options") or pin.get("options") or {}
        resolved = profiles.resolve(spec, pin["name"], pin.get("spec") or {}, options, cluster=name)
        if resolved.violations:
            return Outcome("refused", profiles.summary(resolved.violations),
                           profiles.REASON_VIOLATION)
        return Outcome("resolved", spec=resolved.spec, pin=dict(pin))
    choice, namespace = await _choice(source, ref, ns)
    if choice is None:
        return NONE
    return await _resolve(source, (ns, "DaskCluster", name), choice, spec, cluster=name,
                          namespace=namespace, ns=ns, prefix="spec.",
                          options_path="spec.profile.options")


async def _owning_job(rt: Any, cluster: Obj) -> Obj | None:
    """The DaskJob that made ``cluster`` (its controller, by uid), or None: a cluster that only
    claims a job it does not belong to gets no job's decision."""
    meta = cluster["metadata"]
    owner = next((r for r in meta.get("ownerReferences") or []
                  if r.get("kind") == DASKJOBS.kind and r.get("controller")), None)
    if owner is None:
        return None
    job = await rt.read(DASKJOBS, meta["namespace"], owner.get("name") or "")
    if job is None or job["metadata"].get("uid") != owner.get("uid"):
        return None
    return job


def effective(obj: Obj, cluster_spec: Obj, *, cluster: str, prefix: str) -> profiles.Resolved | None:
    """``cluster_spec`` resolved against the profile pinned in ``obj``'s status (None: none is
    pinned). The same every pass, whatever the profile says now."""
    pin = profiles.pinned(obj)
    if pin is None:
        return None
    options = ((obj.get("spec") or {}).get("profile") or {}).get("options")
    if options is None:
        options = {}
    return profiles.resolve(cluster_spec, pin["name"], pin.get("spec") or {}, options,
                            cluster=cluster, prefix=prefix)
