"""TrainingProgress: what a long `fit` is doing, wherever its output goes.

Lightning's bar is off in the experiment configs because under SLURM and in log files a tqdm bar is one
endless line of carriage returns. This callback prints, on global rank zero, to stderr:
- on a terminal: one status line rewritten in place about every second;
- otherwise (logs, SLURM): a line every ``every_seconds`` (default 30 s);
then a closing line with the steps, images and time, whatever happened.
A line: ``step 1200 | 76,800/499,200 images (15%) | loss 0.0412 | 1,850 images/s | ETA 3:48`` (a module with an
image budget, as DiffusionModule's max_images), else ``step 1200/7800 (15%) | 76,800 images | ...``. An
adaptively weighted objective (MeanFlow, sCM) also shows ``raw error 41.3`` after the loss: its unweighted error.
"""
from __future__ import annotations

import math
import sys
import time

import lightning.pytorch as pl


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return f"{seconds // 60}:{seconds % 60:02d}"


class TrainingProgress(pl.Callback):
    """Progress lines (step, images, loss, images/s, ETA) every ``every_seconds``, and a closing line."""

    def __init__(self, every_seconds: float = 30.0, stream=None):
        self.every_seconds = every_seconds
        self.stream = stream
        self._start = self._last = 0.0
        self._first_step = 0
        self._images = 0
        self._started = False

    @property
    def _out(self):
        return self.stream or sys.stderr

    def _tty(self) -> bool:
        isatty = getattr(self._out, "isatty", None)
        return bool(isatty and isatty())

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._first_step = trainer.global_step
        self._images = 0
        self._started = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        x = batch.get("x") if isinstance(batch, dict) else None
        self._images += (len(x) if x is not None else 0) * trainer.world_size
        now = time.monotonic()
        interval = 1.0 if self._tty() else self.every_seconds
        if not trainer.is_global_zero or now - self._last < interval:
            return
        self._last = now
        line = self._line(trainer, pl_module, now)
        if self._tty():
            print(f"\r{line}\033[K", end="", file=self._out, flush=True)
        else:
            print(line, file=self._out, flush=True)

    @staticmethod
    def _image_budget(pl_module) -> tuple[int, int] | None:
        """(images seen, image budget) of a module that stops on an image budget (DiffusionModule), else None."""
        seen, budget = getattr(pl_module, "images_seen", None), getattr(pl_module, "max_images", None)
        return (int(seen), int(budget)) if isinstance(seen, int) and isinstance(budget, int) and budget > 0 else None

    def _total_steps(self, trainer: pl.Trainer) -> int | None:
        if trainer.max_steps and trainer.max_steps > 0:
            return trainer.max_steps
        estimated = trainer.estimated_stepping_batches
        return int(estimated) if estimated and math.isfinite(estimated) else None

    def _line(self, trainer: pl.Trainer, pl_module: pl.LightningModule, now: float) -> str:
        step, elapsed = trainer.global_step, max(now - self._start, 1e-9)
        rate = self._images / elapsed
        budget, total = self._image_budget(pl_module), self._total_steps(trainer)
        if budget is not None:  # the run ends on images seen: percent and ETA in images
            seen, limit = budget
            parts = [f"step {step}", f"{seen:,}/{limit:,} images ({100 * seen / limit:.0f}%)"]
            eta = (limit - seen) / rate if rate > 0 else None
        else:
            parts = [f"step {step}/{total} ({100 * step / max(total, 1):.0f}%)" if total else f"step {step}",
                     f"{self._images:,} images"]
            steps_done = step - self._first_step
            eta = (total - step) * elapsed / steps_done if total and steps_done > 0 else None
        loss = trainer.callback_metrics.get("train/loss")
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        raw = trainer.callback_metrics.get("train/raw_error")  # adaptive weighting keeps the loss near 1: this moves
        if raw is not None:
            parts.append(f"raw error {float(raw):.4g}")
        parts.append(f"{rate:,.0f} images/s")
        if eta is not None:
            parts.append(f"ETA {_duration(max(eta, 0.0))}")
        return " | ".join(parts)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close(trainer)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close(trainer, f" (stopped: {type(exception).__name__})")

    def _close(self, trainer: pl.Trainer, why: str = "") -> None:
        if not self._started or not trainer.is_global_zero:
            return
        self._started = False
        elapsed = time.monotonic() - self._start
        if self._tty():
            print(file=self._out)  # end the status line
        steps = trainer.global_step - self._first_step
        print(f"training ended{why}: {steps} steps (global step {trainer.global_step}), {self._images:,} images "
              f"in {_duration(elapsed)} ({self._images / max(elapsed, 1e-9):,.0f} images/s)",
              file=self._out, flush=True)
