"""Learning rate as a function of images seen (not steps), so that schedules do not change with the
world size or batch size (DESIGN §4): linear warm-up, then constant or cosine decay to `min_lr`."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class LRSchedule:
    """lr(images) = lr * warm-up * decay.

    Attributes:
        warmup_images: images over which the rate rises linearly from 0.
        decay: "constant" or "cosine" (to min_lr at max_images).
        min_lr_ratio: the cosine floor as a fraction of the peak rate.
    """

    warmup_images: int = 0
    decay: str = "constant"
    min_lr_ratio: float = 0.0

    def __post_init__(self):
        if self.decay not in ("constant", "cosine"):
            raise ValueError(f"LRSchedule.decay must be 'constant' or 'cosine', got {self.decay!r}")
        if self.warmup_images < 0:
            raise ValueError(f"LRSchedule.warmup_images must be >= 0, got {self.warmup_images}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"LRSchedule.min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")

    def factor(self, images: int, max_images: int) -> float:
        warm = 1.0 if self.warmup_images == 0 else min(1.0, images / self.warmup_images)
        if self.decay == "constant":
            return warm
        span = max(1, max_images - self.warmup_images)
        progress = min(1.0, max(0.0, (images - self.warmup_images) / span))
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
        return warm * (self.min_lr_ratio + (1.0 - self.min_lr_ratio) * cosine)
