"""SplitReader's sources: a shard folder, or a ShardDataModule (its training shards), read the same."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.evaluation.shards import SplitReader


def test_split_reader_takes_a_datamodule_as_its_training_shards(digits):
    from lit_diffusion.data.datamodule import ShardDataModule  # the test may load Lightning; the reader does not

    by_path = list(SplitReader(digits["train"], batch_size=128, num_workers=0, labels=True))
    dm = ShardDataModule(str(digits["train"]), val_shards=str(digits["val"]), batch_size=8)
    by_dm = list(SplitReader(dm, batch_size=128, num_workers=0, labels=True))
    assert len(by_path) == len(by_dm) == 12  # ceil(1438 / 128)
    for (p, a), (q, b) in zip(by_path, by_dm):
        assert torch.equal(p, q) and a["key"] == b["key"]
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["label"], b["label"])
    with pytest.raises(ValueError, match="shards must be a folder"):
        SplitReader(42)
