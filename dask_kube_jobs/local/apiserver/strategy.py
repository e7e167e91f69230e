"""What a resource may add to the generic create, update and delete paths: its strategy.

kube-apiserver keeps one generic store (``k8s.io/apiserver/pkg/registry/generic/registry``) and
lets each resource plug in a *strategy*: how it is defaulted and validated, what an update may
not change, what happens before it is stored and after it is removed. ``core.APICore`` is that
generic store here and never asks which kind it is handling; it calls the hooks of the
``Strategy`` that ``strategies.strategy_for`` returns. The base class is the behaviour of every
built-in kind without special needs (defaulting and validation from ``builtins``' tables, which
do nothing for kinds they do not list); ``CustomResourceStrategy`` is the one every custom
resource shares (its CRD's structural schema). Kinds with more to say subclass ``Strategy`` in
``strategies``.

Hooks that only look at objects get the objects; hooks that must read or change server state
(the store, the served resource types, the Service IP range) also get the ``APICore``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...crds import k8s_schemas
from . import builtins, celrules, fieldcheck, objectmeta, structural
from .errors import Cause
from .registry import ResourceType

if TYPE_CHECKING:
    from .core import APICore, DeleteOptions

Obj = dict[str, Any]
Schema = dict[str, Any]


class Strategy:
    """The hooks of one resource, each a no-op (or the generic answer) unless a kind overrides it.

    ``name_check`` is how ``metadata.name`` is validated (DNS-1123 subdomain unless the kind
    says otherwise); ``counts_generation`` makes spec changes bump ``metadata.generation``;
    ``creatable_while_terminating`` lets objects be created in a namespace being deleted."""

    def __init__(self, *, name_check: objectmeta.NameCheck = objectmeta.name_is_dns_subdomain,
                 counts_generation: bool = False, creatable_while_terminating: bool = False,
                 ) -> None:
        self.name_check = name_check
        self.counts_generation = counts_generation
        self.creatable_while_terminating = creatable_while_terminating

    # -- schema, defaulting and validation ------------------------------------------------
    def schema(self, rtype: ResourceType, version: str) -> Schema | None:
        """The OpenAPI schema of the resource at ``version`` (patching and field ownership)."""
        return k8s_schemas.schema_for(rtype.group, version, rtype.kind)

    def prepare(self, core: APICore, rtype: ResourceType, version: str, obj: Obj,
                old: Obj | None, field_validation: str) -> list[Cause]:
        """Default ``obj`` in place and return what is wrong with its fields (ObjectMeta aside).
        ``old`` is the stored object on update, None on create."""
        if field_validation != "Ignore":
            fieldcheck.enforce(field_validation, fieldcheck.unknown_builtin_fields(
                obj, self.schema(rtype, version)))
        ctx = builtins.Context(creating=old is None, old=old, ips=core.ips)
        builtins.default(rtype.key, obj, ctx)
        return builtins.validate(rtype.key, obj, ctx)

    # -- create and update ----------------------------------------------------------------
    def decode(self, rtype: ResourceType, version: str, obj: Obj) -> None:
        """Refuse (400) what kube-apiserver could not even decode into its Go type, such as a
        resource quantity that does not parse; runs before admission and validation."""
        builtins.decode(rtype.key, obj, version)

    def admit(self, core: APICore, obj: Obj) -> None:
        """Admission of a create, run before the name is generated and the object defaulted
        (what kube-apiserver's admission plugins check against other objects); raise to
        refuse."""

    def before_create(self, core: APICore, obj: Obj) -> None:
        """Checks against the server's state once ``obj`` is known to be new; raise to refuse."""

    def prepare_for_update(self, old: Obj, new: Obj) -> None:
        """Carry over what a plain (non-status) update may not change, before validation."""

    def validate_update(self, rtype: ResourceType, name: str, old: Obj, new: Obj) -> None:
        """Refuse a plain (non-status) update that changes an immutable field."""

    def refresh_status(self, obj: Obj) -> None:
        """Set the status the server itself maintains for the kind, on create and update."""

    def after_write(self, core: APICore, obj: Obj) -> None:
        """React to ``obj`` having been stored by a create or an update."""

    def restored(self, core: APICore, obj: Obj) -> None:
        """Take back what ``obj`` held, on finding it in the store when the server starts."""

    # -- delete ---------------------------------------------------------------------------
    def delete(self, core: APICore, rtype: ResourceType, old: Obj,
               opts: DeleteOptions) -> Obj | None:
        """A deletion of the kind's own, returning the object to answer with; None (the
        default) leaves the deletion to the generic path."""
        return None

    def grace_period(self, old: Obj, opts: DeleteOptions) -> int:
        """Seconds the object stays after a delete so its holder can stop it gracefully."""
        return 0

    def deletion_finalizers(self) -> tuple[str, ...]:
        """Finalizers the server adds when deletion starts (its own clean-up)."""
        return ()

    def mark_terminating(self, obj: Obj) -> None:
        """Record in ``obj`` that its deletion has started (it is about to be stored so)."""

    def held(self, obj: Obj) -> bool:
        """Whether a deleted ``obj`` whose finalizers are all gone must still stay."""
        return False

    def after_delete(self, core: APICore, obj: Obj) -> None:
        """Release what ``obj`` held; called just before it leaves the store."""


class CustomResourceStrategy(Strategy):
    """Every custom resource: its CRD's structural schema prunes, defaults and validates it,
    then its CEL rules (``celrules``) are evaluated unless the object has type errors."""

    def __init__(self) -> None:
        super().__init__(counts_generation=True)

    def decode(self, rtype: ResourceType, version: str, obj: Obj) -> None:
        return None  # an unstructured object: any JSON object decodes

    def schema(self, rtype: ResourceType, version: str) -> Schema | None:
        info = rtype.version(version)
        return info.schema if info else None

    def prepare(self, core: APICore, rtype: ResourceType, version: str, obj: Obj,
                old: Obj | None, field_validation: str) -> list[Cause]:
        schema = self.schema(rtype, version)
        if not schema:
            return []
        pruned = structural.prune(obj, schema)
        if field_validation != "Ignore":
            fieldcheck.enforce(field_validation, fieldcheck.pruned_paths(obj, pruned))
        defaulted = structural.apply_defaults(pruned, schema)
        obj.clear()
        obj.update(defaulted)
        causes = structural.validate(obj, schema)
        if any(c.reason in ("FieldValueTypeInvalid", "FieldValueNotSupported") for c in causes):
            return [*causes, celrules.not_checked()]
        return causes + celrules.validate(obj, old, schema)
