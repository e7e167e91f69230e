"""The operator's log output: plain text for people, or JSON lines for a log pipeline.

One handler on the root logger formats every record, ours and kopf's alike, so the two formats
differ only in shape. Each line names the custom object it is about when that is known: kopf's
per-object loggers carry a ``k8s_ref``; for our own modules, each daemon binds its object in a
context variable (``bind_object``), which asyncio copies into the daemon's task, so whatever a
reconcile pass logs is tagged without threading a logger through every function.

JSON lines have ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, then ``kind``,
``namespace`` and ``name`` when known, ``exc_info`` with a traceback, and any ``extra=`` fields.
They are made by python-json-logger (a kopf dependency, also listed in the ``operator`` extra).
"""

from __future__ import annotations

import datetime
import logging
import sys
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(object_prefix)s%(message)s"

_OBJECT: ContextVar[dict[str, str] | None] = ContextVar("dask_operator_object", default=None)

# Attributes kopf attaches to its records that are not fields of ours (``settings`` is the
# whole OperatorSettings object).
_KOPF_ATTRS = {"k8s_skip", "k8s_ref", "settings"}


def bind_object(kind: str, namespace: str | None, name: str) -> None:
    """Tag the current task's log records with this object (call at the top of a daemon)."""
    _OBJECT.set({"kind": kind, "namespace": namespace or "", "name": name})


def object_of(record: logging.LogRecord) -> dict[str, str] | None:
    """The object a record is about: kopf's reference first, else the task's bound object."""
    ref = getattr(record, "k8s_ref", None)
    if isinstance(ref, dict) and ref.get("name"):
        return {"kind": str(ref.get("kind") or ""), "namespace": str(ref.get("namespace") or ""),
                "name": str(ref["name"])}
    return _OBJECT.get()


class ObjectFilter(logging.Filter):
    """Puts the record's object on it as ``k8s_object`` and a text ``object_prefix``."""

    def filter(self, record: logging.LogRecord) -> bool:
        obj = object_of(record)
        record.k8s_object = obj
        if obj is None:
            record.object_prefix = ""
        else:
            where = f"{obj['namespace']}/{obj['name']}" if obj["namespace"] else obj["name"]
            record.object_prefix = f"[{obj['kind']} {where}] " if obj["kind"] else f"[{where}] "
        return True


class JsonLineFormatter(JsonFormatter):
    """One JSON object per record, with the field names documented above."""

    def __init__(self) -> None:
        reserved = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
        reserved |= _KOPF_ATTRS | {"message", "asctime", "k8s_object", "object_prefix", "taskName"}
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         reserved_attrs=sorted(reserved))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        obj = getattr(record, "k8s_object", None)
        if obj is None:
            obj = object_of(record)  # a record formatted without our filter
        if obj:
            log_data.update({k: v for k, v in obj.items() if v})


def configure(log_format: str = "text", *, level: int = logging.INFO,
              stream: Any = None) -> logging.Handler:
    """Send every logger's records to ``stream`` (stderr) in ``log_format``; returns the handler.

    Example::

        configure("json", level=logging.DEBUG)
    """
    if log_format not in FORMATS:
        raise ValueError(f"--log-format {log_format!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ObjectFilter())
    handler.setFormatter(JsonLineFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
