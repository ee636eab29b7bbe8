"""What every checkpoint records about itself, and the one final checkpoint of a fit.

Lightning (2.6) ends a fit that stops mid-epoch (max_steps, the image budget, max_time) by finishing the
epoch: its epoch-end and train-end saves store `epoch: 1` with the epoch marked done, and a resume from them
starts a new epoch instead of continuing the data stream (issue 16, fault 1); with a version counter they also
land in `last-v1.ckpt`. Here the final checkpoint is written at the step boundary where fit stops, exactly
like a mid-run checkpoint (which resumes bitwise), and the epoch-end/train-end saves of that same step are
skipped."""
from __future__ import annotations

import time

import torch

from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import WandbLogger

from lit_diffusion.runs.record import RUN_FIELDS
from lit_diffusion.training.bookkeeping import budget_reached


def _in_train_batch_end(trainer) -> bool:
    """Between a batch's optimiser step and the loop marking it completed: the step's row is not logged yet."""
    current = trainer.fit_loop.epoch_loop.batch_progress.current
    return trainer.training and current.processed > current.completed


def _log_step_row_now(trainer) -> None:
    """Log this step's metrics row before its checkpoint is written (a kill -9 right after the checkpoint would
    otherwise lose the row, and the resume never trains that step again), and skip the loop's own logging of
    the same row. Metrics a LightningModule logs in its own on_train_batch_end come too late for this row."""
    connector = trainer._logger_connector
    if "update_train_step_metrics" in vars(connector):  # already logged early at this step
        return
    connector.update_train_step_metrics()

    def skip_once() -> None:
        del connector.update_train_step_metrics

    connector.update_train_step_metrics = skip_once


# wandb-core buffers a run's records and writes its .wandb file every 15 s by default (and at finish), so a
# kill -9 lost every step logged since. It has no flush call; a short write interval and a wait of a few of
# them at each checkpoint put the records logged before the checkpoint on disk (tests/faults/test_wandb_kill.py).
WANDB_WRITE_INTERVAL = 0.05  # seconds between wandb-core's writes of the .wandb file
WANDB_WAIT = 0.25  # seconds waited at a checkpoint: five write intervals (the service may be one behind)


def wandb_settings():
    """Settings of the run's W&B logger: the transaction log written every WANDB_WRITE_INTERVAL seconds."""
    import wandb

    if "x_transaction_log_flush_interval" not in getattr(wandb.Settings, "model_fields", {}):
        return wandb.Settings()  # an older wandb (< 0.22) without the setting: its own write schedule
    return wandb.Settings(x_transaction_log_flush_interval=WANDB_WRITE_INTERVAL)


def flush_loggers(trainer) -> None:
    """Everything logged so far onto disk before a checkpoint claims the step: CSV rows, and the W&B records
    (wandb-core writes them within WANDB_WRITE_INTERVAL of receiving them; a summary read is a round trip to
    the service, so it has received every record logged before it)."""
    for logger in trainer.loggers:
        logger.save()
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            dict(logger.experiment.summary)  # a round trip to wandb-core: every earlier record has arrived
            time.sleep(WANDB_WAIT)


class CheckpointFields(Callback):
    """Stamps every checkpoint with what it is (the content hash is added by AtomicCheckpointIO), and puts the
    logs of the step on disk first."""

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if _in_train_batch_end(trainer):
            _log_step_row_now(trainer)
        flush_loggers(trainer)
        checkpoint[RUN_FIELDS] = {"global_step": int(trainer.global_step),
                                  "images_seen": int(getattr(pl_module, "images_seen", 0)),
                                  "fit_finished": budget_reached(trainer, pl_module)}


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes `last.ckpt` (never `last-vN.ckpt`: a moved or copied run folder keeps one
    last file) at the step where fit stops, and nothing more at that epoch's end or the train end."""

    saves_last_on_stop = True  # tells the preemption handler not to mark this step as saved for us

    def __init__(self, *args, **kwargs):
        super().__init__(*args, enable_version_counter=False, **kwargs)

    def _monitor_candidates(self, trainer) -> dict:
        """The logged metrics, with the monitored train loss of this very step's window: the module logs it every
        `log_every_n_steps` only, and Lightning defers a save (numbered and last) while the key is missing, so
        `every_n_train_steps` would not hold for another log interval (issue 30, fault 1)."""
        candidates = super()._monitor_candidates(trainer)
        if self.monitor == "train/loss":
            since_log = getattr(trainer.lightning_module, "loss_since_last_log", lambda: None)()
            if since_log is not None:  # steps since the last log: their mean, like the logged value
                candidates[self.monitor] = torch.tensor(since_log, dtype=torch.float32)
            elif self.monitor not in candidates:  # nothing known yet: saved, ranked last
                candidates[self.monitor] = torch.tensor(float("inf"))
        return candidates

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        stopping = trainer.should_stop or budget_reached(trainer, pl_module)
        if stopping and self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = trainer.global_step

    def on_train_end(self, trainer, pl_module) -> None:
        if self._last_global_step_saved == trainer.global_step:
            return  # this step is on disk; a train-end save would store the epoch as done
        super().on_train_end(trainer, pl_module)
