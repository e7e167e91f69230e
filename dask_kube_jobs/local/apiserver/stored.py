"""One object as the store holds it: its JSON, encoded once, and the few facts read without it.

An object is encoded once, when it is written, and those bytes are all the store keeps: the
SQLite file gets them, a list answer joins them, a watch line wraps them, and the event log
shares them with the store instead of holding a second copy. A Python dict of a defaulted Pod
with its ``managedFields`` takes about four times its JSON, and every list and watch event
used to encode it again; a reader that needs a dict decodes the bytes (``decode``), which
also gives it a copy of its own to change.

Label selectors run on every list and watch, so each object keeps its labels decoded
(usually a handful of short strings); a field selector decodes the object, unless it asks
only for the name and namespace kept here.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .fieldselectors import FieldSelector
from .selectors import LabelSelector

Obj = dict[str, Any]

_NO_LABELS: dict[str, str] = {}
_METADATA_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def encode(obj: Obj) -> bytes:
    """The canonical JSON of an object: compact, UTF-8 (what the store, lists and watches serve)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Stored:
    """An immutable stored object: ``raw`` is its JSON; the rest is read from it once."""

    __slots__ = ("raw", "namespace", "name", "labels", "api_version", "kind")

    def __init__(self, raw: bytes, obj: Obj) -> None:
        meta = obj["metadata"]
        self.raw = raw
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta["name"]
        labels = meta.get("labels")
        self.labels: dict[str, str] = dict(labels) if isinstance(labels, dict) and labels \
            else _NO_LABELS
        # The same few strings for every object of a kind: share them.
        self.api_version: str = sys.intern(str(obj.get("apiVersion") or ""))
        self.kind: str = sys.intern(str(obj.get("kind") or ""))

    @classmethod
    def of(cls, obj: Obj) -> Stored:
        """Encode a finished object; ``obj`` may be changed afterwards without touching this."""
        return cls(encode(obj), obj)

    @classmethod
    def from_raw(cls, raw: bytes) -> Stored:
        return cls(raw, json.loads(raw))

    @property
    def ident(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    def decode(self) -> Obj:
        """A fresh dict of the object, the caller's to change."""
        return json.loads(self.raw)

    def json_as(self, api_version: str, kind: str) -> bytes:
        """The object's JSON as seen at ``api_version`` (objects are kept in the version they
        were written at; no conversion between versions, only the apiVersion and kind read)."""
        if api_version == self.api_version and kind == self.kind:
            return self.raw
        return encode({**self.decode(), "apiVersion": api_version, "kind": kind})

    def matches(self, labels: LabelSelector, fields: FieldSelector) -> bool:
        """Whether the object passes a label selector and a field selector."""
        if not labels.matches(self.labels):
            return False
        if fields.empty:
            return True
        if all(r.field in _METADATA_FIELDS for r in fields.requirements):
            return fields.matches({"metadata": {"name": self.name, "namespace": self.namespace}})
        return fields.matches(self.decode())
