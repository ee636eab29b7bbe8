"""AutoencoderModule: trains the framework's KL-regularised autoencoder (the first stage of latent diffusion).

Loss per image (Rombach et al. 2022, Sec. 3, the "KL-reg." variant, without the perceptual and adversarial
terms): reconstruction error of a posterior draw plus kl_weight times KL(q(z | x) || N(0, I)), both summed over
elements and divided by the number of pixels, so kl_weight means what LDM's KL weight means (1e-6 there).

It follows the run conventions of DiffusionModule (images seen, an image budget, train seconds, the config in the
checkpoint, an exactly resumable noise generator), so `lit-diffusion fit -c experiments/autoencoder/mnist.yaml`
checkpoints, resumes and previews like any run. The checkpoint also records the autoencoder's class and
arguments, which is all `lit-diffusion data encode --autoencoder RUN/checkpoints/last.ckpt` needs.
"""
from __future__ import annotations

from typing import Literal

import lightning.pytorch as pl
import torch

from lit_diffusion.backbones.autoencoders.kl_autoencoder import KLAutoencoder, kl_to_standard_normal
from lit_diffusion.generation.latents import AUTOENCODER_CKPT_KEY
from lit_diffusion.training.bookkeeping import RunBookkeeping, restore_counts, stop_at_image_budget
from lit_diffusion.training.noise_generators import rank_generator, save_noise_states, saved_noise_state
from lit_diffusion.training.schedule import LRSchedule

PREVIEW_IMAGES = 32  # originals and their reconstructions in a preview grid


class AutoencoderModule(pl.LightningModule):
    """Args:
        autoencoder: the KLAutoencoder to train.
        max_images: training length in images seen across all ranks.
        lr, betas: AdamW.
        schedule: learning-rate warm-up and decay, in images seen.
        kl_weight: weight of the KL term (per pixel, as LDM's).
        reconstruction: "l1" (LDM's pixel loss) or "l2".
        seed: seed of the posterior draws (offset by rank); saved and restored with checkpoints.
    """

    def __init__(self, autoencoder: KLAutoencoder, max_images: int = 1_000_000, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), schedule: LRSchedule | None = None,
                 kl_weight: float = 1e-6, reconstruction: Literal["l1", "l2"] = "l1", seed: int = 0):
        super().__init__()
        if max_images < 1 or lr <= 0 or kl_weight < 0:
            raise ValueError(f"AutoencoderModule: need max_images >= 1, lr > 0 and kl_weight >= 0, got {max_images}, "
                             f"{lr}, {kl_weight}")
        if reconstruction not in ("l1", "l2"):
            raise ValueError(f"AutoencoderModule: reconstruction must be 'l1' or 'l2', got {reconstruction!r}")
        self.autoencoder = autoencoder
        self.max_images, self.lr, self.betas, self.kl_weight = int(max_images), float(lr), tuple(betas), float(kl_weight)
        self.schedule, self.reconstruction, self.seed = schedule or LRSchedule(), reconstruction, int(seed)
        self.images_seen, self.train_seconds = 0, 0.0  # counted by RunBookkeeping
        self.model_spec: dict | None = None  # set by the CLI
        self.sample_shape: tuple[int, ...] | None = None  # image shape (previews)
        self.noise_generator: torch.Generator | None = None
        self._pending_generator_state: torch.Tensor | None = None
        self.preview_batch: torch.Tensor | None = None  # fixed images for preview grids (the first batch's)
        self.save_hyperparameters(ignore=["autoencoder", "schedule"])

    @property
    def backbone(self) -> torch.nn.Module:
        """The trained network under the name the launch code uses for every module."""
        return self.autoencoder

    def autoencoder_record(self) -> dict:
        a = self.autoencoder
        return {"class_path": f"{type(a).__module__}.{type(a).__name__}",
                "init_args": {"in_channels": a.in_channels, "latent_channels": a.latent_channels,
                              "channels": list(a.channels)}}

    def configure_optimizers(self):
        return torch.optim.AdamW(self.autoencoder.parameters(), lr=self.lr, betas=self.betas)

    def _generator(self) -> torch.Generator:
        if self.noise_generator is None or self.noise_generator.device != self.device:
            self.noise_generator = rank_generator(self.device, self.seed, self.global_rank,
                                                  self._pending_generator_state)
            self._pending_generator_state = None
        return self.noise_generator

    def losses(self, x: torch.Tensor, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        """Batch means of the loss, the reconstruction term and the KL (per pixel)."""
        recon, mean, logvar = self.autoencoder(x, generator)
        err = (recon - x).abs() if self.reconstruction == "l1" else (recon - x).square()
        pixels = x[0].numel()
        rec = err.flatten(1).sum(1) / pixels
        kl = kl_to_standard_normal(mean, logvar) / pixels
        return {"loss": (rec + self.kl_weight * kl).mean(), "reconstruction": rec.mean(), "kl": kl.mean()}

    def configure_callbacks(self):
        return [RunBookkeeping()]

    def on_train_batch_start(self, batch, batch_idx):
        factor = self.schedule.factor(self.images_seen, self.max_images)
        for group in self.optimizers().param_groups:
            group["lr"] = self.lr * factor

    def training_step(self, batch, batch_idx):
        x = batch["x"]
        self.sample_shape = tuple(x.shape[1:])
        if self.preview_batch is None:
            self.preview_batch = x[:PREVIEW_IMAGES].detach().cpu()
        out = self.losses(x, self._generator())
        for name, value in out.items():
            self.log(f"train/{name}", value.detach(), prog_bar=name == "loss")
        return out["loss"]  # RunBookkeeping counts the batch's images next

    def on_train_batch_end(self, outputs, batch, batch_idx):
        stop_at_image_budget(self)  # after every callback's hook (training/bookkeeping.py says why)

    def validation_step(self, batch, batch_idx):
        out = self.losses(batch["x"], torch.Generator(device=self.device).manual_seed(10_000 + batch_idx))
        self.log("val/loss", out["loss"], sync_dist=True, prog_bar=True)
        self.log("val/reconstruction", out["reconstruction"], sync_dist=True)
        return out["loss"]

    @torch.no_grad()
    def preview_images(self) -> torch.Tensor | None:
        """Pairs (original, reconstruction of its posterior mean) in [-1, 1], interleaved, for the preview grid."""
        if self.preview_batch is None:
            return None
        x = self.preview_batch.to(self.device)
        mean, _ = self.autoencoder.encode(x)
        recon = self.autoencoder.decode(mean).clamp(-1, 1)
        return torch.stack([x, recon], dim=1).flatten(0, 1)

    def on_save_checkpoint(self, checkpoint):  # images seen and train seconds: RunBookkeeping
        if self.model_spec is not None:
            checkpoint["model_spec"] = self.model_spec
        if self.sample_shape is not None:
            checkpoint["sample_shape"] = list(self.sample_shape)
        save_noise_states(checkpoint, self._generator())  # every rank's state: rank r resumes its own draws
        checkpoint[AUTOENCODER_CKPT_KEY] = self.autoencoder_record()

    def on_load_checkpoint(self, checkpoint):
        restore_counts(self, checkpoint)
        self.model_spec = checkpoint.get("model_spec", self.model_spec)
        if checkpoint.get("sample_shape") is not None:
            self.sample_shape = tuple(checkpoint["sample_shape"])
        self._pending_generator_state = saved_noise_state(checkpoint, self.global_rank, self.seed)
        self.noise_generator = None
