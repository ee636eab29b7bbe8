"""Real torch.distributed ranks (2 processes, gloo on CPU): the DataModule takes its rank and world
size from the process group, every rank takes the same number of steps (a collective per step
would hang otherwise) and the ranks' samples do not overlap."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ddp_ranks_take_equal_steps_on_disjoint_samples(digits_dir, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(SCRIPT)
    port = str(free_port())
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, str(script), str(r), "2", port, str(digits_dir)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for r in (0, 1)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    # 1797 samples in 9 uneven shards: floor(1797 / (2 * 16)) = 56 steps on each rank
    assert [o["steps"] for o in outs] == [56, 56] and [o["expected"] for o in outs] == [56, 56]
    k0, k1 = set(outs[0]["keys"]), set(outs[1]["keys"])
    assert len(k0) == len(k1) == 56 * 16 and not k0 & k1
