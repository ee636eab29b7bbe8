"""The stream: exact splitting over ranks x workers, equal steps, determinism, resume."""
from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from data_helpers import assert_same_batches, epoch_batches, keys_of
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.data.plan import EpochPlan


@pytest.mark.parametrize("counts,world,workers,batch", [
    ((70,) * 6 + (60,), 2, 2, 8), ((200,) * 8 + (197,), 3, 2, 16), ((5, 1, 9), 1, 3, 2), ((1000,), 4, 4, 7),
    ((13, 17, 19, 23), 2, 0, 5),
])
def test_plan_partitions_the_epoch_with_equal_steps(counts, world, workers, batch):
    for samples_per_epoch in (None, 3 * sum(counts) + world * batch):
        plan = EpochPlan(counts, batch, world, workers, seed=3, samples_per_epoch=samples_per_epoch)
        ranges = [plan.consumer_range(r, w) for r in range(world) for w in range(plan.workers)]
        assert ranges[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
        assert ranges[-1][1] == plan.steps * world * batch <= plan.epoch_samples
        for r in range(world):
            assert sum(plan.worker_batches(w) for w in range(plan.workers)) == plan.steps
        for epoch in (0, 1):
            seen = Counter()
            for start, stop in ranges:
                pieces = list(plan.pieces(epoch, start, stop))
                assert sum(p.take for p in pieces) == stop - start
                for p in pieces:
                    assert 0 <= p.skip and p.skip + p.take <= counts[p.shard]
                    seen.update((p.shard, i) for i in range(p.skip, p.skip + p.take))
            if samples_per_epoch is None:
                assert max(seen.values()) == 1  # nothing twice within an epoch
            else:  # resampling: whole passes, then part of one more
                used = plan.steps * world * batch
                assert used // sum(counts) == 3
                assert min(seen.values()) >= 3 and max(seen.values()) <= 4


def test_round_robin_resume_arithmetic():
    plan = EpochPlan((100,), 2, 1, 3, seed=0)
    assert plan.steps == 50
    order = [w for _, w in zip(range(50), itertools.cycle(range(3)))]  # DataLoader's worker order
    for k in range(51):
        assert [plan.worker_batches(w, k) for w in range(3)] == [order[:k].count(w) for w in range(3)]


def test_each_sample_once_per_epoch_over_2_ranks_x_2_workers(small_dir):
    # 480 samples in shards of 70 (the last 60): they do not divide evenly over 4 consumers
    per_rank = {}
    for rank in (0, 1):
        dm = ShardDataModule(str(small_dir), batch_size=8, num_workers=2, rank=rank, world_size=2,
                             shuffle_buffer=50, seed=7)
        assert dm.steps_per_epoch == 30 == len(dm.train_dataloader())
        per_rank[rank] = epoch_batches(dm)
        assert len(per_rank[rank]) == 30
    keys = keys_of(per_rank[0]) + keys_of(per_rank[1])
    assert len(keys) == 480 and sorted(keys) == [f"{i:08d}" for i in range(480)]


def test_uneven_counts_give_equal_steps_and_no_repeats(digits_dir):
    # 1797 samples, 9 shards (8 x 200 + 197), 3 ranks x 2 workers, batch 16: floor(1797 / 48) = 37 steps
    keys = []
    for rank in range(3):
        dm = ShardDataModule(str(digits_dir), batch_size=16, num_workers=2, rank=rank, world_size=3)
        batches = epoch_batches(dm)
        assert len(batches) == dm.steps_per_epoch == 37
        assert all(b["x"].shape == (16, 1, 8, 8) for b in batches)
        keys += keys_of(batches)
    assert len(keys) == len(set(keys)) == 37 * 48


def test_same_seed_same_order_new_epoch_new_order(small_dir):
    def run(seed, epoch=0, workers=0):
        dm = ShardDataModule(str(small_dir), batch_size=16, num_workers=workers, seed=seed, hflip=True)
        dm.set_epoch(epoch)
        return epoch_batches(dm)

    a = run(0)
    assert_same_batches(a, run(0, workers=0))
    b, c = run(1), run(0, epoch=1)
    assert keys_of(a) != keys_of(b) and keys_of(a) != keys_of(c)
    assert sorted(keys_of(a)) == sorted(keys_of(c))  # an epoch is a permutation
    x = torch.cat([t["x"] for t in a])
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    # the flips differ between epochs but are a function of (seed, epoch, rank, worker)
    dm = ShardDataModule(str(small_dir), batch_size=16, num_workers=0, seed=0, hflip=False)
    plain = {k: v for t in epoch_batches(dm) for k, v in zip(t["key"], t["x"])}
    flipped = [torch.equal(v, plain[k].flip(-1)) and not torch.equal(v, plain[k])
               for t in a for k, v in zip(t["key"], t["x"])]
    assert 0.35 < np.mean(flipped) < 0.65


def test_workers_and_in_process_streams_are_the_same_function(small_dir):
    # with 2 workers the DataLoader interleaves worker 0 and 1; ShardIterable.worker_batches
    # gives each worker's stream directly (a simulated worker)
    dm = ShardDataModule(str(small_dir), batch_size=8, num_workers=2, seed=5, hflip=True, rank=1, world_size=2)
    real = epoch_batches(dm)
    iterable = dm._make_iterable(True, epoch=0, start_batch=0)
    streams = [list(iterable.worker_batches(w)) for w in (0, 1)]
    simulated = [b for pair in itertools.zip_longest(*streams) for b in pair if b is not None]
    assert_same_batches(real, simulated)


@pytest.mark.parametrize("workers,stop", [(0, 7), (2, 1), (2, 12), (2, 29)])
def test_resume_after_k_batches_gives_exactly_the_remaining_batches(small_dir, workers, stop):
    def dm():
        return ShardDataModule(str(small_dir), batch_size=8, num_workers=workers, seed=11, hflip=True,
                               shuffle_buffer=100, rank=0, world_size=2)

    full = epoch_batches(dm())
    first = dm()
    head = epoch_batches(first, limit=stop)
    state = first.state_dict()
    assert (state["epoch"], state["batches"]) == (0, stop)
    resumed = dm()
    resumed.load_state_dict(state)
    assert resumed.state_dict()["batches"] == stop  # restored and not iterated yet
    tail = epoch_batches(resumed)
    assert_same_batches(head + tail, full)
    assert resumed.state_dict()["epoch"] == 1 and resumed.state_dict()["batches"] == 0
    # the next epoch continues as in an uninterrupted run
    again = dm()
    epoch_batches(again)
    assert_same_batches(epoch_batches(resumed), epoch_batches(again))


def test_samples_per_epoch_resamples_and_validation_pads(small_dir, digits_dir):
    dm = ShardDataModule(str(small_dir), batch_size=32, num_workers=0, samples_per_epoch=1000, shuffle_buffer=0)
    batches = epoch_batches(dm)
    assert len(batches) == 1000 // 32
    counts = Counter(keys_of(batches))
    assert len(counts) == 480 and min(counts.values()) >= 2  # wrapped into a second and third pass
    # validation: no shuffle, no flip, every sample at least once, equal steps on every rank
    seen = []
    for rank in (0, 1):
        dm = ShardDataModule(str(small_dir), val_shards=str(digits_dir), batch_size=8, val_batch_size=100,
                             num_workers=2, hflip=True, rank=rank, world_size=2)
        val = list(dm.val_dataloader())
        assert len(val) == len(dm.val_dataloader()) == 9  # ceil(1797 / 200)
        seen += keys_of(val)
    assert len(seen) == 1800 and set(seen) == {f"{i:08d}" for i in range(1797)}
