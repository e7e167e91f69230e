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


def human_duration(seconds: float) -> str:
    """A duration the way Kubernetes shows it (``duration.HumanDuration``): an age in ``kubectl
    get``, a Job's DURATION, a DaskJob's ``status.duration``."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m" if s % 60 == 0 else f"{minutes}m{s % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d" if hours % 24 == 0 else f"{days}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{days}d"
    years = days // 365
    if hours < 24 * 365 * 8:
        return f"{years}y" if days % 365 == 0 else f"{years}y{days % 365}d"
    return f"{years}y"
