"""Reading latent shards: a fresh draw from the stored posterior every epoch, the same one on an exact resume.

Latent shards (written by ``lit-diffusion data encode``, see ``latent_encode.py``) hold per sample the posterior
mean (``npy``) and standard deviation (``std.npy``) of q(z | x), as EDM2 stores them, and with flips on the same for
the mirrored image (``flip.npy``, ``flip.std.npy``). Each epoch the reader returns

    x = normalize(mean + std * eps)

where eps (and, with hflip, whether the mirrored image's latent is taken) is drawn from a generator seeded by
(seed, epoch, sample key) alone: it depends on neither the shard order, the worker nor the rank, so a resumed run
sees exactly the latents the uninterrupted one would have, and two epochs see different ones. A flipped latent is
the encoding of the flipped image, not the flipped latent (an autoencoder is not equivariant to flips).
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .dataset_json import DatasetInfo
from .decode import SampleDecoder
from .errors import DataError
from .latent_space import LatentSpace
from .shardio import RawSample

TAG_LATENT = 4  # beside plan.py's TAG_SHARDS / TAG_SHUFFLE / TAG_AUGMENT
MEAN, STD, FLIP_MEAN, FLIP_STD = "npy", "std.npy", "flip.npy", "flip.std.npy"


def key_number(key: str) -> int:
    """A 63-bit number of a sample key, for seeding (the keys of one dataset are unique)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


class LatentSampleDecoder(SampleDecoder):
    """Decode latent samples: a posterior draw per (seed, epoch, key), or the posterior mean (``draw=False``,
    validation), normalised as dataset.json says."""

    def __init__(self, info: DatasetInfo, labels: bool, seed: int = 0, epoch: int = 0, hflip: bool = False,
                 draw: bool = True):
        super().__init__(info, labels)
        latent = LatentSpace.of_dataset(info)
        if latent is None:
            raise ValueError("LatentSampleDecoder: dataset.json has no latent section (not written by `data encode`)")
        if hflip and not latent.flips:
            raise ValueError("--data.hflip true, but these latents were encoded without flips: encode with "
                             "`lit-diffusion data encode ... --hflip` (each image's mirror gets its own latent), "
                             "or pass --data.hflip false")
        self.normalization = latent.normalizer
        self.seed, self.epoch, self.hflip, self.draw = int(seed), int(epoch), hflip, draw
        self.required = (MEAN, STD) + ((FLIP_MEAN, FLIP_STD) if hflip else ()) + self.required[1:]

    def decode(self, raw: RawSample) -> dict:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(
            [self.seed, TAG_LATENT, self.epoch, key_number(raw.key)])))
        flip = self.hflip and bool(rng.integers(2))
        mean = self._array(raw, FLIP_MEAN if flip else MEAN).numpy()
        z = mean
        if self.draw:
            std = self._array(raw, FLIP_STD if flip else STD).numpy()
            if (std < 0).any():
                raise DataError("std.npy holds negative values", raw.url, raw.key)
            z = mean + std * rng.standard_normal(mean.shape, dtype=np.float32)
        out: dict = {"key": raw.key, "x": torch.from_numpy(self.normalization.numpy(z))}
        if self.labels:
            out["label"] = self._label(raw)
        return out


def train_decoder(info: DatasetInfo, labels: bool, decoder: str, seed: int, epoch: int, hflip: bool):
    """(decoder, hflip for the stream) of a training epoch: latent datasets flip inside the decoder, by choosing
    the mirrored image's latent, so the stream's own flip (of the tensor) is off for them."""
    if LatentSpace.of_dataset(info) is None:
        return SampleDecoder(info, labels, decoder), hflip
    return LatentSampleDecoder(info, labels, seed, epoch, hflip), False
