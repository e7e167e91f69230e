"""Kubernetes timestamps: RFC 3339 in UTC to the second (``2024-05-01T12:00:00Z``)."""

from __future__ import annotations

import datetime as dt


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def fmt_time(t: dt.datetime | None = None) -> str:
    """``t`` (default: now) as the API writes timestamps."""
    return (t or now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> dt.datetime | None:
    """A timestamp the API wrote (``Time`` or ``MicroTime``), always timezone-aware (one
    without a zone is UTC, as the API means it), or None for anything that is not one (absent,
    empty, malformed, not a string): status fields are read from objects others may have
    written, and an aware time is the only kind that can be compared with :func:`now`."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
