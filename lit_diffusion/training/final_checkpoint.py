"""The state at the end of training goes to last.ckpt.

Lightning's ModelCheckpoint (2.6) writes last.ckpt only on the steps it saves (every N steps, epoch ends), so
a run that stops between two of them (the image budget reached, `--trainer.max_time`) would keep the older
state: the final steps lost, and a resume would train them again."""
from __future__ import annotations

from pathlib import Path

from lightning.pytorch.callbacks import Callback, ModelCheckpoint


class FinalCheckpoint(Callback):
    def on_train_end(self, trainer, pl_module) -> None:  # not called when training raised (a NaN loss)
        for callback in trainer.checkpoint_callbacks:
            if not isinstance(callback, ModelCheckpoint) or not callback.save_last or callback.dirpath is None:
                continue
            # a step already written (by ModelCheckpoint itself, or by the preemption handler) is not rewritten
            if getattr(callback, "_last_global_step_saved", None) == trainer.global_step:
                continue
            trainer.save_checkpoint(Path(callback.dirpath) / f"{callback.CHECKPOINT_NAME_LAST}{callback.FILE_EXTENSION}")
            callback._last_global_step_saved = trainer.global_step
