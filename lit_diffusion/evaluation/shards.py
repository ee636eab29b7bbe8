"""Read one split of a sharded dataset exactly once, each rank its share, for evaluation.

Built on ``ShardDataModule``'s validation stream over the shards in stored order (no shuffling):
the epoch sequence is cut into contiguous ranges per (rank, DataLoader worker) and padded by
wrapping around (see ``lit_diffusion/data/plan.py``). This reader knows the position of every
batch in that sequence, so it drops the wrap-around padding and everything at or after
``limit`` (the first ``max_samples`` samples in stored order), and it stops as soon as the rest
of its share lies past ``limit``. Every sample below ``limit`` is read by exactly one rank.
"""
from __future__ import annotations

import os
from typing import Iterator

import torch

from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.dataset_json import DatasetInfo

from ._dist import rank_world


class SplitReader:
    """Iterate ``(positions (B,) int64, batch dict)`` over this rank's share of a split.

    Args:
        shards: a folder with dataset.json, a dataset.json, shard URLs, or a ShardDataModule (its
            training shards, decoder and dataset_json are used).
        max_samples: read only the first ``max_samples`` samples in stored order (None: all).
        batch_size: samples per batch.
        num_workers: DataLoader worker processes (0: decode in this process).
        labels: return ``label`` in batches (the dataset must be labeled).
    """

    def __init__(self, shards: str | os.PathLike | ShardDataModule, max_samples: int | None = None, batch_size: int = 500,
                 num_workers: int = 2, labels: bool = False):
        if isinstance(shards, ShardDataModule):
            spec, json_path, decoder = shards.train_shards, shards.dataset_json, shards.decoder
        elif isinstance(shards, str) or hasattr(shards, "__fspath__"):
            spec, json_path, decoder = str(shards), None, "torchvision"
        else:
            raise ValueError(f"shards must be a folder, dataset.json, shard URLs or a ShardDataModule, "
                             f"got {type(shards).__name__}")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.rank, self.world = rank_world()
        # batch_size=1 for the (unused) training plan, which must hold one batch per rank
        self.dm = ShardDataModule(spec, val_shards=spec, dataset_json=json_path, val_dataset_json=json_path,
                                  batch_size=1, val_batch_size=batch_size, num_workers=num_workers,
                                  shuffle_buffer=0, shuffle_shards=False, labels=labels, decoder=decoder)
        self.dm.setup()
        self.info: DatasetInfo = self.dm.val_set.info
        n = self.dm.val_set.num_samples
        self.limit = n if max_samples is None else min(max_samples, n)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.plan = self.dm.val_plan(self.world)  # the order its val loader yields

    def batch_starts(self) -> list[int]:
        """Epoch position of the first sample of each batch this rank's loader yields, in order."""
        workers = self.plan.workers
        starts = []
        for j in range(self.plan.steps):  # the DataLoader takes batch j from worker j % W
            w, k = j % workers, j // workers
            starts.append(self.plan.consumer_range(self.rank, w)[0] + k * self.batch_size)
        return starts

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        starts = self.batch_starts()
        needed = [j for j, s in enumerate(starts) if s < self.limit]
        if not needed:
            return
        last = needed[-1]
        for j, batch in enumerate(self.dm.val_dataloader()):
            pos = starts[j] + torch.arange(batch["x"].shape[0])
            keep = pos < self.limit
            if keep.any():
                if not keep.all():
                    batch = {k: (v[keep] if isinstance(v, torch.Tensor) else [e for e, m in zip(v, keep) if m])
                             for k, v in batch.items()}
                yield pos[keep], batch
            if j >= last:
                break
