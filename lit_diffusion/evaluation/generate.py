"""Evaluation samples spread over ranks, with the noise and labels of `lit_diffusion.generation`.

Sample i starts from the same noise and (for class-conditional models) gets class i mod num_classes,
whatever the world size or batch size, so two models evaluated with one seed see the same noise.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from lit_diffusion.generation import class_labels, index_batches, sample_noise

from ._dist import gather_rows, rank_world

SampleFn = Callable[[torch.Tensor, "torch.Tensor | None"], torch.Tensor]

__all__ = ["generate_samples", "sample_noise"]


def generate_samples(sample_fn: SampleFn, noise_shape: Sequence[int], num_samples: int, *, batch_size: int = 256,
                     seed: int = 0, num_classes: int | None = None, device: str | torch.device | None = None,
                     gather: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(samples, labels) from ``sample_fn(noise (B, *noise_shape), labels (B,) or None) -> (B, ...)``.

    ``gather=True``: every rank returns all ``num_samples`` samples (CPU, index order);
    ``gather=False``: each rank returns its own share (indices rank, rank + world, ...; pass it to
    ``evaluate_samples(..., local_samples=True)``). Labels are None when ``num_classes=None``.
    """
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"generate_samples: num_samples and batch_size must be >= 1, got {num_samples}, {batch_size}")
    if num_classes is not None and num_classes < 1:
        raise ValueError(f"generate_samples: num_classes must be >= 1 or None, got {num_classes}")
    rank, world = rank_world()
    device = torch.device(device or "cpu")
    outs, labs, order = [], [], []
    for _, idx in index_batches(num_samples, batch_size, rank, world):
        noise = sample_noise(idx, noise_shape, seed).to(device)
        y = class_labels(idx, num_classes or 0)
        with torch.no_grad():
            out = sample_fn(noise, None if y is None else y.to(device))
        if out.shape[0] != len(idx):
            raise ValueError(f"generate_samples: sample_fn returned {out.shape[0]} samples for a batch of {len(idx)}")
        outs.append(out.detach().cpu())
        order += idx
        if y is not None:
            labs.append(y)
    samples = torch.cat(outs) if outs else torch.empty(0)
    labels = torch.cat(labs) if labs else (torch.empty(0, dtype=torch.int64) if num_classes is not None else None)
    if gather:
        # ranks hold strided indices: gather them, then put every row back at its index
        positions = gather_rows(torch.tensor(order, dtype=torch.int64))
        samples = _by_index(gather_rows(samples), positions)
        labels = _by_index(gather_rows(labels), positions) if labels is not None else None
    return samples, labels


def _by_index(rows: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(rows)
    out[positions] = rows
    return out
