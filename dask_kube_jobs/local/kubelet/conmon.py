"""The container monitor: one small process per container that outlives the kubelet.

``python -I conmon.py RUN_DIR LOG CGROUP -- ARGV...`` (``CGROUP`` empty without one) is what the kubelet starts for each container, as
containerd starts a shim: the monitor starts the container's process tree (its own session),
writes its pid to ``RUN_DIR/pid``, copies its stdout and stderr into the CRI-format log file
``LOG``, and when it ends writes its exit status to ``RUN_DIR/exit`` and exits. The kubelet holds no pipe and is no parent of the container, so a
kubelet killed by SIGKILL leaves every container running with its log still written; the next
kubelet reads the pid, watches the monitor (a pidfd) and takes over, and learns the exit status
from the file even if the container ended while no kubelet ran.

It imports only the standard library and runs isolated (``-I``: no ``PYTHONPATH``, so not the
Pod network's ``sitecustomize`` either), so it starts fast and cannot break with the Pod's or
the kubelet's environment; the container gets the environment the monitor was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time

MAX_LINE = 16 * 1024


def _stamp() -> bytes:
    ns = time.time_ns()
    return (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9))
            + f".{ns % 10**9:09d}Z").encode()


class _Stream:
    """One of the container's output pipes, cut into CRI log lines."""

    def __init__(self, pipe: object, name: bytes) -> None:
        self.fd = pipe.fileno()  # type: ignore[attr-defined]
        self.name = name
        self.buf = b""

    def lines(self, chunk: bytes) -> list[bytes]:
        """CRI lines for what ``chunk`` completes; an empty chunk (EOF) flushes the rest."""
        tag = _stamp() + b" " + self.name
        self.buf += chunk
        out = []
        while (nl := self.buf.find(b"\n")) != -1:
            line, self.buf = self.buf[:nl], self.buf[nl + 1:]
            while len(line) > MAX_LINE:
                out.append(tag + b" P " + line[:MAX_LINE] + b"\n")
                line = line[MAX_LINE:]
            out.append(tag + b" F " + line + b"\n")
        while len(self.buf) > MAX_LINE:
            out.append(tag + b" P " + self.buf[:MAX_LINE] + b"\n")
            self.buf = self.buf[MAX_LINE:]
        if not chunk and self.buf:
            out.append(tag + b" F " + self.buf + b"\n")
            self.buf = b""
        return out


def _copy(streams: list[_Stream], out: object, stop: threading.Event) -> None:
    """Copy both pipes into the log until both close (or ``stop``). One thread, stdout first
    when both have data."""
    open_streams = list(streams)
    with selectors.DefaultSelector() as sel:
        for st in open_streams:
            sel.register(st.fd, selectors.EVENT_READ, st)
        while open_streams and not stop.is_set():
            if not sel.select(timeout=0.1):
                continue
            # A moment for the other stream to catch up: output a program writes to both at
            # once (stderr at once, stdout flushed at exit) is read stdout first.
            time.sleep(0.02)
            ready = {key.data.name for key, _ in sel.select(timeout=0)}
            for st in list(open_streams):
                if st.name not in ready:
                    continue
                chunk = os.read(st.fd, 65536)
                if not chunk:
                    sel.unregister(st.fd)
                    open_streams.remove(st)
                lines = st.lines(chunk)
                if lines:
                    out.write(b"".join(lines))  # type: ignore[attr-defined]


def _atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    state, log, cgroup, sep, *command = argv
    assert sep == "--" and command, "usage: conmon RUN_DIR LOG CGROUP|'' -- ARGV..."
    # The container gets default signal dispositions: the kubelet stops it by signalling its
    # own process group (a session of its own), never through the monitor.
    out = open(log, "ab", buffering=0)  # noqa: SIM115
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True, cwd="/")
    except OSError as exc:
        _atomic(os.path.join(state, "exit"), json.dumps({"code": 128, "error": str(exc)}))
        return 0
    _atomic(os.path.join(state, "pid"), str(proc.pid))
    stop = threading.Event()
    copier = threading.Thread(target=_copy, daemon=True, args=(
        [_Stream(proc.stdout, b"stdout"), _Stream(proc.stderr, b"stderr")], out, stop))
    copier.start()
    code = proc.wait()
    # What the program left behind may hold the pipes: it goes, as the container does (its
    # session, and its memory cgroup for what left the session), and the output still in
    # flight is copied until the pipes close (at most 5 s).
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while copier.is_alive() and time.monotonic() < deadline:
        if cgroup:
            with contextlib.suppress(OSError, ValueError), \
                    open(os.path.join(cgroup, "cgroup.procs")) as procs:
                for pid in procs.read().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
        copier.join(0.05)
    stop.set()
    copier.join(1)
    out.close()
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _atomic(os.path.join(state, "exit"), json.dumps({"code": code, "finishedAt": finished}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
