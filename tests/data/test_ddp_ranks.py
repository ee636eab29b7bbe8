"""Real torch.distributed ranks (2 processes, gloo on CPU): the DataModule takes its rank and world
size from the process group, every rank takes the same number of steps (a collective per step
would hang otherwise) and the ranks' samples do not overlap."""
from __future__ import annotations

import json
import textwrap

import pytest

from gloo_ranks import run_ranks

SCRIPT = textwrap.dedent("""
    import datetime, json, sys
    import torch, torch.distributed as dist
    from lit_diffusion.data import ShardDataModule

    rank, world, port, shards = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    dm = ShardDataModule(shards, batch_size=16, num_workers=2, seed=3)
    dm.setup("fit")
    keys, steps = [], 0
    for batch in dm.train_dataloader():
        dist.all_reduce(torch.ones(1))  # a collective per step, as DDP's gradient sync
        keys += batch["key"]
        steps += 1
    dist.barrier()
    print(json.dumps({"rank": rank, "steps": steps, "expected": dm.steps_per_epoch, "keys": keys}))
    dist.destroy_process_group()
""")


@pytest.mark.slow
def test_two_ddp_ranks_take_equal_steps_on_disjoint_samples(digits_dir, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(SCRIPT)
    outs = [json.loads(out.strip().splitlines()[-1]) for out in run_ranks(script, [digits_dir], timeout=240)]
    # 1797 samples in 9 uneven shards: floor(1797 / (2 * 16)) = 56 steps on each rank
    assert [o["steps"] for o in outs] == [56, 56] and [o["expected"] for o in outs] == [56, 56]
    k0, k1 = set(outs[0]["keys"]), set(outs[1]["keys"])
    assert len(k0) == len(k1) == 56 * 16 and not k0 & k1
