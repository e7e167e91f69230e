"""The API machinery: what create, read, update, patch and delete mean, independent of HTTP.

This is kube-apiserver's generic registry store: generated names and uids, resourceVersion and
generation bookkeeping, optimistic concurrency, the status and scale subresources, ObjectMeta
validation, finalizers and graceful deletion, the same for every resource. What a resource adds
(defaulting and validation, fields an update keeps, grace periods, CRDs that start serving their
resource the moment they are created) is its strategy's (``strategy``, ``strategies``): nothing
here asks which kind it is handling. Cascading deletion, like on a real cluster, is left to the
garbage-collector controller: this layer only marks owners (``foregroundDeletion`` / ``orphan``
finalizers) the way the apiserver does.

Everything is synchronous and runs on the server's event loop: the in-memory store is the
single writer, so a read-modify-write needs no lock as long as it does not await. What the store
hands out is decoded afresh for each read, so this layer owns every dict it works on.
"""

from __future__ import annotations

import copy
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from . import apply, builtins, errors, listing, objectmeta, patch, structural
from .listing import ListOptions
from .registry import Registry, ResourceType
from .selectors import selector_to_string
from .stamps import later, now
from .store import Obj, Store
from .strategies import strategy_for

NAMESPACE_KEY = ("", "namespaces")
POD_KEY = ("", "pods")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # what kube-apiserver uses for generateName


@dataclass
class DeleteOptions:
    propagation_policy: str | None = None
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False

    @classmethod
    def parse(cls, body: Obj | None, query: dict[str, str]) -> DeleteOptions:
        body = body or {}
        pre = body.get("preconditions") or {}
        grace = body.get("gracePeriodSeconds", query.get("gracePeriodSeconds"))
        policy = body.get("propagationPolicy") or query.get("propagationPolicy")
        if policy is None and body.get("orphanDependents") is True:
            policy = "Orphan"
        dry = body.get("dryRun") or query.get("dryRun")
        if policy not in (None, "Foreground", "Background", "Orphan"):
            raise errors.invalid("DeleteOptions", "", [errors.Cause(
                "propagationPolicy", f'Unsupported value: "{policy}": supported values: '
                '"Foreground", "Background", "Orphan"', "FieldValueNotSupported")])
        return cls(policy, int(grace) if grace not in (None, "") else None,
                   pre.get("uid"), pre.get("resourceVersion"), bool(dry))


class APICore:
    def __init__(self, store: Store | None = None, registry: Registry | None = None) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.ips = builtins.ClusterIPAllocator()

    # -- set-up ----------------------------------------------------------------------------
    def bootstrap(self, extra_objects: list[Obj] = ()) -> None:  # type: ignore[assignment]
        """Create what a fresh cluster has: the initial namespaces and default RBAC. A store
        that already holds objects (a restarted server) keeps them, and each one's strategy
        takes back what it held (a CRD its served resource, a Service its cluster IP)."""
        for key, obj in self.store.iter_all():
            rtype = self.registry.get(*key)
            if rtype is not None:
                strategy_for(rtype).restored(self, obj)
        ns_type = self.registry.get(*NAMESPACE_KEY)
        assert ns_type is not None
        for name in INITIAL_NAMESPACES:
            if not self.store.contains(NAMESPACE_KEY, None, name):
                self.create(ns_type, "v1", None, {"metadata": {"name": name}})
        for obj in extra_objects:
            group, _, version = obj["apiVersion"].rpartition("/")
            rtype = self.registry.by_kind(group, obj["kind"])
            if rtype is None:
                continue
            ns = obj["metadata"].get("namespace")
            if not self.store.contains(rtype.key, ns, obj["metadata"]["name"]):
                self.create(rtype, version, ns, copy.deepcopy(obj))

    # -- helpers ----------------------------------------------------------------------------
    def resolve(self, group: str, version: str, plural: str) -> ResourceType:
        rtype = self.registry.lookup(group, version, plural)
        if rtype is None:
            gv = f"{group}/{version}" if group else version
            raise errors.APIError(404, "NotFound", f"the server could not find the requested resource ({plural}.{gv})")
        return rtype

    def _out(self, rtype: ResourceType, version: str | None, obj: Obj) -> Obj:
        """A copy of a stored object as seen at a version (no conversion between versions)."""
        out = copy.deepcopy(obj)
        out["apiVersion"] = rtype.api_version(version)
        out["kind"] = rtype.kind
        return out

    def _stored(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        if obj is None:
            raise errors.not_found(rtype.plural, name, rtype.group)
        return obj

    def _schema(self, rtype: ResourceType, version: str) -> dict[str, Any] | None:
        return strategy_for(rtype).schema(rtype, version)

    def _check_namespace(self, rtype: ResourceType, namespace: str | None, body: Obj,
                         *, creating: bool) -> str | None:
        meta = body.setdefault("metadata", {})
        if not rtype.namespaced:
            meta.pop("namespace", None)
            return None
        body_ns = meta.get("namespace")
        if namespace and body_ns and body_ns != namespace:
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the request")
        namespace = namespace or body_ns
        if not namespace:
            raise errors.bad_request("an empty namespace may not be set when a resource name is provided")
        meta["namespace"] = namespace
        if creating:
            ns = self.store.get(NAMESPACE_KEY, None, namespace)
            if ns is None:
                raise errors.not_found("namespaces", namespace)
            if ns["metadata"].get("deletionTimestamp") \
                    and not strategy_for(rtype).creatable_while_terminating:
                raise errors.APIError(403, "Forbidden", f'{rtype.plural} "{meta.get("name") or meta.get("generateName", "")}" is forbidden: unable to create new content in namespace {namespace} because it is being terminated', kind=rtype.plural, name=meta.get("name"))
        return namespace

    def _check_kind(self, rtype: ResourceType, version: str, body: Obj) -> None:
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind and kind != rtype.kind:
            raise errors.bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rtype.kind})")
        if api_version and api_version != rtype.api_version(version):
            raise errors.bad_request(f"the API version in the data ({api_version}) does not match the expected API version ({rtype.api_version(version)})")

    def _prepare(self, rtype: ResourceType, version: str, obj: Obj, old: Obj | None,
                 field_validation: str = "Ignore") -> None:
        """Default, prune and validate ``obj`` in place; raise 422 listing every cause."""
        meta = obj["metadata"]
        objectmeta.drop_empty_fields(meta)
        name = meta.get("name") or meta.get("generateName") or ""
        strategy = strategy_for(rtype)
        causes = list(objectmeta.validate_object_meta(meta, namespaced=rtype.namespaced,
                                                      name_check=strategy.name_check))
        causes += strategy.prepare(self, rtype, version, obj, old, field_validation)
        if causes:
            raise errors.invalid(rtype.kind, name, causes, rtype.group)

    # -- reads ------------------------------------------------------------------------------
    def get(self, rtype: ResourceType, version: str, namespace: str | None, name: str) -> Obj:
        """The stored object as seen at ``version``: a fresh dict, the caller's to change."""
        obj = self._stored(rtype, namespace, name)
        obj["apiVersion"], obj["kind"] = rtype.api_version(version), rtype.kind
        return obj

    def list(self, rtype: ResourceType, version: str, namespace: str | None,
             opts: ListOptions) -> Obj:
        """A list as a dict (for Table rows and deletecollection); HTTP lists use ``list_json``."""
        return listing.as_dict(rtype, version, listing.select(self.store, rtype, namespace, opts))

    def list_json(self, rtype: ResourceType, version: str, namespace: str | None,
                  opts: ListOptions) -> bytes:
        """A list's JSON body, built from the objects' stored JSON without encoding them again."""
        return listing.as_json(rtype, version, listing.select(self.store, rtype, namespace, opts))

    # -- writes -----------------------------------------------------------------------------
    def create(self, rtype: ResourceType, version: str, namespace: str | None, body: Any, *,
               dry_run: bool = False, manager: str | None = None,
               field_validation: str = "Ignore", _applied: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        obj = copy.deepcopy(body)
        self._check_kind(rtype, version, obj)
        namespace = self._check_namespace(rtype, namespace, obj, creating=True)
        meta = obj["metadata"]
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        strategy_for(rtype).decode(rtype, version, obj)
        strategy_for(rtype).admit(self, obj)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = self._generate_name(rtype, namespace, meta["generateName"])
        for field in ("uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "creationTimestamp", "selfLink"):
            meta.pop(field, None)
        if not _applied:
            meta.pop("managedFields", None)  # only server-side apply hands us ownership records
        obj["apiVersion"] = rtype.api_version(version)
        obj["kind"] = rtype.kind
        if rtype.has_status(version):
            obj.pop("status", None)
        self._prepare(rtype, version, obj, None, field_validation)
        meta = obj["metadata"]  # defaulting and pruning may have rebuilt the object
        name = meta["name"]
        if self.store.contains(rtype.key, namespace, name):
            raise errors.already_exists(rtype.plural, name, rtype.group)
        strategy = strategy_for(rtype)
        strategy.before_create(self, obj)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if strategy.counts_generation:
            meta["generation"] = 1
        if manager:
            obj = apply.record_update(None, obj, manager=manager,
                                      schema=self._schema(rtype, version), now=now())
        strategy.refresh_status(obj)
        if dry_run:
            return self._out(rtype, version, obj)
        obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.key, obj)
        strategy.after_write(self, obj)
        return self._out(rtype, version, obj)

    def _generate_name(self, rtype: ResourceType, namespace: str | None, prefix: str) -> str:
        for _ in range(16):
            name = prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))
            if not self.store.contains(rtype.key, namespace, name):
                return name
        raise errors.APIError(500, "ServerTimeout", "could not generate a unique name; retry")

    def update(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
               body: Any, *, subresource: str = "", dry_run: bool = False,
               manager: str | None = None, field_validation: str = "Ignore") -> Obj:
        if not isinstance(body, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        old = self._stored(rtype, namespace, name)
        strategy = strategy_for(rtype)
        new = copy.deepcopy(body)
        self._check_kind(rtype, version, new)
        meta = new.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise errors.bad_request("metadata must be an object")
        if meta.get("name", name) != name:
            raise errors.bad_request(f'the name of the object ({meta.get("name")}) does not match the name on the URL ({name})')
        sent_rv = meta.get("resourceVersion")
        old_meta = old["metadata"]
        if sent_rv and sent_rv != old_meta["resourceVersion"]:
            raise errors.conflict(rtype.plural, name, rtype.group)
        if meta.get("uid") and meta["uid"] != old_meta["uid"]:
            raise errors.conflict(rtype.plural, name, rtype.group, f'Precondition failed: UID in precondition: {meta["uid"]}, UID in object meta: {old_meta["uid"]}')
        new["apiVersion"], new["kind"] = rtype.api_version(version), rtype.kind
        if subresource == "status":
            # Only .status changes through /status; the rest of the object stays as stored.
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        else:
            if rtype.has_status(version):
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            strategy.prepare_for_update(old, new)
        for field in ("uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation"):
            if field in old_meta:
                new["metadata"][field] = old_meta[field]
            else:
                new["metadata"].pop(field, None)
        new["metadata"]["namespace"] = old_meta.get("namespace")
        if not rtype.namespaced:
            new["metadata"].pop("namespace", None)
        if not new["metadata"].get("managedFields") and old_meta.get("managedFields"):
            new["metadata"]["managedFields"] = old_meta["managedFields"]
        if old_meta.get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise errors.invalid(rtype.kind, name, [errors.Cause(
                    "metadata.finalizers", f"Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)}",
                    "FieldValueForbidden")], rtype.group)
        strategy.decode(rtype, version, new)
        if subresource != "status":
            strategy.validate_update(rtype, name, old, new)
        self._prepare(rtype, version, new, old, field_validation)
        strategy.refresh_status(new)
        if _spec_changed(old, new) and ("generation" in old_meta):
            new["metadata"]["generation"] = int(old_meta.get("generation", 1)) + 1
        if manager:
            new = apply.record_update(old, new, manager=manager,
                                      schema=self._schema(rtype, version), now=now())
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        if _same(old, new):
            return self._out(rtype, version, old)  # a no-op write is not a write
        if dry_run:
            return self._out(rtype, version, new)
        if old_meta.get("deletionTimestamp") and not new["metadata"].get("finalizers") \
                and not strategy.held(new):
            self.finish_delete(rtype, new)
            return self._out(rtype, version, new)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.key, new)
        strategy.after_write(self, new)
        return self._out(rtype, version, new)

    def patch(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
              content_type: str, raw: bytes, *, subresource: str = "", dry_run: bool = False,
              manager: str | None = None, force: bool = False,
              field_validation: str = "Ignore") -> tuple[Obj, bool]:
        """Apply a patch; returns the object and whether it was created (server-side apply)."""
        stored = self.store.get(rtype.key, namespace if rtype.namespaced else None, name)
        apply = content_type.startswith("application/apply-patch")
        if apply and not manager:
            raise errors.bad_request("PATCH requests with application/apply-patch+yaml require fieldManager to be set")
        if stored is None and not apply:
            raise errors.not_found(rtype.plural, name, rtype.group)
        target = self._out(rtype, version, stored) if stored is not None else None
        result = patch.apply_patch_body(
            content_type, target, raw, schema=self._schema(rtype, version),
            builtin=rtype.builtin, kind=rtype.kind, name=name, manager=manager, force=force,
            now=now(),
        )
        if not isinstance(result, dict):
            raise errors.bad_request("the patch produced something other than an object")
        if stored is None:
            result.setdefault("metadata", {})["name"] = name
            return self.create(rtype, version, namespace, result, dry_run=dry_run,
                               field_validation=field_validation, _applied=True), True
        if result.get("metadata", {}).get("name", name) != name:
            raise errors.bad_request("the name of the object may not be changed by a patch")
        # The patched object carries the stored resourceVersion unless the patch named another
        # one itself, so only a patch that names a stale version conflicts.
        obj = self.update(rtype, version, namespace, name, result, subresource=subresource,
                          dry_run=dry_run, manager=manager if not apply else None,
                          field_validation=field_validation)
        return obj, False

    # -- scale ------------------------------------------------------------------------------
    def get_scale(self, rtype: ResourceType, version: str, namespace: str | None, name: str) -> Obj:
        spec = rtype.scale(version)
        if spec is None:
            raise errors.not_found(f"{rtype.plural}/scale", name, rtype.group)
        obj = self._stored(rtype, namespace, name)
        meta = obj["metadata"]
        selector = structural.get_path(obj, spec.label_selector_path) if spec.label_selector_path else None
        if isinstance(selector, dict):
            selector = selector_to_string(selector)
        status: Obj = {"replicas": int(structural.get_path(obj, spec.status_replicas_path) or 0)}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                              "creationTimestamp") if k in meta},
            "spec": {"replicas": int(structural.get_path(obj, spec.spec_replicas_path) or 0)},
            "status": status,
        }

    def update_scale(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
                     scale: Any, *, dry_run: bool = False) -> Obj:
        spec = rtype.scale(version)
        if spec is None:
            raise errors.not_found(f"{rtype.plural}/scale", name, rtype.group)
        if not isinstance(scale, dict):
            raise errors.bad_request("the body must be an autoscaling/v1 Scale")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise errors.invalid("Scale", name, [errors.Cause("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")], "autoscaling")
        stored = self._stored(rtype, namespace, name)
        sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != stored["metadata"]["resourceVersion"]:
            raise errors.conflict(rtype.plural, name, rtype.group)
        obj = structural.set_path(self._out(rtype, version, stored), spec.spec_replicas_path, replicas)
        obj["metadata"].pop("resourceVersion", None)
        self.update(rtype, version, namespace, name, obj, dry_run=dry_run)
        return self.get_scale(rtype, version, namespace, name)

    def patch_scale(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
                    content_type: str, raw: bytes, *, dry_run: bool = False) -> Obj:
        current = self.get_scale(rtype, version, namespace, name)
        ctype = "application/merge-patch+json" if "strategic" in content_type else content_type
        result = patch.apply_patch_body(ctype, current, raw, schema=None, builtin=False,
                                        kind="Scale", name=name, manager=None, force=False,
                                        now=now())
        return self.update_scale(rtype, version, namespace, name, result, dry_run=dry_run)

    # -- pods/binding -----------------------------------------------------------------------
    def bind(self, namespace: str, name: str, binding: Any) -> Obj:
        rtype = self.registry.get(*POD_KEY)
        assert rtype is not None
        target = (binding or {}).get("target") or {}
        node = target.get("name")
        if not node:
            raise errors.invalid("Binding", name, [errors.Cause("target.name", "Required value", "FieldValueRequired")])
        old = self._stored(rtype, namespace, name)
        if (old.get("spec") or {}).get("nodeName"):
            raise errors.conflict("pods/binding", name, "", f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"')
        if old["metadata"].get("deletionTimestamp"):
            raise errors.conflict("pods/binding", name, "", "pod is being deleted, cannot be assigned to a host")
        new = copy.deepcopy(old)
        new["spec"]["nodeName"] = node
        conditions = [c for c in (new.get("status") or {}).get("conditions") or []
                      if c.get("type") != "PodScheduled"]
        conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                           "lastTransitionTime": now()})
        new.setdefault("status", {})["conditions"] = conditions
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.key, new)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}

    # -- delete -----------------------------------------------------------------------------
    def delete(self, rtype: ResourceType, version: str, namespace: str | None, name: str,
               opts: DeleteOptions) -> Obj:
        old = self._stored(rtype, namespace, name)
        meta = old["metadata"]
        if opts.precondition_uid and opts.precondition_uid != meta["uid"]:
            raise errors.conflict(rtype.plural, name, rtype.group, f"Precondition failed: UID in precondition: {opts.precondition_uid}, UID in object meta: {meta['uid']}")
        if opts.precondition_rv and opts.precondition_rv != meta["resourceVersion"]:
            raise errors.conflict(rtype.plural, name, rtype.group, f"Precondition failed: ResourceVersion in precondition: {opts.precondition_rv}, ResourceVersion in meta: {meta['resourceVersion']}")
        strategy = strategy_for(rtype)
        own = strategy.delete(self, rtype, old, opts)
        if own is not None:
            return self._out(rtype, version, own)
        new = copy.deepcopy(old)
        nmeta = new["metadata"]
        finalizers = list(nmeta.get("finalizers") or [])
        deleting = bool(meta.get("deletionTimestamp"))
        policy = opts.propagation_policy
        if policy == "Foreground" and "foregroundDeletion" not in finalizers and not deleting:
            finalizers.append("foregroundDeletion")
        elif policy == "Orphan" and "orphan" not in finalizers and not deleting:
            finalizers.append("orphan")
        grace = strategy.grace_period(old, opts)
        if not deleting:
            finalizers += [f for f in strategy.deletion_finalizers() if f not in finalizers]
        if finalizers or grace > 0:
            if deleting and grace >= int(meta.get("deletionGracePeriodSeconds") or 0):
                return self._out(rtype, version, old)  # already being deleted
            nmeta["finalizers"] = finalizers
            nmeta["deletionTimestamp"] = later(grace) if grace else now()
            nmeta["deletionGracePeriodSeconds"] = grace
            if opts.dry_run:
                return self._out(rtype, version, new)
            strategy.mark_terminating(new)
            nmeta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(rtype.key, new)
            return self._out(rtype, version, new)
        if opts.dry_run:
            return self._out(rtype, version, old)
        self.finish_delete(rtype, old)
        return self._out(rtype, version, old)

    def finalize_namespace(self, name: str, body: Any) -> Obj:
        """``PUT namespaces/<name>/finalize``: how the namespace controller releases it."""
        rtype = self.registry.get(*NAMESPACE_KEY)
        assert rtype is not None
        old = self._stored(rtype, None, name)
        new = copy.deepcopy(old)
        new.setdefault("spec", {})["finalizers"] = list(((body or {}).get("spec") or {}).get("finalizers") or [])
        if new["metadata"].get("deletionTimestamp") and not new["spec"]["finalizers"] \
                and not new["metadata"].get("finalizers"):
            self.finish_delete(rtype, new)
            return self._out(rtype, "v1", new)
        new["metadata"]["resourceVersion"] = str(self.store.next_rv())
        self.store.put(rtype.key, new)
        return self._out(rtype, "v1", new)

    def finish_delete(self, rtype: ResourceType, obj: Obj) -> None:
        """Remove ``obj`` for good, once nothing holds it any more."""
        strategy_for(rtype).after_delete(self, obj)
        self.store.remove(rtype.key, obj)

    def delete_collection(self, rtype: ResourceType, version: str, namespace: str | None,
                          lopts: ListOptions, dopts: DeleteOptions) -> Obj:
        listed = self.list(rtype, version, namespace, lopts)
        items = []
        for item in listed["items"]:
            meta = item["metadata"]
            try:
                items.append(self.delete(rtype, version, meta.get("namespace"), meta["name"], dopts))
            except errors.APIError as exc:
                if exc.code != 404:
                    raise
        return {**listed, "items": items}


def _spec_changed(old: Obj, new: Obj) -> bool:
    ignore = {"metadata", "status", "apiVersion", "kind"}
    return {k: v for k, v in old.items() if k not in ignore} != \
        {k: v for k, v in new.items() if k not in ignore}


def _same(old: Obj, new: Obj) -> bool:
    def strip(o: Obj) -> Obj:
        meta = {k: v for k, v in o["metadata"].items() if k not in ("managedFields", "resourceVersion")}
        return {**o, "metadata": meta}
    return strip(old) == strip(new)

