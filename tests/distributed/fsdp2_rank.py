"""One rank of the FSDP2 / DDP / single-process comparison (started by tests/gloo_ranks.run_ranks):
`python fsdp2_rank.py RANK WORLD PORT MODE STEPS OUT [--save-at K] [--resume CKPT]`.

Every rank builds the same global batch, noise and times for each step (seeded by the step) and takes its
slice, so all modes train on the same samples with the same noise: DDP and FSDP must equal the single
process run on the whole batch, and a missing gradient reduction would leave each rank on its own half."""
from __future__ import annotations

import argparse
import datetime

import torch
import torch.distributed as dist
from torch import nn

from lit_diffusion.backbones import DiT
from lit_diffusion.distributed.fsdp2 import full_state, load_full_state, shard_module
from lit_diffusion.objectives.flow_matching import FlowMatching
from lit_diffusion.training.ema import EMA

GLOBAL_BATCH = 8


class FixedTimes:
    """A time sampler that returns the given times (the slice of the global batch's times)."""

    def __init__(self, t):
        self.t = t

    def sample(self, n, path, generator=None, device=None):
        assert n == self.t.shape[0]
        return self.t


class Trained(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = DiT.from_preset("debug", in_channels=1, input_size=8, num_classes=10)
        self.ema = EMA(self.backbone, decay=0.8)


def global_batch(step: int):
    g = torch.Generator().manual_seed(1000 + step)
    x0 = torch.randn(GLOBAL_BATCH, 1, 8, 8, generator=g)
    return x0, torch.randn(x0.shape, generator=g), torch.rand(GLOBAL_BATCH, generator=g), \
        torch.randint(0, 10, (GLOBAL_BATCH,), generator=g)


def main():
    p = argparse.ArgumentParser()
    for name in ("rank", "world", "port", "mode"):
        p.add_argument(name)
    p.add_argument("steps", type=int)
    p.add_argument("out")
    p.add_argument("--save-at", type=int, default=None)
    p.add_argument("--resume", default=None)
    a = p.parse_args()
    rank, world = int(a.rank), int(a.world)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{a.port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=3))
    module = Trained()
    net = module.backbone
    if a.mode == "ddp":
        net = nn.parallel.DistributedDataParallel(module.backbone)
    elif a.mode.startswith("fsdp"):
        shard_module(module, mixed_precision="bf16" if a.mode == "fsdp_bf16" else "none",
                     activation_checkpointing=a.mode == "fsdp_ac")
    elif a.mode != "single":
        raise ValueError(a.mode)
    optimizer = torch.optim.AdamW(module.backbone.parameters(), lr=1e-3, weight_decay=0.01)
    start = 0
    if a.resume:
        state = torch.load(a.resume, weights_only=False)
        load_full_state(module, state, optimizer)
        start = state["step"]
    objective = FlowMatching()
    part = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    for step in range(start, a.steps):
        x0, noise, t, cond = (v[part] for v in global_batch(step))
        objective.time_sampler = FixedTimes(t)
        loss = objective.loss(net, x0, cond, noise=noise).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.ema.update(module.backbone)
        if a.save_at == step + 1:
            save(module, optimizer, step + 1, a.out + f".step{step + 1}", rank)
    save(module, optimizer, a.steps, a.out, rank)
    dist.destroy_process_group()


def save(module, optimizer, step, path, rank):
    state = full_state(module, optimizer)  # a collective: every rank calls it
    if rank == 0:
        torch.save({**state, "step": step}, path)


if __name__ == "__main__":
    main()
