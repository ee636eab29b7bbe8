"""A generation session: a trained model opened on this rank's device, turned into samples on disk.

`lit-diffusion sample` and `reflow` (and any caller that generates from a checkpoint) share its preamble:
this rank and its device, the module moved there, its sample shape checked, EMA or raw weights, the classes
to cycle through, the x0 threshold setting, the latent decoder; then the batched loop of `generation.loop`.
The model is a LightningModule of lit_diffusion, duck-typed here (objective, ema, backbone, sample_shape,
sample_classes, sample_options, image_data, latent) so that this folder stays free of training and Lightning.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch
from torch import nn

from lit_diffusion.data.writes import writing
from lit_diffusion.distributed import process
from lit_diffusion.generation.images import image_grid, save_png, to_uint8
from lit_diffusion.generation.latents import LatentCodec, to_images
from lit_diffusion.generation.loop import GeneratedBatch, generate, index_batches
from lit_diffusion.generation.noise import rank_indices, sample_noise
from lit_diffusion.samplers import THRESHOLDS

X0_THRESHOLD_SETTINGS = ("default", "none", *THRESHOLDS)  # --x0-threshold: the objective's choice, none, or one


def check_counts(**counts: Optional[int]) -> None:
    """Counts given on the command line (num, nfe, batch_size, ...) must be >= 1 where given."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")


@dataclass
class Couplings:
    """(noise, sample) pairs in index order, on the CPU: what reflow trains the next flow on."""
    noise: np.ndarray  # (N, *shape) float32
    x0: np.ndarray  # (N, *shape) float32
    labels: Optional[np.ndarray]  # (N,) int64, or None for an unconditional model


@dataclass
class GenerationSession:
    module: Any  # the trained LightningModule, on `device`
    net: nn.Module  # the weights that generate: the EMA, or the raw backbone
    device: torch.device
    command: str  # "lit-diffusion sample", ...: the prefix of the session's messages
    rank: int = 0
    world_size: int = 1
    codec: Optional[LatentCodec] = None

    @classmethod
    def open(cls, ckpt: str, load: Callable[[str], Any], *, command: str, device: Optional[str] = None,
             raw_weights: bool = False, autoencoder: Optional[str] = None, share: bool = False) -> "GenerationSession":
        """Load checkpoint `ckpt` with `load` (training.loading.load_module) onto this rank's device. `share`:
        the ranks of a launcher split the indices (joining its process group); else this process does all."""
        target = process.device(device)
        me = process.join_process_group(target) if share else process.Process(0, 1, 0, 0)
        module = load(ckpt).to(target)
        if module.sample_shape is None:
            raise SystemExit(f"{command}: {ckpt} records no sample shape (train at least one step)")
        codec = None if module.latent is None else LatentCodec(module.latent, autoencoder)
        return cls(module, module.backbone if raw_weights else module.ema.shadow, target, command, me.rank,
                   me.world_size, codec)

    @property
    def num_classes(self) -> int:
        return self.module.sample_classes

    def check_conditioning(self, label: Optional[int], guidance: float) -> None:
        """A fixed label must be one of the model's classes; guidance needs a conditional model (and its null class)."""
        if label is not None and not 0 <= label < max(self.num_classes, 1):
            raise SystemExit(f"{self.command}: --label {label} outside the model's {self.num_classes} classes")
        if guidance != 1.0:
            if self.num_classes == 0:
                raise SystemExit(f"{self.command}: --cfg needs a class-conditional model")
            if self.module.objective.null_label is None:
                self.module.objective.null_label = self.num_classes  # the backbone's reserved null class (DESIGN §3)

    def x0_threshold(self, setting: str) -> dict:
        """The --x0-threshold setting as sampler options: the module's default, none, or one asked for (image
        data in [-1, 1] only). The one place the setting is checked."""
        if setting not in X0_THRESHOLD_SETTINGS:
            raise ValueError(f"--x0-threshold must be default, none or one of {list(THRESHOLDS)}, got {setting!r}")
        if setting == "default":
            return self.module.sample_options
        if setting == "none":
            return {}
        if not self.module.image_data:
            raise ValueError(f"--x0-threshold {setting} clips predictions to the image range [-1, 1]; this "
                             "checkpoint's data are latents or tensors (or it was trained before the data kind was "
                             "recorded): use --x0-threshold none")
        return {"x0_threshold": setting, "data_range": (-1.0, 1.0)}

    def load_autoencoder(self) -> None:
        """Latent models: load the decoder now, so that a missing or different autoencoder fails before sampling."""
        if self.codec is not None:
            self.codec.autoencoder  # noqa: B018

    def batches(self, num: int, *, seed: int, batch_size: int, label: Optional[int] = None,
                **sample_options) -> Iterator[GeneratedBatch]:
        """This rank's share of samples 0..num-1 (generation.loop), batch by batch."""
        return generate(self.module.objective, self.net, self.module.sample_shape, num, seed=seed,
                        batch_size=batch_size, num_classes=self.num_classes, label=label, device=self.device,
                        rank=self.rank, world_size=self.world_size, **sample_options)

    def write_samples(self, folder: Path, num: int, **options) -> int:
        """Sample i as folder/sample_{i:06d}.png for this rank's indices, then (rank 0, after every rank)
        samples.npz and grid.png; returns the NFE per sample. `options` go to `batches`."""
        with writing(folder):  # a read-only or full disk: one line naming the path (data.writes)
            folder.mkdir(parents=True, exist_ok=True)
        done, mine, nfe = 0, len(rank_indices(num, self.rank, self.world_size)), options.get("nfe")
        for batch in self.batches(num, **options):
            nfe, done = batch.nfe, done + len(batch.indices)
            write_pngs(folder, batch.indices, to_uint8(to_images(batch.x0, self.module.latent, self.codec)))
            print(f"rank {self.rank}: {done}/{mine} samples ({nfe} NFE each)", file=sys.stderr)
        if self.world_size > 1:
            torch.distributed.barrier()
        if self.rank == 0:
            write_collection(folder, num, self.num_classes, options.get("label"))
        return nfe

    def edit_inputs(self, edit: str, input: Optional[str], mask: Optional[str], label: Optional[int],
                    num: Optional[int]) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """Check an edit's request against the model and read its inputs: (images, mask or None, labels or None)."""
        from lit_diffusion.generation.edit_inputs import read_images, read_mask
        from lit_diffusion.objectives.editing import EDITS, check_editable

        if edit not in EDITS:
            raise ValueError(f"--edit must be one of {list(EDITS)}, got {edit!r}")
        check_editable(self.module.objective)
        if self.module.latent is not None:
            raise ValueError("editing works on pixel-space models; this checkpoint samples latents of an autoencoder: "
                             "edit with a model trained on the images themselves")
        if input is None:
            raise ValueError(f"--edit {edit} needs --input IMAGES (a folder of PNGs or a .npy/.pt/.npz file)")
        if num is not None:
            raise ValueError("--num does not apply to --edit: every input image gives one output; drop --num")
        if (mask is None) == (edit == "inpaint"):
            raise ValueError("--edit inpaint needs --mask MASKS (white where the model paints)" if mask is None else
                             "--mask applies to --edit inpaint only; drop it, or use --edit inpaint")
        images, labels = read_images(input, self.module.sample_shape, self.module.image_data)
        masks = None if mask is None else read_mask(mask, images)
        if self.num_classes:
            if label is not None:
                labels = torch.full((len(images),), int(label), dtype=torch.int64)
            if labels is None:
                raise ValueError(f"this model is class-conditional ({self.num_classes} classes): give every input's "
                                 "class with --label N, or an --input .npz with 'labels' (as samples.npz)")
            if bool(((labels < 0) | (labels >= self.num_classes)).any()):
                raise ValueError(f"the input labels lie outside the model's {self.num_classes} classes")
        else:
            labels = None
        return images, masks, labels

    def write_edits(self, folder: Path, edit: str, images: torch.Tensor, mask: Optional[torch.Tensor],
                    labels: Optional[torch.Tensor], *, seed: int, batch_size: int, **options) -> int:
        """Edit input i with the noise of (seed, i) to folder/sample_{i:06d}.png for this rank's indices, then
        samples.npz and grid.png as `write_samples`; returns the NFE per image. `options` go to
        objectives.editing.sdedit / inpaint (t0, sampler, nfe, jump, resample, guidance, x0 threshold)."""
        from lit_diffusion.objectives import editing

        with writing(folder):
            folder.mkdir(parents=True, exist_ok=True)
        num, nfe = len(images), options.get("nfe")
        mine = len(rank_indices(num, self.rank, self.world_size))
        for start, idx in index_batches(num, batch_size, self.rank, self.world_size):  # as `generate` batches
            x = images[idx].to(self.device)
            noise = sample_noise(idx, x.shape[1:], seed).to(self.device)
            cond = None if labels is None else labels[idx].to(self.device)
            generator = torch.Generator(self.device).manual_seed(seed + start)
            if edit == "sdedit":
                out = editing.sdedit(self.module.objective, self.net, x, noise, cond=cond, generator=generator, **options)
            else:
                m = (mask if len(mask) == 1 else mask[idx]).to(self.device)
                out = editing.inpaint(self.module.objective, self.net, x, m, noise, cond=cond, generator=generator,
                                      **options)
            nfe = out.nfe
            write_pngs(folder, idx, to_uint8(out.x0))
            print(f"rank {self.rank}: {start + len(idx)}/{mine} edits ({nfe} NFE each)", file=sys.stderr)
        if self.world_size > 1:
            torch.distributed.barrier()
        if self.rank == 0:
            write_collection(folder, num, self.num_classes, None, None if labels is None else labels.numpy())
        return nfe

    def couplings(self, num: int, **options) -> Couplings:
        """Every (noise, sample) pair of indices 0..num-1 with their classes; `options` go to `batches`."""
        noises, targets, labels = [], [], []
        for batch in self.batches(num, **options):
            noises.append(batch.noise.numpy())
            targets.append(batch.x0.float().cpu().numpy())
            if batch.labels is not None:
                labels.append(batch.labels.cpu().numpy())
            print(f"{self.command.split()[-1]}: {batch.indices[-1] + 1}/{num} pairs", file=sys.stderr)
        return Couplings(np.concatenate(noises).astype(np.float32), np.concatenate(targets).astype(np.float32),
                         np.concatenate(labels).astype(np.int64) if labels else None)


def write_pngs(folder: Path, indices, images) -> None:
    """Image i as folder/sample_{i:06d}.png; a failed write leaves no partial file and says which (data.writes)."""
    for i, image in zip(indices, images):
        with writing(folder / f"sample_{i:06d}.png", discard=True):
            save_png(image, folder / f"sample_{i:06d}.png")


def write_collection(folder: Path, num: int, num_classes: int, label: Optional[int],
                     labels: Optional[np.ndarray] = None) -> None:
    """samples.npz (uint8 images, labels) and grid.png, read back from the PNGs (the PNGs are the record,
    written by every rank); `labels`: the classes of the samples where the caller chose them (edits)."""
    from PIL import Image

    images = np.stack([np.array(Image.open(folder / f"sample_{i:06d}.png")) for i in range(num)])
    images = images[..., None] if images.ndim == 3 else images
    if labels is None:
        labels = np.array([label if label is not None else i % num_classes for i in range(num)]) if num_classes \
            else np.zeros(0)
    with writing(folder / "samples.npz", discard=True):
        np.savez(folder / "samples.npz", images=images, labels=labels)
    with writing(folder / "grid.png", discard=True):
        save_png(image_grid(images[:256], gap=2), folder / "grid.png")
