"""Ctrl-C and SIGTERM as one exception for every command that must stop cleanly (`compare`, `data build`,
`data encode`): inside `stop_on_signals()` both raise `Interrupted`, a KeyboardInterrupt, so that every `finally`
and clean-up runs the same way for both (a training child is sent SIGTERM and checkpoints; a writer removes its
temporaries and raises again saying what it kept). The command prints one line and exits with the shell's status
for the signal, 128 + N (130, 143). SIGTERM is what kill, a container stop and scancel send."""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)
DESCRIPTIONS = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class Interrupted(KeyboardInterrupt):
    """Asked to stop by `signum`; `kept` says what is on disk and how to go on (filled in by the clean-up)."""

    def __init__(self, signum: int = signal.SIGINT, kept: str = ""):
        super().__init__(kept or f"stopped by {signal.Signals(signum).name}")
        self.signum, self.kept = int(signum), kept

    @classmethod
    def of(cls, stop: KeyboardInterrupt, kept: str = "") -> "Interrupted":
        """`stop` (a plain Ctrl-C, or an Interrupted) again as Interrupted, now saying what was kept."""
        return cls(getattr(stop, "signum", signal.SIGINT), kept or getattr(stop, "kept", ""))

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def description(self) -> str:
        return DESCRIPTIONS.get(self.signum, f"signal {self.signum}")

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


def report_stop(prog: str, stop: KeyboardInterrupt, kept: str = "") -> int:
    """Print the one line of an interrupted command to stderr; returns its exit status (128 + the signal)."""
    stop = Interrupted.of(stop, kept)
    print(f"{prog}: stopped by {stop.description}: {stop.kept or 'before anything was written'}", file=sys.stderr)
    return stop.status
