"""A run's budget and the one decision whether it is reached.

Everything that asks "is this run done?" asks here: the live trainer (with a view of its progress), the
resume (with the checkpoint's record) and a comparison (is this run trained?)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Lightning's Timer stops at the first step past max_time and its own start-up counts too: a run that trained
# 98% of its wall-clock budget has used it
TIME_SLACK = 0.98


class Progress(Protocol):
    """What the decision reads: a CheckpointRecord, or a live view of a fit."""

    global_step: int
    images_seen: int
    train_seconds: float
    fit_finished: bool


@dataclass(frozen=True)
class Budget:
    """max_steps, max_images and max_time_seconds; None or 0 (steps: negative too) means no limit.

    time_needs_fit_finished: count the time budget only when fit ended on it (a checkpoint written on a signal
    just before the limit has time left); a comparison asking whether a run is trained does not."""

    max_steps: int | None = None
    max_images: int | None = None
    max_time_seconds: float | None = None
    time_needs_fit_finished: bool = False

    def reached(self, progress: Progress) -> str | None:
        """Which limit `progress` has reached, in words (None: there is training left)."""
        if self.max_steps is not None and 0 <= self.max_steps <= progress.global_step:
            return f"step {progress.global_step} of max_steps {self.max_steps}"
        if self.max_images is not None and progress.images_seen >= self.max_images:
            return f"{progress.images_seen:,} images seen of max_images {self.max_images:,}"
        time = self.max_time_seconds
        if time and (progress.fit_finished or not self.time_needs_fit_finished) \
                and progress.train_seconds >= TIME_SLACK * time:
            return f"{progress.train_seconds:.1f} s in fit of max_time {time:.0f} s"
        return None
