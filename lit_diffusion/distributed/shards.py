"""A parameter's rank-local shard under each strategy, and the way between it and the whole tensor.

- unsharded (one device, DDP): the tensor itself.
- FSDP2 (`fully_shard`): a DTensor sharded on dim 0 over its mesh; the local shard is `to_local()`.
- DeepSpeed ZeRO-3: `ds_tensor`, this rank's slice [r * n, (r + 1) * n) of the flattened parameter padded to
  world * n elements (deepspeed/runtime/zero/partition_parameters.py, `_partition_param`); `.data` is empty
  between gathers.

Anything averaged elementwise beside the parameters (the EMA, post-hoc EMA profiles) can live as local shards and
be gathered whole only when written. `gather_whole` is a collective: every rank calls it, in the same order."""
from __future__ import annotations

import torch
import torch.distributed as dist


def local_shard(param: torch.Tensor) -> torch.Tensor:
    """The part of `param` this rank holds (a view, not a copy)."""
    if hasattr(param, "ds_tensor"):
        return param.ds_tensor
    return param.to_local() if hasattr(param, "to_local") else param


def gather_whole(param: torch.Tensor, local: torch.Tensor) -> torch.Tensor:
    """The whole tensor of which `local` is this rank's shard, laid out as `param` is sharded (every rank gets it)."""
    if hasattr(param, "ds_tensor"):
        group = param.ds_process_group
        parts = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
        dist.all_gather(parts, local.contiguous(), group=group)
        return torch.cat(parts)[:param.ds_numel].view(param.ds_shape)
    if hasattr(param, "to_local"):
        from torch.distributed.tensor import DTensor

        return DTensor.from_local(local, param.device_mesh, param.placements, run_check=False, shape=param.shape,
                                  stride=param.stride()).full_tensor()
    return local


def shard_of(param: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """This rank's shard of `whole` (a tensor of `param`'s full shape), laid out as `param` is sharded; no
    communication (every rank holds `whole`)."""
    if hasattr(param, "ds_tensor"):
        n = param.ds_tensor.numel()
        flat = whole.reshape(-1)
        start = n * dist.get_rank(param.ds_process_group)
        out = torch.zeros(n, dtype=whole.dtype, device=param.ds_tensor.device)
        take = flat[start:start + n]
        out[:take.numel()] = take
        return out
    if hasattr(param, "to_local"):
        from torch.distributed.tensor import distribute_tensor

        return distribute_tensor(whole.to(param.device), param.device_mesh, param.placements,
                                 src_data_rank=None).to_local()
    return whole
