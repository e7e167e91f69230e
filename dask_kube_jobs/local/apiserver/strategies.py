"""The strategies of the resources that need more than the generic REST paths, by resource.

Each entry says what kube-apiserver's registry strategy for that resource does beyond storing
the object: Pods keep ``spec.nodeName`` (only ``pods/binding`` sets it) and stay through their
termination grace period; Namespaces are deleted in two phases and stay while
``spec.finalizers`` remain; Services hand their cluster IP back; CustomResourceDefinitions start
and stop serving their resource, keep ``status`` themselves and clean up their objects before
they go. Smaller differences are settings: the name rule of a kind (DNS labels for Namespaces,
DNS-1035 labels for Services, path segments for RBAC objects), whether it counts
``metadata.generation``, and that core Events may still be written into a terminating namespace
(kube-apiserver's NamespaceLifecycle admission exempts them, so components can still report on
the objects being torn down). Defaulting and validation of built-in kinds stay in ``builtins``'
tables; the hooks themselves are documented on ``strategy.Strategy``.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from . import errors, objectmeta
from .registry import ResourceType, type_from_crd
from .stamps import now, set_condition
from .strategy import CustomResourceStrategy, Strategy

if TYPE_CHECKING:
    from .core import APICore, DeleteOptions

Obj = dict[str, Any]

CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
SERVICEACCOUNT_KEY = ("", "serviceaccounts")


class PodStrategy(Strategy):
    def admit(self, core: APICore, obj: Obj) -> None:
        """ServiceAccount admission: a Pod runs as an account of its namespace that exists.
        The ``default`` one is looked up again for a while (see ``errors.AdmissionRefused``)."""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        namespace = obj["metadata"].get("namespace")
        if not core.store.contains(SERVICEACCOUNT_KEY, namespace, account):
            raise errors.admission_forbidden(
                "pods", obj["metadata"].get("name") or "",
                f"error looking up service account {namespace}/{account}: serviceaccount "
                f'"{account}" not found', attempts=10 if account == "default" else 1)

    def prepare_for_update(self, old: Obj, new: Obj) -> None:
        # nodeName is set through pods/binding only (and status through pods/status, which the
        # generic path already keeps); a plain update carries the stored nodeName over.
        new.setdefault("spec", {})["nodeName"] = (old.get("spec") or {}).get("nodeName")
        if new["spec"]["nodeName"] is None:
            new["spec"].pop("nodeName")

    def grace_period(self, old: Obj, opts: DeleteOptions) -> int:
        spec, status = old.get("spec") or {}, old.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0  # never ran or already finished: nothing to stop gracefully
        if opts.grace_period_seconds is not None:
            return max(0, opts.grace_period_seconds)
        return int(spec.get("terminationGracePeriodSeconds", 30))

    def held(self, obj: Obj) -> bool:
        """A Pod whose grace period still runs stays until its kubelet confirms it has stopped."""
        return int(obj["metadata"].get("deletionGracePeriodSeconds") or 0) > 0


class NamespaceStrategy(Strategy):
    def __init__(self) -> None:
        super().__init__(name_check=objectmeta.name_is_dns_label)

    def delete(self, core: APICore, rtype: ResourceType, old: Obj,
               opts: DeleteOptions) -> Obj | None:
        """Deleting a namespace only marks it Terminating: the namespace controller empties it
        and then releases it through ``namespaces/<name>/finalize``. Propagation policies do
        not apply."""
        if old["metadata"].get("deletionTimestamp"):
            return old
        new = copy.deepcopy(old)
        new["metadata"]["deletionTimestamp"] = now()
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        new.setdefault("status", {})["phase"] = "Terminating"
        if opts.dry_run:
            return new
        if not self.held(new) and not new["metadata"].get("finalizers"):
            core.finish_delete(rtype, new)
        else:
            new["metadata"]["resourceVersion"] = str(core.store.next_rv())
            core.store.put(rtype.key, new)
        return new

    def held(self, obj: Obj) -> bool:
        """A terminating namespace stays (and takes writes) until its spec.finalizers are gone."""
        return bool((obj.get("spec") or {}).get("finalizers"))


class ServiceStrategy(Strategy):
    def __init__(self) -> None:
        super().__init__(name_check=objectmeta.name_is_dns1035_label)

    def after_delete(self, core: APICore, obj: Obj) -> None:
        core.ips.release((obj.get("spec") or {}).get("clusterIP"))

    def restored(self, core: APICore, obj: Obj) -> None:
        ip = (obj.get("spec") or {}).get("clusterIP")
        if ip and ip != "None":
            core.ips.reserve(ip)


class CustomResourceDefinitionStrategy(Strategy):
    """A CRD serves its resource from the moment it is stored until its deletion completes."""

    def __init__(self) -> None:
        super().__init__(counts_generation=True)

    def before_create(self, core: APICore, obj: Obj) -> None:
        spec = obj["spec"]
        existing = core.registry.get(spec["group"], spec["names"]["plural"])
        if existing is not None and existing.crd_name != obj["metadata"]["name"]:
            raise errors.invalid("CustomResourceDefinition", obj["metadata"]["name"], [errors.Cause(
                "spec.names.plural", f'Invalid value: "{spec["names"]["plural"]}": is already served by another resource')], "apiextensions.k8s.io")

    def validate_update(self, rtype: ResourceType, name: str, old: Obj, new: Obj) -> None:
        if new["spec"].get("group") != old["spec"].get("group") or \
                (new["spec"].get("names") or {}).get("plural") != old["spec"]["names"]["plural"]:
            raise errors.invalid(rtype.kind, name, [errors.Cause("spec.group", "Invalid value: field is immutable")], rtype.group)

    def refresh_status(self, obj: Obj) -> None:
        names = obj["spec"]["names"]
        stamp = now()
        old = obj.get("status") or {}
        conditions = old.get("conditions") or []
        conditions = set_condition(conditions, "NamesAccepted", "True", "NoConflicts",
                                   "no conflicts found", stamp)
        conditions = set_condition(conditions, "Established", "True", "InitialNamesAccepted",
                                   "the initial names have been accepted", stamp)
        obj["status"] = {
            "acceptedNames": dict(names.items()),
            "conditions": conditions,
            "storedVersions": sorted({v["name"] for v in obj["spec"]["versions"] if v.get("storage")}
                                     | set(old.get("storedVersions") or [])),
        }

    def after_write(self, core: APICore, obj: Obj) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        core.registry.add(type_from_crd(obj))

    def restored(self, core: APICore, obj: Obj) -> None:
        # Terminating too: its resource is served until the clean-up has removed its objects.
        core.registry.add(type_from_crd(obj))

    def deletion_finalizers(self) -> tuple[str, ...]:
        return (CRD_CLEANUP_FINALIZER,)

    def mark_terminating(self, obj: Obj) -> None:
        # Terminating: the CRD stops accepting new objects; cleanup removes the rest.
        obj.setdefault("status", {})["conditions"] = set_condition(
            (obj.get("status") or {}).get("conditions") or [], "Terminating", "True",
            "InstanceDeletionInProgress", "CustomResource deletion is in progress")

    def after_delete(self, core: APICore, obj: Obj) -> None:
        spec = obj["spec"]
        rtype = core.registry.get(spec["group"], spec["names"]["plural"])
        if rtype is None or rtype.crd_name != obj["metadata"]["name"]:
            return
        for item in core.store.list(rtype.key):
            core.store.remove(rtype.key, item)
        core.registry.remove(spec["group"], spec["names"]["plural"])
        core.store.drop_resource(rtype.key)


DEFAULT = Strategy()
CUSTOM_RESOURCE = CustomResourceStrategy()
_GENERATION = Strategy(counts_generation=True)
_PATH_SEGMENT_NAME = Strategy(name_check=objectmeta.path_segment_name)

#: Built-in resources whose strategy is not ``DEFAULT``, keyed like ``registry.ResourceType.key``.
STRATEGIES: dict[tuple[str, str], Strategy] = {
    ("", "pods"): PodStrategy(),
    ("", "namespaces"): NamespaceStrategy(),
    ("", "services"): ServiceStrategy(),
    ("", "events"): Strategy(creatable_while_terminating=True),
    ("apiextensions.k8s.io", "customresourcedefinitions"): CustomResourceDefinitionStrategy(),
    ("apps", "deployments"): _GENERATION,
    ("apps", "replicasets"): _GENERATION,
    ("autoscaling", "horizontalpodautoscalers"): _GENERATION,
    ("policy", "poddisruptionbudgets"): _GENERATION,
    **{("rbac.authorization.k8s.io", r): _PATH_SEGMENT_NAME
       for r in ("roles", "clusterroles", "rolebindings", "clusterrolebindings")},
}


def strategy_for(rtype: ResourceType) -> Strategy:
    """The strategy of a served resource: its own, the custom-resource one, or the default."""
    if not rtype.builtin:
        return CUSTOM_RESOURCE
    return STRATEGIES.get(rtype.key, DEFAULT)
