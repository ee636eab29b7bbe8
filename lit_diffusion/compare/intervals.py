"""Uncertainty of a comparison's primary metric: the level and seed of the bootstrap interval over the generated
samples of one score (the metric's own `interval`, e.g. evaluation.sample_metrics.FrechetDistance), the interval
of a table row over its seeds, and the winner-or-tie rule per NFE."""
from __future__ import annotations

LEVEL = 0.95  # the intervals' confidence level
BOOTSTRAP_SEED = 0  # resampling is seeded: the same samples give the same interval


def row_interval(intervals: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    """One interval for a row scored under several seeds: the union of the seeds' intervals (a winner must beat
    every seed's uncertainty, so the union is the conservative choice); None if any seed has none."""
    if not intervals or any(iv is None for iv in intervals):
        return None
    return min(iv[0] for iv in intervals), max(iv[1] for iv in intervals)


def separated(best: tuple[float, float] | None, other: tuple[float, float] | None) -> bool:
    """Whether interval `best` lies entirely below `other` (without intervals nothing is separated)."""
    return best is not None and other is not None and best[1] < other[0]
