"""Latent space <-> images: opening the recorded autoencoder and decoding samples to pixels.

What a latent space is (autoencoder, normalisation, image shape) and how it is stored: data/latent_space.py.
The diffusion model sees x; `LatentCodec.decode` maps x back to z and through the autoencoder's decoder to images
in [-1, 1], so that sampling, previews and FD work on pixels.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from lit_diffusion.backbones.autoencoders import DiffusersAutoencoder, KLAutoencoder, weights_digest
from lit_diffusion.data.filetype import describe, sniff_file
from lit_diffusion.data.latent_space import LATENT_KEY, AutoencoderRecord, LatentSpace  # noqa: F401 (old home)
from lit_diffusion.runs import CheckpointError, open_checkpoint

FRAMEWORK_CLASSES = {"lit_diffusion.backbones.autoencoders.KLAutoencoder": KLAutoencoder,
                     "lit_diffusion.backbones.autoencoders.kl_autoencoder.KLAutoencoder": KLAutoencoder}
AUTOENCODER_CKPT_KEY = "autoencoder"  # in a checkpoint of AutoencoderModule: {"class_path", "init_args"}


def _load_framework(path: Path) -> nn.Module:
    if not path.is_file():
        raise FileNotFoundError(f"autoencoder checkpoint {path} does not exist: train one with `lit-diffusion fit -c "
                                f"experiments/autoencoder/mnist.yaml` (RUN/checkpoints/last.ckpt), or give a "
                                f"diffusers folder / hub id")
    kind = sniff_file(path)
    if kind not in (None, "zip", "pickle"):  # torch checkpoints are zip files (legacy ones pickles)
        raise ValueError(f"{path} is {describe(kind)}, expected a checkpoint of the framework's autoencoder "
                         f"(RUN/checkpoints/last.ckpt of `lit-diffusion fit -c experiments/autoencoder/...`) or a "
                         f"diffusers folder / hub id")
    try:
        ckpt = open_checkpoint(path).full()  # hash-checked like every checkpoint
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:  # torn, or bytes that are no checkpoint
        raise ValueError(f"{path} cannot be read as a checkpoint ({str(e).splitlines()[0] if str(e) else e!r}): "
                         f"give the framework autoencoder's RUN/checkpoints/last.ckpt, written completely") from e
    spec = ckpt.get(AUTOENCODER_CKPT_KEY) if isinstance(ckpt, dict) else None
    if spec is None or spec.get("class_path") not in FRAMEWORK_CLASSES:
        raise ValueError(f"{path} is not a checkpoint of the framework's autoencoder (no {AUTOENCODER_CKPT_KEY!r} "
                         f"record): give RUN/checkpoints/last.ckpt of `lit-diffusion fit -c experiments/autoencoder/...`")
    model = FRAMEWORK_CLASSES[spec["class_path"]](**spec.get("init_args", {}))
    prefix = "autoencoder."
    model.load_state_dict({k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)})
    return model.eval()


def open_autoencoder(location: str, subfolder: str | None = None) -> tuple[nn.Module, AutoencoderRecord]:
    """(autoencoder, its record) from a framework .ckpt, a diffusers folder (save_pretrained) or a hub id."""
    path = Path(location).expanduser()
    if path.suffix == ".ckpt" or path.is_file():
        model, kind, where = _load_framework(path), "framework", str(path.resolve())
    else:
        model = DiffusersAutoencoder.from_pretrained(location, subfolder)
        kind, where = "diffusers", str(path.resolve()) if path.exists() else location
    record = AutoencoderRecord(kind=kind, location=where, subfolder=subfolder, weights_sha256=weights_digest(model),
                               in_channels=model.in_channels, latent_channels=model.latent_channels,
                               factor=model.factor)
    return model, record


def load_recorded_autoencoder(record: AutoencoderRecord, location: str | None = None) -> nn.Module:
    """The autoencoder a dataset or checkpoint names (or the one at `location`, e.g. after moving it), checked to
    have exactly the recorded weights."""
    where = location or record.location
    model, found = open_autoencoder(where, record.subfolder)
    if found.weights_sha256 != record.weights_sha256:
        raise ValueError(f"the autoencoder at {where} has other weights (sha256 {found.weights_sha256[:12]}) than "
                         f"the one these latents were encoded with ({record.weights_sha256[:12]}, "
                         f"{record.location}): give that autoencoder (--autoencoder PATH), or encode the images "
                         f"again with this one")
    return model


class LatentCodec:
    """The autoencoder and normalisation of a latent model: `decode(x)` turns model samples into images.

    The autoencoder is loaded on first use (sampling a pixel-space model never loads anything)."""

    def __init__(self, latent: LatentSpace, location: str | None = None, batch_size: int = 64):
        self.latent, self.location, self.batch_size = latent, location, batch_size
        self.normalization = latent.normalizer
        self._model: nn.Module | None = None

    @property
    def autoencoder(self) -> nn.Module:
        if self._model is None:
            self._model = load_recorded_autoencoder(self.latent.autoencoder, self.location)
        return self._model

    @torch.no_grad()
    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c, h, w) normalised latents -> (B, C, H, W) images in [-1, 1], on x's device."""
        model = self.autoencoder.to(x.device)
        out = [model.decode(self.normalization.denormalize(x[i:i + self.batch_size].float()))
               for i in range(0, len(x), self.batch_size)]
        return torch.cat(out).clamp(-1, 1)


def to_images(x: torch.Tensor, latent: LatentSpace | None, codec: LatentCodec | None = None) -> torch.Tensor:
    """Samples as images in [-1, 1]: pixel-space samples unchanged, latents decoded (the one place that decides)."""
    if latent is None:
        return x
    return (codec or LatentCodec(latent)).decode(x)
