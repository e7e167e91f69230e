"""How the job commands end on a signal: SIGINT, SIGTERM and SIGHUP all mean "stop now".

A terminal's Ctrl-C, ``kill``, a closed terminal, ``timeout(1)``, Airflow's or a CI runner's
cancellation: each must reach the code that deletes the job (``run`` deletes it unless
``--keep``), which a process killed by a signal's default action never runs. Inside the event
loop a signal cancels the command's main task, so its ``finally``/``except CancelledError``
blocks run as for Ctrl-C; outside it (starting or stopping ``--local``'s control plane) the
handler raises :class:`Interrupted`. The exit code is 128 + the signal's number, as shells
report a process a signal ended (130 for SIGINT, 129 for SIGHUP, 143 for SIGTERM).

A signal the command inherited ignored stays ignored (``nohup`` keeps SIGHUP from ending it,
a background job of a non-interactive shell keeps ignoring SIGINT), as with any program.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: The signals that stop a job command, in the order a person is likely to send them.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_code(signum: int) -> int:
    """What a shell reports for a process a signal ended: 128 + its number."""
    return 128 + int(signum)


class Interrupted(KeyboardInterrupt):
    """A stop signal that arrived outside the event loop; a ``KeyboardInterrupt``, so code that
    cleans up after Ctrl-C cleans up after it too."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handled(signum: int) -> bool:
    current = signal.getsignal(signum)
    return current is signal.default_int_handler if signum == signal.SIGINT \
        else current is signal.SIG_DFL


def _raise(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Outside the event loop: SIGTERM and SIGHUP raise :class:`Interrupted` as SIGINT raises
    ``KeyboardInterrupt`` (the previous handlers come back afterwards)."""
    saved = {s: signal.getsignal(s) for s in STOP_SIGNALS[1:] if _handled(s)}
    for signum in saved:
        signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


class Stopper:
    """Inside the event loop: the first stop signal cancels the main task and is remembered
    (``signum``), so the command can clean up and return :func:`exit_code`."""

    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signum: int | None = None
        self.signals = signals
        self._installed: list[int] = []

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for signum in self.signals:  # SIGINT too: in place of asyncio.run's own handler
            loop.add_signal_handler(signum, self._stop, signum, task)
            self._installed.append(signum)

    def _stop(self, signum: int, task: asyncio.Task[Any]) -> None:
        if self.signum is None:
            self.signum = signum
        task.cancel()

    def uninstall(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self._installed:
            loop.remove_signal_handler(signum)
            if signum != signal.SIGINT:
                signal.signal(signum, _raise)  # back to signals_raise's (the loop put SIG_DFL)
        self._installed.clear()

    def done(self) -> int:
        """After the main task caught the cancellation and cleaned up: the exit code, and the
        task no longer counts as cancelled."""
        assert self.signum is not None
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        return exit_code(self.signum)


def run_stoppable(main: Callable[[Stopper], Awaitable[T]]) -> T | int:
    """``asyncio.run(main(stopper))`` with the stop signals handled as this module says: the
    value ``main`` returns, or the signal's exit code if ``main`` let the cancellation out."""
    async def wrapper(signals: tuple[int, ...]) -> T | int:
        stopper = Stopper(signals)
        stopper.install()
        try:
            return await main(stopper)
        except asyncio.CancelledError:
            if stopper.signum is None:
                raise
            return stopper.done()
        finally:
            stopper.uninstall()

    with signals_raise():
        # which signals to take is decided before asyncio.run installs its SIGINT handler
        signals = tuple(s for s in STOP_SIGNALS
                        if _handled(s) or signal.getsignal(s) is _raise)
        return asyncio.run(wrapper(signals))
