"""Sample grids from fixed noise at an interval: the same noise (and labels) every time, so successive
grids show how the model changes. Logged to W&B as images when W&B is on, and written as PNG files
under the run directory (`previews/step_NNNNNNN.png`) in every case."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
from PIL import Image


def image_grid(x: torch.Tensor, columns: int = 8) -> np.ndarray:
    """(B, C, H, W) in [-1, 1] -> (rows*H, columns*W, C) uint8 with 1-pixel gaps."""
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    b, c, h, w = x.shape
    rows = -(-b // columns)
    canvas = torch.zeros(c, rows * (h + 1) + 1, columns * (w + 1) + 1, dtype=torch.uint8)
    for i in range(b):
        r, q = divmod(i, columns)
        canvas[:, 1 + r * (h + 1):1 + r * (h + 1) + h, 1 + q * (w + 1):1 + q * (w + 1) + w] = x[i]
    return canvas.permute(1, 2, 0).numpy()


def save_png(array: np.ndarray, path) -> None:
    """(H, W, C) uint8 -> PNG, greyscale when C == 1."""
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)


class SamplePreview(pl.Callback):
    """Args:
        every_n_steps: optimiser steps between grids (also one at the end of training).
        num_samples: images per grid; labels cycle through the classes for conditional models.
        sampler, nfe: passed to the objective (None: its defaults). seed: the fixed noise.
    """

    def __init__(self, every_n_steps: int = 1000, num_samples: int = 64, sampler: str | None = None,
                 nfe: int | None = None, seed: int = 1234):
        if every_n_steps < 1 or num_samples < 1:
            raise ValueError(f"SamplePreview: every_n_steps and num_samples must be >= 1, got {every_n_steps}, {num_samples}")
        self.every_n_steps, self.num_samples, self.sampler, self.nfe, self.seed = every_n_steps, num_samples, sampler, nfe, seed
        self.written: list[Path] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps == 0:
            self.preview(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step % self.every_n_steps != 0:
            self.preview(trainer, pl_module)

    @torch.no_grad()
    def preview(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or pl_module.sample_shape is None or len(pl_module.sample_shape) != 3:
            return
        noise = torch.randn((self.num_samples, *pl_module.sample_shape), generator=torch.Generator().manual_seed(self.seed))
        classes = getattr(pl_module.backbone, "num_classes", 0) if pl_module.conditional else 0
        labels = torch.arange(self.num_samples) % classes if classes else None
        device = pl_module.device
        x = pl_module.generate(noise.to(device), sampler=self.sampler, nfe=self.nfe,
                               cond=None if labels is None else labels.to(device),
                               generator=torch.Generator(device).manual_seed(self.seed))
        grid = image_grid(x.float())
        path = Path(trainer.default_root_dir) / "previews" / f"step_{trainer.global_step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(grid, path)
        self.written.append(path)
        logger = trainer.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            logger.log_image(key="samples", images=[grid], step=trainer.global_step)
