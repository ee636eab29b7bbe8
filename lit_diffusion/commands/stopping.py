"""Ctrl-C and SIGTERM to a command that writes data (`data build`, `data encode`): one line saying what was
kept and how to go on, exit status 128 + the signal number (130, 143), no traceback.

SIGTERM (kill, a container stop, scancel) is raised as an exception the way Ctrl-C raises KeyboardInterrupt,
so that the same clean-up runs for both: the writers catch it, remove their temporaries and raise it again with
what they kept (data.errors.Interrupted).
"""
from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager

from lit_diffusion.data.errors import Interrupted

SIGNAL_NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


def _raise_terminated(signum, frame):
    raise Interrupted(signum=signum)


@contextmanager
def sigterm_raises():
    """Inside: SIGTERM raises Interrupted (main thread only: Python delivers signals there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def report_stop(prog: str, stop: KeyboardInterrupt) -> int:
    """Print the one line of an interrupted command; returns its exit status."""
    signum = getattr(stop, "signum", signal.SIGINT)
    kept = getattr(stop, "kept", "") or "before anything was written"
    print(f"{prog}: stopped by {SIGNAL_NAMES.get(signum, f'signal {signum}')}: {kept}", file=sys.stderr)
    return 128 + int(signum)
