"""The rest of an epoch re-sharded when a run resumes on another world size (data/reshard.py), on simulated
ranks (`rank`/`world_size` of the DataModule, no torch.distributed): with the global batch unchanged, every
later step sees exactly the samples (and flips) of the uninterrupted run; with it changed, the rest of the
epoch is the same samples in the same order, cut into the new global batches."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.data.datamodule import ShardDataModule

K = 2  # steps done before the change of layout


def module(shards, world, rank, batch, workers=0):
    # 192 samples per epoch: 12 steps of 2 x 8, 12 of 1 x 16, 24 of 1 x 8
    return ShardDataModule(str(shards), batch_size=batch, num_workers=workers, shuffle_buffer=32, hflip=True,
                           samples_per_epoch=192, seed=5, rank=rank, world_size=world)


def global_batches(shards, world, batch, state=None, take=None, workers=0):
    """[(keys, x)] per global step of the current epoch (ranks concatenated); the state after `take` steps."""
    per_rank, states = [], []
    for rank in range(world):
        dm = module(shards, world, rank, batch, workers)
        if state is not None:
            dm.load_state_dict(state)
        length = dm.epoch_length()
        out = []
        for b in dm.train_epoch():
            out.append(b)
            if len(out) == take:
                break
        assert take is not None or len(out) + (state or {}).get("batches", 0) == length  # Lightning counts on
        per_rank.append(out)
        states.append(dm.state_dict())
    assert all(s == states[0] for s in states), "every rank saves the same stream state"
    steps = [([k for r in per_rank for k in r[j]["key"]], torch.cat([r[j]["x"] for r in per_rank]))
             for j in range(len(per_rank[0]))]
    return steps, states[0], length


@pytest.fixture(scope="module")
def two_ranks(digits_shards):
    """The uninterrupted epoch on 2 ranks x 8, and the state after K steps."""
    whole, _, _ = global_batches(digits_shards, 2, 8)
    _, state, _ = global_batches(digits_shards, 2, 8, take=K)
    return whole, state


def test_two_ranks_to_one_with_the_same_global_batch(digits_shards, two_ranks):
    whole, state = two_ranks
    rest, after, length = global_batches(digits_shards, 1, 16, state)
    assert length == 12 and len(rest) == 12 - K
    for (keys, x), (keys1, x1) in zip(whole[K:], rest):
        assert keys == keys1 and torch.equal(x, x1)  # flips and all, bitwise
    assert after == {**after, "epoch": 1, "batches": 0} and "rest" not in after  # the next epoch: new layout


def test_one_rank_to_two_and_back_mid_epoch(digits_shards):
    whole, _, _ = global_batches(digits_shards, 1, 16)
    _, state, _ = global_batches(digits_shards, 1, 16, take=K)
    part, state2, _ = global_batches(digits_shards, 2, 8, state, take=3)  # 1 -> 2, saved again mid-rest
    assert state2["batches"] == K + 3 and state2["rest"]["offset"] == 3 * 16
    rest, _, length = global_batches(digits_shards, 1, 16, state2)  # 2 -> 1 inside the same epoch
    assert length == 12 and len(rest) == 12 - K - 3
    for (keys, x), (keys1, x1) in zip(whole[K:], part + rest):
        assert keys == keys1 and torch.equal(x, x1)


def test_another_global_batch_keeps_the_order_of_the_rest(digits_shards, two_ranks):
    whole, state = two_ranks
    rest, _, length = global_batches(digits_shards, 1, 8, state, workers=2)  # half the global batch, 2 workers
    assert length == K + 2 * (12 - K)
    assert [k for keys, _ in rest for k in keys] == [k for keys, _ in whole[K:] for k in keys]


def test_what_cannot_be_resharded_is_still_refused(digits_shards, two_ranks):
    _, state = two_ranks
    dm = module(digits_shards, 1, 0, 16)
    dm.load_state_dict({**state, "seed": 6})
    with pytest.raises(ValueError, match=r"layout changed \(--data.seed: saved 6, now 5\)"):
        next(iter(dm.train_epoch()))


def test_a_per_rank_batch_change_alone_is_refused(digits_shards, two_ranks):
    _, state = two_ranks
    dm = module(digits_shards, 2, 0, 16)
    dm.load_state_dict(state)
    with pytest.raises(ValueError, match=r"layout changed \(--data.batch_size: saved 8, now 16\)"):
        next(iter(dm.train_epoch()))


def test_one_process_sees_the_ranks_global_batch_only_when_an_epoch_is_one_step(digits_shards):
    """docs/scaling.md, one process against 2 ranks: rank r reads its own contiguous range of the epoch, so the
    global batch of 2 ranks x 8 holds the one process's 16 samples only when the epoch is that one batch."""
    def first_keys(world, batch, samples_per_epoch):
        keys = []
        for rank in range(world):
            dm = ShardDataModule(str(digits_shards), batch_size=batch, num_workers=0, shuffle_buffer=32, hflip=True,
                                 samples_per_epoch=samples_per_epoch, seed=5, rank=rank, world_size=world)
            keys += list(next(iter(dm.train_epoch()))["key"])
        return keys

    one, two = first_keys(1, 16, 16), first_keys(2, 8, 16)
    assert sorted(one) == sorted(two) and len(set(one)) == 16
    assert len(set(first_keys(1, 16, 192)) & set(first_keys(2, 8, 192))) < 16  # 12 steps per epoch: other samples
