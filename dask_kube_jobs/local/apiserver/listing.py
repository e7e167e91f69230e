"""Lists: which stored objects a list request selects, and its answer as JSON or as dicts.

A list walks the store's sorted names (no sort per request), filters by namespace, label and
field selectors, pages with ``limit``/``continue``, and answers with each object's stored JSON
joined as it is (``stored.Stored``): the 10,000 objects of a big list are not encoded again,
only the envelope around them. Callers that need dicts (Table rows for kubectl,
deletecollection) get them decoded from the same selection.

A continue token holds the last name served (``namespace/name``) and the list's
resourceVersion; the next page starts after that name. As before, a page shows the objects as
they are now, not as they were at the token's version.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import errors
from .fieldselectors import parse_field_selector
from .registry import ResourceType
from .selectors import parse_label_selector
from .store import Obj, Store
from .stored import Stored


@dataclass
class ListOptions:
    label_selector: str = ""
    field_selector: str = ""
    limit: int = 0
    continue_token: str = ""

    @classmethod
    def from_query(cls, q: Mapping[str, str]) -> ListOptions:
        try:
            limit = int(q.get("limit") or 0)
        except ValueError:
            raise errors.bad_request("limit must be an integer") from None
        return cls(label_selector=q.get("labelSelector", ""),
                    field_selector=q.get("fieldSelector", ""), limit=max(0, limit),
                    continue_token=q.get("continue", ""))


@dataclass
class Selection:
    entries: list[Stored]
    metadata: Obj  # the list's ListMeta: resourceVersion and, for a page, continue


def select(store: Store, rtype: ResourceType, namespace: str | None, opts: ListOptions) -> Selection:
    """The objects a list request answers with, in (namespace, name) order."""
    labels = parse_label_selector(opts.label_selector)
    fields = parse_field_selector(opts.field_selector, group=rtype.group, plural=rtype.plural)
    after: tuple[str, str] | None = None
    list_rv = str(store.resource_version)
    if opts.continue_token:
        try:
            token = json.loads(base64.urlsafe_b64decode(opts.continue_token.encode()))
            start, list_rv = token["start"], token["rv"]
            ns, _, name = start.partition("/")
            after = (ns, name)
        except Exception as exc:
            raise errors.bad_request(f"continue key is not valid: {exc}") from exc
    entries: list[Stored] = []
    more = ""
    for entry in store.entries(rtype.key, namespace if rtype.namespaced else None, after):
        if not entry.matches(labels, fields):
            continue
        if opts.limit and len(entries) >= opts.limit:
            last = entries[-1]
            token = {"start": f"{last.namespace}/{last.name}", "rv": list_rv}
            more = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            break
        entries.append(entry)
    meta: Obj = {"resourceVersion": list_rv}
    if more:
        meta["continue"] = more
    return Selection(entries, meta)


def as_dict(rtype: ResourceType, version: str, selection: Selection) -> Obj:
    """The list as a dict, each item decoded (the caller's to change)."""
    api_version = rtype.api_version(version)
    items = []
    for entry in selection.entries:
        obj = entry.decode()
        obj["apiVersion"], obj["kind"] = api_version, rtype.kind
        items.append(obj)
    return {"kind": rtype.list_kind, "apiVersion": api_version, "metadata": selection.metadata,
            "items": items}


def as_json(rtype: ResourceType, version: str, selection: Selection) -> bytes:
    """The list's JSON body: the envelope encoded, each item's stored JSON as it is."""
    api_version = rtype.api_version(version)
    head: dict[str, Any] = {"kind": rtype.list_kind, "apiVersion": api_version,
                            "metadata": selection.metadata}
    kind = rtype.kind
    items = b",".join(entry.json_as(api_version, kind) for entry in selection.entries)
    return json.dumps(head, separators=(",", ":")).encode()[:-1] + b',"items":[' + items + b"]}"
