"""A run's bookkeeping for every LightningModule: images seen, the train-seconds clock, and the stop at the image
budget. Modules return `RunBookkeeping()` from `configure_callbacks`, so that every Trainer they are fitted by
counts the same way; they keep the counts as attributes (`images_seen`, `train_seconds`, `max_images`) that
their schedules and logs read.

When each count moves (the trajectory and the logs depend on it): a batch's images are added after its
`training_step` (which reads the count before it: schedule progress) and before the optimiser step (whose log
reads the count after it). The stop is set last at the batch's end, after the checkpoint callbacks have written
the step (Lightning runs checkpoint callbacks after the others, and the module's own hook after every callback):
a stop set earlier would make Lightning log a row the runs so far did not log. So the module's
`on_train_batch_end` calls `stop_at_image_budget`, which decides here."""
from __future__ import annotations

import time
from dataclasses import dataclass

from lightning.pytorch.callbacks import Callback, Timer

from lit_diffusion.runs.budget import Budget

IMAGES_SEEN, TRAIN_SECONDS = "images_seen", "train_seconds"  # checkpoint keys


def save_counts(module, checkpoint: dict) -> None:
    checkpoint[IMAGES_SEEN] = module.images_seen
    checkpoint[TRAIN_SECONDS] = module.train_seconds


def restore_counts(module, checkpoint: dict) -> None:
    """The counts of a checkpoint (0 where it has none), into the module."""
    module.images_seen = int(checkpoint.get(IMAGES_SEEN, 0))
    module.train_seconds = float(checkpoint.get(TRAIN_SECONDS, 0.0))


class RunBookkeeping(Callback):
    """Counts images seen (all ranks) and runs the clock of time spent in fit (summed over resumes), and writes
    both into every checkpoint."""

    def __init__(self):
        self._batch_images = 0
        self._clock: tuple[float, float] | None = None  # (perf_counter at fit start, train_seconds then)

    def on_fit_start(self, trainer, pl_module) -> None:
        self._clock = (time.perf_counter(), pl_module.train_seconds)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._clock is not None:  # restored after fit started (sharded strategies): continue from the stored time
            self._clock = (self._clock[0], pl_module.train_seconds)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_images = batch["x"].shape[0]

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        pl_module.images_seen += self._batch_images * trainer.world_size

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._clock is not None:
            start, before = self._clock
            pl_module.train_seconds = before + time.perf_counter() - start
        save_counts(pl_module, checkpoint)


@dataclass(frozen=True)
class LiveProgress:
    """A fit's progress as the budget reads it (the fields of a checkpoint record)."""

    global_step: int
    images_seen: int
    train_seconds: float  # the Timer's elapsed training time
    fit_finished: bool  # the Timer has stopped fit: only then does its time count as used


def image_budget_reached(pl_module) -> bool:
    """Whether the module has seen its max_images (the stop, and the log of the last window, ask this)."""
    progress = LiveProgress(int(pl_module.global_step), int(pl_module.images_seen), 0.0, False)
    return Budget(max_images=pl_module.max_images).reached(progress) is not None


def stop_at_image_budget(pl_module) -> None:
    """Stop fit once the module has seen its max_images (from the module's on_train_batch_end: see above)."""
    if image_budget_reached(pl_module):
        pl_module.trainer.should_stop = True


def budget_reached(trainer, pl_module) -> bool:
    """Whether fit has reached what it was asked to do: max_steps, the module's image budget, or max_time
    (the Timer callback, which runs before checkpoint callbacks, has already set should_stop)."""
    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    duration = None if timer is None else timer._duration
    elapsed = 0.0 if timer is None else timer.time_elapsed()
    progress = LiveProgress(int(trainer.global_step), int(getattr(pl_module, "images_seen", 0)), elapsed,
                            bool(trainer.should_stop and duration is not None and elapsed >= duration))
    budget = Budget(max_steps=trainer.max_steps, max_images=getattr(pl_module, "max_images", None),
                    max_time_seconds=duration, time_needs_fit_finished=True)
    return budget.reached(progress) is not None
