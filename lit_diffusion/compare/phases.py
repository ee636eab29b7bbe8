"""Where a comparison's time goes: wall time and CPU time (this process's threads, and the training children it
waited for) of each phase, logged as one table at the end (benchmarks/quickstart_timing.py reads it)."""
from __future__ import annotations

import contextlib
import resource
import time


def _cpu() -> tuple[float, float]:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class PhaseClock:
    """`with clock.phase("training"): ...`, then `clock.table()`."""

    def __init__(self):
        self.phases: list[tuple[str, float, float, float]] = []  # name, wall s, own CPU s, children's CPU s

    @contextlib.contextmanager
    def phase(self, name: str):
        wall, (own, children) = time.perf_counter(), _cpu()
        try:
            yield
        finally:
            now_own, now_children = _cpu()
            self.phases.append((name, time.perf_counter() - wall, now_own - own, now_children - children))

    def table(self) -> str:
        lines = ["[phases] phase | wall s | CPU s (this process) | CPU s (training children)"]
        rows = self.phases + [("total", *(sum(p[i] for p in self.phases) for i in (1, 2, 3)))]
        lines += [f"[phases] {name} | {wall:.1f} | {own:.1f} | {children:.1f}" for name, wall, own, children in rows]
        return "\n".join(lines)
