"""Read one split of a sharded dataset exactly once, each rank its share, for evaluation.

Built on ``lit_diffusion.data.ordered_reader`` (the same stream as ``ShardDataModule``'s
validation loader, without Lightning): the shards in stored order, the epoch sequence cut into
contiguous ranges per (rank, DataLoader worker) and padded by wrapping around (see
``lit_diffusion/data/plan.py``). The reader knows the position of every batch in that sequence,
so this drops the wrap-around padding and everything at or after ``limit`` (the first
``max_samples`` samples in stored order), and it stops as soon as the rest of its share lies past
``limit``. Every sample below ``limit`` is read by exactly one rank.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterator

import torch

from lit_diffusion.data.dataset_json import DatasetInfo
from lit_diffusion.data.ordered_reader import OrderedShardReader

from ._dist import rank_world

if TYPE_CHECKING:  # the DataModule pulls in Lightning, which evaluation does not need
    from lit_diffusion.data.datamodule import ShardDataModule


def _shard_source(shards) -> tuple[str, str | None, str]:
    """(shard spec, dataset.json or None, image decoder) of a path, shard URLs or a ShardDataModule."""
    if isinstance(shards, str) or hasattr(shards, "__fspath__"):
        return str(shards), None, "torchvision"
    # A ShardDataModule, recognised by its fields: importing its class would pull in Lightning.
    if all(hasattr(shards, name) for name in ("train_shards", "dataset_json", "decoder")):
        return str(shards.train_shards), shards.dataset_json, shards.decoder
    raise ValueError(f"shards must be a folder, dataset.json, shard URLs or a ShardDataModule, "
                     f"got {type(shards).__name__}")


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
        spec, json_path, decoder = _shard_source(shards)
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.rank, self.world = rank_world()
        self.reader = OrderedShardReader.from_spec(spec, json_path, batch_size=batch_size, num_workers=num_workers,
                                                   rank=self.rank, world_size=self.world, labels=labels,
                                                   decoder=decoder)
        self.info: DatasetInfo = self.reader.info
        n = self.reader.num_samples
        self.limit = n if max_samples is None else min(max_samples, n)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.plan = self.reader.plan

    def batch_starts(self) -> list[int]:
        """Epoch position of the first sample of each batch this rank's loader yields, in order."""
        return self.reader.batch_starts()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, dict]]:
        needed = [j for j, s in enumerate(self.batch_starts()) if s < self.limit]
        if not needed:
            return
        last = needed[-1]
        for j, (pos, batch) in enumerate(self.reader.with_positions()):
            keep = pos < self.limit
            if keep.any():
                if not keep.all():
                    batch = {k: (v[keep] if isinstance(v, torch.Tensor) else [e for e, m in zip(v, keep) if m])
                             for k, v in batch.items()}
                yield pos[keep], batch
            if j >= last:
                break
