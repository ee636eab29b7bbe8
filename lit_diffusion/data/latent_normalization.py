"""How latents are scaled for the diffusion model: x = normalize(z), z = denormalize(x).

Records (in dataset.json ``build["latent"]["normalization"]`` and in checkpoints)::

    {"kind": "scalar", "scale": s, "shift": m}      x = (z - m) * s; SD-VAE's s = 0.18215 (Rombach et al. 2022,
                                                    Sec. 4.3.2 / App. G: rescale so that z has about unit variance)
    {"kind": "channel", "mean": [..], "std": [..]}  x = (z - mean_c) / std_c, statistics over the dataset
                                                    (EDM2, Karras et al. 2024; LightningDiT, Yao et al. 2025)
    {"kind": "none"}                                x = z
"""
from __future__ import annotations

import numpy as np
import torch

class Normalization:
    """x = normalize(z) for the diffusion model, z = denormalize(x) for the decoder (see the module docstring)."""

    def __init__(self, record: dict):
        self.record = dict(record)
        kind = record.get("kind")
        if kind == "scalar":
            self.scale, self.shift = float(record["scale"]), float(record.get("shift", 0.0))
            if self.scale <= 0:
                raise ValueError(f"latent normalisation: scale must be positive, got {self.scale}")
        elif kind == "channel":
            self.mean = torch.tensor(record["mean"], dtype=torch.float32)
            self.std = torch.tensor(record["std"], dtype=torch.float32)
            if len(self.mean) != len(self.std) or bool((self.std <= 0).any()):
                raise ValueError(f"latent normalisation: mean and std need one entry per channel and std > 0, got "
                                 f"{record['mean']}, {record['std']}")
        elif kind != "none":
            raise ValueError(f"latent normalisation kind must be scalar, channel or none, got {kind!r}")
        self.kind = kind

    def numpy(self, z: np.ndarray) -> np.ndarray:
        """normalize for one (C, H, W) array (the data loader's path)."""
        if self.kind == "scalar":
            return ((z - self.shift) * self.scale).astype(np.float32)
        if self.kind == "channel":
            return ((z - self.mean.numpy()[:, None, None]) / self.std.numpy()[:, None, None]).astype(np.float32)
        return z.astype(np.float32)

    def _channel(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (-1,) + (1,) * (z.ndim - 2 if z.ndim == 4 else z.ndim - 1)
        return self.mean.to(z).view(shape), self.std.to(z).view(shape)

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        if self.kind == "scalar":
            return (z - self.shift) * self.scale
        if self.kind == "channel":
            mean, std = self._channel(z)
            return (z - mean) / std
        return z

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "scalar":
            return x / self.scale + self.shift
        if self.kind == "channel":
            mean, std = self._channel(x)
            return x * std + mean
        return x


