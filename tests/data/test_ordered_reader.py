"""The Lightning-free ordered reader behind validation and evaluation: stored order, contiguous
ranges per (rank, worker), wrap-around padding, and known epoch positions."""
from __future__ import annotations

import subprocess
import sys

import pytest

import lit_diffusion.data as data_pkg
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.ordered_reader import OrderedShardReader
from lit_diffusion.data.shardio import read_shard
from lit_diffusion.data.urls import resolve_shards

from data_helpers import assert_same_batches, build


@pytest.mark.parametrize("world,workers", [(1, 0), (2, 2), (3, 1)])
def test_positions_are_the_stored_order_and_padding_wraps(digits_dir, world, workers):
    shards = resolve_shards(str(digits_dir))
    stored = [raw.key for url, n in zip(shards.urls, shards.counts) for raw in read_shard(url, 0, n, n)]
    seen = {}
    for rank in range(world):
        reader = OrderedShardReader.from_spec(str(digits_dir), batch_size=64, num_workers=workers, rank=rank,
                                              world_size=world)
        batches = list(reader.with_positions())
        assert len(batches) == len(reader) == -(-1797 // (64 * world))
        for pos, batch in batches:
            for p, key in zip(pos.tolist(), batch["key"]):
                assert key == stored[p % 1797]
                assert p not in seen
                seen[p] = key
    assert sorted(seen) == list(range(len(reader) * 64 * world))  # every position once, padding included


def test_validation_loader_is_the_ordered_reader(small_dir, digits_dir):
    dm = ShardDataModule(str(small_dir), val_shards=str(digits_dir), batch_size=8, val_batch_size=100,
                         num_workers=2, hflip=True, seed=7, rank=1, world_size=2)
    reader = OrderedShardReader(resolve_shards(str(digits_dir)), batch_size=100, num_workers=2, rank=1,
                                world_size=2, seed=7)
    assert dm.val_plan() == reader.plan
    assert_same_batches(list(dm.val_dataloader()), list(reader))


def test_labels_on_an_unlabeled_split_fail_before_reading(tmp_path):
    import numpy as np

    from lit_diffusion.data.sources import pairs_source

    np.save(tmp_path / "n.npy", np.zeros((8, 3), np.float32))
    build(pairs_source(tmp_path / "n.npy"), tmp_path / "pairs")
    with pytest.raises(ValueError, match="labels=True but dataset.json has num_classes=0"):
        OrderedShardReader.from_spec(str(tmp_path / "pairs"), batch_size=4, labels=True)
    batches = list(OrderedShardReader.from_spec(str(tmp_path / "pairs"), batch_size=3))
    assert [len(b["key"]) for b in batches] == [3, 3, 3]  # 8 samples padded to 9 by wrapping around


def test_readers_import_no_lightning():
    # evaluation reads shards through these modules; Lightning must stay out of that import chain
    code = ("import sys, lit_diffusion.data.ordered_reader, lit_diffusion.evaluation.shards; "
            "assert 'lightning' not in sys.modules and 'lightning.pytorch' not in sys.modules, "
            "sorted(m for m in sys.modules if m.startswith('lightning'))")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_package_all_lists_every_lazy_export():
    assert sorted(data_pkg.__all__) == sorted(data_pkg._EXPORTS)
    for name in data_pkg.__all__:
        if name != "ShardDataModule":  # the one Lightning import, checked elsewhere
            assert getattr(data_pkg, name) is not None
