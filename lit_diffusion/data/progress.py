"""Progress of long data commands (builds, `data verify`): a tqdm bar on a terminal; in logs and under
SLURM (stderr not a TTY) a plain line every ``interval`` seconds, since a bar's carriage returns make
one unreadable line there. Always a closing line with the count and the time."""
from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """``with Progress(total, "verify") as p: p.update(1)``; ``enabled=False`` prints nothing."""

    def __init__(self, total: int, what: str, unit: str = "samples", enabled: bool = True,
                 interval: float = 10.0, stream=None):
        self.total, self.what, self.unit, self.enabled = total, what, unit, enabled
        self.interval, self.stream = interval, stream or sys.stderr
        self.done, self.start = 0, time.monotonic()
        self.last = self.start
        self.bar = None
        if enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit[:-1] if unit.endswith("s") else unit, desc=what,
                            file=self.stream, mininterval=0.5)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if self.enabled and now - self.last >= self.interval:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            print(f"{self.what}: {self.done}/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%), "
                  f"{rate:.0f}/s, ETA {_duration(eta)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.enabled:
            elapsed = time.monotonic() - self.start
            print(f"{self.what}: {self.done} {self.unit} in {_duration(elapsed)} "
                  f"({self.done / max(elapsed, 1e-9):.0f}/s)", file=self.stream, flush=True)
            self.enabled = False

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
