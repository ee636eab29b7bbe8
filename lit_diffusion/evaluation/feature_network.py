"""The feature-network contract of the evaluation.

A feature network maps images x (B, C, H, W), float in [-1, 1], to features (B, F) (the
embedding in which Frechet distance, KID and precision/recall are measured) and to class logits
(B, K) (Inception Score, class accuracy of conditional samples). It resizes or repeats channels
inside as it needs. ``name`` is for people; ``fingerprint`` identifies the weights and is part
of every cache key, so statistics from different networks never mix. ``weights_sha256`` (the full
hash of the weights) and ``resize`` (how images reach the network's input size) go on the protocol
card of every score (protocol.py).
"""
from __future__ import annotations

import abc
import hashlib

import torch
from torch import nn

from lit_diffusion.generation.images import quantize


class FeatureNetwork(nn.Module, metaclass=abc.ABCMeta):
    """Base class: subclasses implement ``features_and_logits`` (one pass) and ``fingerprint``."""

    name: str = "feature-network"
    num_features: int
    num_classes: int  # 0: no classifier head (no Inception Score, no class accuracy)
    resize: str = "none (images at the network's native resolution)"
    """The resize convention from generated images to the network input, recorded with every score."""

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """A string that identifies the weights (a hash); part of cache keys."""

    @abc.abstractmethod
    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [-1, 1] -> (features (B, F) float32, logits (B, K) float32)."""

    @property
    def weights_sha256(self) -> str:
        """sha256 over the state dict (names, dtypes, shapes, bytes in name order); subclasses whose weights
        come from a pinned file return that file's hash instead."""
        h = hashlib.sha256()
        for k, v in sorted(self.state_dict().items()):
            t = v.detach().cpu().contiguous()
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(x)[1]

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


def check_images(x: torch.Tensor, who: str, channels: tuple[int, ...] | None = None,
                 size: tuple[int, int] | None = None) -> torch.Tensor:
    """Validate an image batch (B, C, H, W) of floats; return it as float32.

    Values outside [-1, 1] are clipped by the networks, as saving the images to 8-bit files would.
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who}: x must be a (B, C, H, W) image batch, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"{who}: x must be float in [-1, 1], got dtype {x.dtype}")
    if channels is not None and x.shape[1] not in channels:
        raise ValueError(f"{who}: x has {x.shape[1]} channels, this network takes {' or '.join(map(str, channels))}")
    if size is not None and tuple(x.shape[2:]) != tuple(size):
        raise ValueError(f"{who}: x is {x.shape[2]}x{x.shape[3]}, this network was trained on {size[0]}x{size[1]} "
                         f"images")
    if not torch.isfinite(x).all():
        raise ValueError(f"{who}: x contains NaN or inf")
    return x.float()


def extract(feature_net: FeatureNetwork, x: torch.Tensor, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, F), logits (N, K)), float32 on the CPU, of images ``x`` (N, C, H, W), in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    feats, logits = [], []
    for i in range(0, x.shape[0], batch_size):
        f, lg = feature_net.features_and_logits(x[i:i + batch_size])
        feats.append(f.float().cpu())
        logits.append(lg.float().cpu())
    if not feats:
        return torch.empty(0, feature_net.num_features), torch.empty(0, feature_net.num_classes)
    return torch.cat(feats), torch.cat(logits)


to_uint8_range = quantize  # [-1, 1] floats -> 8-bit values as floats in [0, 255]
