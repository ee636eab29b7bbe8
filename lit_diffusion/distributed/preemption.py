"""Preemption, time limits and stop requests: on a signal (SIGUSR1 from SLURM's `--signal=USR1@SECONDS` or
`scancel --signal=USR1`; SIGTERM from kill, timeout, a container stop or a plain scancel; SIGINT from Ctrl-C)
the handler only sets a flag; at the next step boundary every rank agrees to stop,
a checkpoint is written, the W&B run is finished (offline runs keep records in memory until then) and, under
SLURM, rank 0 requeues the job (on SIGUSR1 only: SIGTERM and SIGINT mean "stop", not "come back"). The
CLI then exits non-zero when the run did not reach its budget. Data-loader workers ignore these signals (a
SIGTERM to the whole process group would otherwise kill them and crash the main process before it saves):
the main process alone decides when to stop, and shuts its workers down itself. The requeued job runs the same command with `--ckpt_path last`, resumes
from that checkpoint into the same W&B run, and logs `slurm/restart_count` (SLURM_RESTART_COUNT)."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

import lightning.pytorch as pl

log = logging.getLogger("lit_diffusion.distributed")

PREEMPT_CHECKPOINT = "preempted.ckpt"
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT)
REQUEUE_SIGNALS = (signal.SIGUSR1,)


class _WorkerIgnoresStopSignals:
    """Stands in for torch's worker signal setup (which makes a worker die of a SIGTERM that does not come from
    its parent): torch's handlers, then the stop signals ignored. Installed in the main process before the
    workers fork; torch's worker loop looks the function up on its module at start."""

    def __init__(self, original):
        self.original = original

    def __call__(self, *args):
        self.original(*args)
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


def _shield_workers() -> None:
    from torch.utils.data._utils import signal_handling

    if not isinstance(signal_handling._set_worker_signal_handlers, _WorkerIgnoresStopSignals):
        signal_handling._set_worker_signal_handlers = _WorkerIgnoresStopSignals(signal_handling._set_worker_signal_handlers)


def _unshield_workers() -> None:
    from torch.utils.data._utils import signal_handling

    if isinstance(signal_handling._set_worker_signal_handlers, _WorkerIgnoresStopSignals):
        signal_handling._set_worker_signal_handlers = signal_handling._set_worker_signal_handlers.original


def restart_count() -> int:
    """How many times SLURM has requeued this job (SLURM_RESTART_COUNT is unset on the first run)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def requeue_command() -> list[str] | None:
    job = os.environ.get("SLURM_JOB_ID")
    return ["scontrol", "requeue", job] if job else None


class RequeueOnSignal(pl.Callback):
    """Args:
        checkpoint_dir: where `preempted.ckpt` is written (the directory `--ckpt_path last` searches).
        signals: the signals that mean "save at the next step boundary and stop".
        requeue: requeue the SLURM job (only when running inside one, and only on SIGUSR1).
    """

    def __init__(self, checkpoint_dir: str | Path, signals: tuple[int, ...] = STOP_SIGNALS, requeue: bool = True):
        self.checkpoint_dir = Path(checkpoint_dir)
        self.signals = tuple(signals)
        self.requeue = requeue
        self.received: int | None = None
        self.preempted = False
        self._previous: dict[int, object] = {}

    def _handler(self, signum, frame) -> None:
        self.received = signum  # only a flag: the checkpoint is written at the next step boundary

    def on_fit_start(self, trainer, pl_module) -> None:
        _shield_workers()  # before the first epoch starts its workers (Lightning does that before on_train_start)

    def on_train_start(self, trainer, pl_module) -> None:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)
        count = restart_count()
        if trainer.global_rank == 0:
            print(f"lit_diffusion: training started at step {trainer.global_step} (restart {count})", flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "SLURM_JOB_ID" in os.environ:
            pl_module.log("slurm/restart_count", float(restart_count()))
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if not stop or self.preempted:
            return
        path = self.checkpoint_dir / PREEMPT_CHECKPOINT
        trainer.save_checkpoint(path)
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "saves_last_on_stop", False):
                continue  # it writes last.ckpt for this very step too, so `sample --ckpt last.ckpt` is current
            # stopping ends the epoch early, and ModelCheckpoint would then write last.ckpt (epoch end, train
            # end) with the epoch marked done, newer than ours: `--ckpt_path last` would resume a new epoch.
            # It writes nothing for a step it has already saved, so mark this one saved.
            if hasattr(callback, "_last_global_step_saved"):
                callback._last_global_step_saved = trainer.global_step
            if hasattr(callback, "_last_checkpoint_saved"):
                callback._last_checkpoint_saved = True
        self.preempted = True
        trainer.should_stop = True
        if trainer.global_rank == 0:
            print(f"lit_diffusion: signal {self.received} -> checkpoint {path} at step {trainer.global_step}",
                  flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def teardown(self, trainer, pl_module, stage) -> None:
        _unshield_workers()
        if not self.preempted or stage != "fit":
            return
        logger = trainer.logger
        if trainer.global_rank == 0 and type(logger).__name__ == "WandbLogger":
            logger.experiment.finish()  # flush the offline records before the job is killed by the requeue
        command = requeue_command() if self.requeue and self.received in REQUEUE_SIGNALS else None
        if trainer.global_rank == 0 and command:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")
            print(f"lit_diffusion: requeued job {command[-1]}", flush=True)
