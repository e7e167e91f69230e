"""``dask-kube-jobs run``'s progress display on stderr: one line per change of the job.

A line says what changed (a phase, a new attempt, why the job is held, a Warning Event of one
of its Pods), with the seconds since submission. Each change is printed once: the watch repeats
states (resyncs, a status update that only touched the conditions) and Events repeat (their
``count`` goes up; one line per Pod and reason), and a failure is already the last progress
line, so ``run`` does not print it again.

On a terminal the lines are coloured (``NO_COLOR`` set to anything non-empty turns that off,
as https://no-color.org asks; so does ``TERM=dumb``) and a live line under them counts the
seconds since the last change, redrawn in place; anything else written to the terminal (the
runner's log on stdout) first clears it. Piped, the lines are plain and there is no live line,
so a log file or a test reads exactly one line per change.

Written by hand, not with ``rich``'s live display: that one sends whatever the program writes
to stdout through its own console (on stderr) while it is active, and ``run`` keeps the
runner's log on stdout, apart from the progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from typing import Any, TextIO

from .jobs._status import JobStatus

#: ANSI SGR colours by what a line reports.
_COLOURS = {"ok": "32", "bad": "31", "warn": "33", "info": "36", "dim": "2"}
_PHASE_TONE = {"Successful": "ok", "Failed": "bad", "Running": "info"}
LIVE_INTERVAL = 0.5  # seconds between redraws of the live line


def is_tty(stream: TextIO) -> bool:
    with contextlib.suppress(AttributeError, ValueError):
        return bool(stream.isatty())
    return False


def colour_wanted(stream: TextIO) -> bool:
    """Colour only on a terminal, and never with ``NO_COLOR`` (non-empty) or ``TERM=dumb``."""
    return is_tty(stream) and not os.environ.get("NO_COLOR") and \
        os.environ.get("TERM") != "dumb"


def phase_line(st: JobStatus) -> str:
    """The words for a job's state, e.g. ``Running (runner r-1, attempt 2)``."""
    if st.phase == "JobCreated" and st.reason and st.message:
        # held by the operator before it starts (e.g. a server-side limit): say why
        return f"JobCreated (waiting: {st.message})"
    detail = {
        "ClusterCreated": f"Dask cluster {st.cluster_name}",
        "Running": f"runner {st.runner_pod}" + (f", attempt {st.attempts}"
                                                 if st.attempts > 1 else ""),
        "Successful": "exit code 0",
        "Failed": ", ".join(str(x) for x in (st.reason, st.message) if x),
    }.get(st.phase or "", "")
    return f"{st.phase}" + (f" ({detail})" if detail else "")


def warning_line(event: dict[str, Any]) -> str:
    """A Pod's Warning Event as one line: ``Warning BackOff pod/x: Back-off restarting ...``."""
    target = event.get("involvedObject") or {}
    return (f"Warning {event.get('reason') or ''} pod/{target.get('name')}: "
            f"{' '.join(str(event.get('message') or '').split())}")


class Progress:
    """One stderr line per change, with the time since submission; silent if quiet."""

    def __init__(self, quiet: bool, stream: TextIO | None = None, *,
                 live: bool | None = None, colour: bool | None = None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.start = time.monotonic()
        self.last: tuple[Any, ...] = ()
        self.last_line = ""
        self.changed = self.start
        self.colour = colour_wanted(self.stream) if colour is None else colour
        self.live = (is_tty(self.stream) if live is None else live) and not quiet
        self._live_shown = False
        self._warnings: set[tuple[str, str]] = set()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self.start:6.1f}s]"

    def _paint(self, text: str, tone: str | None) -> str:
        if not self.colour or tone is None:
            return text
        return f"\x1b[{_COLOURS[tone]}m{text}\x1b[0m"

    def clear_live(self) -> None:
        """Erase the live line (before anything else is written to the terminal)."""
        if self._live_shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._live_shown = False

    def say(self, text: str, tone: str | None = None) -> None:
        if self.quiet:
            return
        self.clear_live()
        print(f"{self._paint(self._stamp(), 'dim')} {self._paint(text, tone)}", file=self.stream,
              flush=True)
        self.changed = time.monotonic()

    def update(self, st: JobStatus) -> None:
        """Print the job's state if it changed (phase, attempt, runner or reason)."""
        key = (st.phase, st.attempts, st.runner_pod, st.reason)
        if key == self.last or not st.phase:
            return
        self.last = key
        self.last_line = phase_line(st)
        self.say(self.last_line, _PHASE_TONE.get(st.phase or ""))

    def warning(self, event: dict[str, Any]) -> None:
        """Print a Pod's Warning Event, once per Pod and reason (a BackOff repeats with a new
        count, a failing probe with a new error), except a failed readiness probe: every
        scheduler fails a few while it starts, and one that never gets ready ends the job
        with its own reason."""
        target = event.get("involvedObject") or {}
        message = str(event.get("message") or "")
        if event.get("reason") == "Unhealthy" and message.startswith("Readiness probe"):
            return
        key = (str(target.get("name")), str(event.get("reason")))
        if key in self._warnings:
            return
        self._warnings.add(key)
        self.say(warning_line(event), "warn")

    def draw_live(self) -> None:
        """The live line: the seconds since the last change (a terminal only)."""
        if not self.live:
            return
        waited = time.monotonic() - self.changed
        state = f"still {self.last_line}" if self.last_line else "waiting"
        text = f"{self._stamp()} ... {state}, for {waited:.0f}s"
        self.stream.write("\r\x1b[2K" + self._paint(text, "dim"))
        self.stream.flush()
        self._live_shown = True

    async def run_live(self) -> None:
        """Redraw the live line until cancelled (started by ``run`` on a terminal)."""
        try:
            while True:
                self.draw_live()
                await asyncio.sleep(LIVE_INTERVAL)
        finally:
            self.clear_live()

    @contextlib.contextmanager
    def live_line(self) -> Iterator[None]:
        """Keep the live line going while the block runs (nothing unless on a terminal)."""
        task = asyncio.ensure_future(self.run_live()) if self.live else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                self.clear_live()
