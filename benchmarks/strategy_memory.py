"""Per-rank memory of parameters, gradients, optimiser state and EMA under DDP, FSDP2, ZeRO-2 and ZeRO-3, for a
DiT of your size on your number of ranks: measured on CPU ranks (gloo) from the tensors each rank really holds
after one AdamW step (numel * element size), next to the analytic bytes.

    DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 python benchmarks/strategy_memory.py --world-size 2
    DS_ACCELERATOR=cpu python benchmarks/strategy_memory.py --world-size 4 --hidden 384 --depth 12 --heads 6

Analytic (float32 training, N parameters, W ranks; Rajbhandari et al. 2020, "ZeRO", sec. 3 and 5, with
K = 12 bytes of optimiser state per parameter: Adam's two moments and, under DeepSpeed, a float32 master copy):
    DDP     params 4N    grads 4N    optimiser 8N     EMA 4N
    FSDP2   params 4N/W  grads 4N/W  optimiser 8N/W   EMA 4N/W  (the EMA sharded like the model)
    ZeRO-2  params 4N    grads 4N/W  optimiser 12N/W  EMA 4N    (frozen parameters are not partitioned)
    ZeRO-3  params 4N/W  grads 4N/W  optimiser 12N/W  EMA 4N/W  (DeepSpeed partitions the EMA shadow too)
"Measured" is rank 0's; partitions are padded to a multiple of W, so they may exceed N/W by a few elements.
The same function is printed by benchmarks/gpu_acceptance.py (section `memory`)."""
from __future__ import annotations

import argparse
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

STRATEGIES = ("DDP", "FSDP2", "ZeRO-2", "ZeRO-3")
PARTS = ("params", "grads", "optimiser", "ema")
ANALYTIC = {  # bytes per parameter per rank, as (replicated, divided by W) pairs
    "DDP": {"params": (4, 0), "grads": (4, 0), "optimiser": (8, 0), "ema": (4, 0)},
    "FSDP2": {"params": (0, 4), "grads": (0, 4), "optimiser": (0, 8), "ema": (0, 4)},
    "ZeRO-2": {"params": (4, 0), "grads": (0, 4), "optimiser": (0, 12), "ema": (4, 0)},
    "ZeRO-3": {"params": (0, 4), "grads": (0, 4), "optimiser": (0, 12), "ema": (0, 4)},
}


def analytic(strategy: str, n: int, world: int) -> dict[str, float]:
    return {part: n * (full + shared / world) for part, (full, shared) in ANALYTIC[strategy].items()}


def held(tensor: torch.Tensor) -> int:
    """Bytes this rank holds of a tensor: a DTensor's local shard, a ZeRO-3 parameter's partition."""
    if hasattr(tensor, "ds_tensor"):
        tensor = tensor.ds_tensor
    elif hasattr(tensor, "to_local"):
        tensor = tensor.to_local()
    return tensor.numel() * tensor.element_size()


def _model(args):
    from lit_diffusion.backbones import DiT
    from lit_diffusion.training.ema import EMA

    torch.manual_seed(0)
    net = DiT(in_channels=1, input_size=16, patch_size=2, hidden_size=args.hidden, depth=args.depth,
              num_heads=args.heads, num_classes=10)
    holder = torch.nn.Module()
    holder.backbone, holder.ema = net, EMA(net, sigma_rel=0.05)
    return holder


def _loss(net):
    x = torch.randn(2, 1, 16, 16)
    return net(x, torch.rand(2), torch.zeros(2, dtype=torch.long)).square().mean()


def _optimiser_bytes(optimizer) -> int:
    return sum(held(v) for state in optimizer.state.values() for v in state.values()
               if torch.is_tensor(v) and v.dim() > 0)


def measure(strategy: str, args) -> dict[str, int]:
    """One AdamW step under `strategy` in this rank; the bytes it holds of each part."""
    holder = _model(args)
    trained = [p for p in holder.backbone.parameters() if p.requires_grad]
    if strategy == "DDP":
        model = torch.nn.parallel.DistributedDataParallel(holder.backbone)
        optimizer = torch.optim.AdamW(trained, lr=1e-3)
        _loss(model).backward()
        grads = sum(held(p.grad) for p in trained)
        optimizer.step()
        optim = _optimiser_bytes(optimizer)
    elif strategy == "FSDP2":
        from lit_diffusion.distributed.fsdp2 import shard_module

        shard_module(holder)  # the backbone by blocks, the EMA shadow with the same placements
        trained = [p for p in holder.backbone.parameters() if p.requires_grad]  # now DTensors
        optimizer = torch.optim.AdamW(trained, lr=1e-3)
        _loss(holder.backbone).backward()
        grads = sum(held(p.grad) for p in trained)
        optimizer.step()
        optim = _optimiser_bytes(optimizer)
    else:
        import deepspeed

        config = {"train_micro_batch_size_per_gpu": 1, "zero_allow_untested_optimizer": True,
                  "zero_optimization": {"stage": 3 if strategy == "ZeRO-3" else 2,
                                        "contiguous_gradients": True}}  # as Lightning's DeepSpeedStrategy
        engine, optimizer, _, _ = deepspeed.initialize(model=holder, optimizer=torch.optim.AdamW(trained, lr=1e-3),
                                                       model_parameters=trained, config=config)
        engine.backward(_loss(engine.module.backbone))
        if strategy == "ZeRO-2":  # the reduce-scattered gradient partition (contiguous_gradients)
            grads = (held(optimizer.grads_in_partition) if optimizer.grads_in_partition is not None else
                     sum(held(g) for group in optimizer.averaged_gradients.values() for g in group))
        else:
            grads = held(optimizer.grad_partitions_flat_buffer)
        engine.step()
        masters = (optimizer.single_partition_of_fp32_groups if strategy == "ZeRO-2"
                   else optimizer.fp32_partitioned_groups_flat)
        optim = _optimiser_bytes(optimizer.optimizer) + sum(held(t) for t in masters)
    holder.ema.update(holder.backbone)
    return {"params": sum(held(p) for p in holder.backbone.parameters()), "grads": grads, "optimiser": optim,
            "ema": sum(held(p) for p in holder.ema.shadow.parameters())}


def _worker(rank, world, port, args, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), DS_ACCELERATOR="cpu")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    out = {}
    for strategy in args.strategies:
        try:
            out[strategy] = measure(strategy, args)
        except Exception as error:  # recorded, the other strategies still measured
            out[strategy] = {"error": f"{type(error).__name__}: {error}"[:300]}
        dist.barrier()
    if rank == 0:
        queue.put(out)
    dist.destroy_process_group()


def table(measured: dict, n: int, world: int) -> str:
    """The markdown table: measured / analytic bytes per rank (MiB)."""
    mib = 2 ** 20
    lines = [f"per-rank memory, {n:,} parameters, {world} ranks (MiB, measured / analytic)", "",
             "| strategy | " + " | ".join(PARTS) + " | total |", "|---" * (len(PARTS) + 2) + "|"]
    for strategy, parts in measured.items():
        if "error" in parts:
            lines.append(f"| {strategy} | {parts['error']} |")
            continue
        want = analytic(strategy, n, world)
        cells = [f"{parts[p] / mib:.3f} / {want[p] / mib:.3f}" for p in PARTS]
        lines.append(f"| {strategy} | " + " | ".join(cells) +
                     f" | {sum(parts.values()) / mib:.3f} / {sum(want.values()) / mib:.3f} |")
    return "\n".join(lines)


def run(args) -> tuple[dict, int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_worker, args=(args.world_size, port, args, queue), nprocs=args.world_size, join=True)
    n = sum(p.numel() for p in _model(args).backbone.parameters() if p.requires_grad)
    return queue.get(), n


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--world-size", type=int, default=2)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    measured, n = run(args)
    print(table(measured, n, args.world_size))
    return int(any("error" in parts for parts in measured.values()))


if __name__ == "__main__":
    sys.exit(main())
