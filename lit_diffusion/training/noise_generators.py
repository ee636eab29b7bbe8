"""The training noise generator of each rank, and how checkpoints keep it (one place for every LightningModule).

Rank r draws its noise (and times, and posterior samples) from its own generator, seeded by (seed, r). A
checkpoint holds every rank's state (`noise_generators`, gathered from all ranks when they save together), so a
resume on the same world size continues each rank's draws exactly; a rank the saved run did not have (a resume on
more ranks) gets a stream of its own from (seed, rank, step), never a copy of another rank's draws.
`noise_generator` (rank 0's) is kept for readers of older checkpoints."""
from __future__ import annotations

import numpy as np
import torch

from lit_diffusion.distributed.process import process_group
from lit_diffusion.generation.noise import SEED_STRIDE

SINGLE, PER_RANK = "noise_generator", "noise_generators"  # checkpoint keys


def rank_generator(device: torch.device, seed: int, rank: int, pending=None) -> torch.Generator:
    """Rank `rank`'s generator on `device`: fresh from (seed, rank), or continuing `pending` (a saved state, or
    the integer seed `saved_noise_state` gives a rank the saved run did not have)."""
    g = torch.Generator(device=device)
    g.manual_seed(seed * SEED_STRIDE + rank)
    if isinstance(pending, int):
        g.manual_seed(pending)
    elif pending is not None:
        g.set_state(pending)
    return g


def save_noise_states(checkpoint: dict, generator: torch.Generator) -> None:
    """Write this rank's state and every rank's states (a collective: every rank saves the checkpoint together)."""
    state = generator.get_state()
    checkpoint[SINGLE] = state
    group = process_group()
    if group is None:
        checkpoint[PER_RANK] = [state]
        return
    states = [None] * group[1]
    torch.distributed.all_gather_object(states, state.cpu())
    checkpoint[PER_RANK] = states


def saved_noise_state(checkpoint: dict, rank: int, seed: int):
    """This rank's saved state for `rank_generator`'s `pending`: its own; for a rank the saved run did not have,
    an integer seed from (seed, rank, step); rank 0's for checkpoints older than per-rank states."""
    states = checkpoint.get(PER_RANK)
    if states is None:
        return checkpoint.get(SINGLE)
    if rank < len(states):
        return states[rank]
    return int(np.random.SeedSequence([seed, rank, int(checkpoint.get("global_step", 0))]).generate_state(1)[0])
