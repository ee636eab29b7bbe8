"""Stopping a comparison: Ctrl-C (SIGINT) or SIGTERM raise `Interrupted` in the comparison process (a
KeyboardInterrupt, so that every `finally` runs: a training child is sent SIGTERM and saves a checkpoint before
it exits, compare/train.py). The command turns it into one line and the shell's status for that signal (128 + N:
130, 143); running the same command again continues from what was kept."""
from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The comparison was asked to stop by `signum`."""

    def __init__(self, signum: int):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def status(self) -> int:
        return 128 + self.signum


def raise_interrupted(signum, frame):
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Within: SIGINT and SIGTERM raise Interrupted (main thread only; elsewhere signals cannot be handled). A
    signal ignored at start stays ignored (a shell starts background jobs with SIGINT ignored, nohup-style)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, raise_interrupted) for sig in SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
