"""Sample grids from fixed noise at an interval: the same noise (and labels) every time, so successive
grids show how the model changes. Logged to W&B as images when W&B is on, and written as PNG files
under the run directory (`previews/step_NNNNNNN.png`) in every case."""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch

from lit_diffusion.generation import generate, image_grid, save_png, to_uint8
from lit_diffusion.generation.latents import LatentCodec
from lit_diffusion.runs import RunDirectory


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
        self._codec: LatentCodec | None = None  # a latent model's decoder, loaded at its first preview

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step % self.every_n_steps == 0:
            self.preview(trainer, pl_module)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step % self.every_n_steps != 0:
            self.preview(trainer, pl_module)

    def _images(self, pl_module) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1]: an autoencoder's reconstructions, or samples (latents decoded to images)."""
        if hasattr(pl_module, "preview_images"):
            return pl_module.preview_images()
        classes = pl_module.sample_classes
        net = pl_module.ema.shadow  # previews show what sampling will use
        batch = next(generate(pl_module.objective, net, pl_module.sample_shape, self.num_samples, seed=self.seed,
                              batch_size=self.num_samples, num_classes=classes, device=pl_module.device,
                              sampler=self.sampler, nfe=self.nfe, **pl_module.sample_options))
        latent = getattr(pl_module, "latent", None)
        if latent is None:
            return batch.x0
        if self._codec is None:
            self._codec = LatentCodec(latent)
        return self._codec.decode(batch.x0)

    @torch.no_grad()
    def preview(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero or pl_module.sample_shape is None or len(pl_module.sample_shape) != 3:
            return
        images = self._images(pl_module)
        if images is None:
            return
        grid = image_grid(to_uint8(images), columns=8)
        path = RunDirectory(trainer.default_root_dir).preview(trainer.global_step)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(grid, path)
        self.written.append(path)
        logger = trainer.logger
        if logger is not None and type(logger).__name__ == "WandbLogger":
            logger.log_image(key="samples", images=[grid], step=trainer.global_step)
