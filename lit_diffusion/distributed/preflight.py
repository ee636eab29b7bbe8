"""Pre-flight check on every rank before the first step: all ranks run the same configuration (hash of the
parsed config) and a collective succeeds. A mismatch fails fast on every rank with a message naming the
ranks and hosts, instead of a hang or a silent divergence hours later."""
from __future__ import annotations

import hashlib
import json
import logging
import socket

import lightning.pytorch as pl
import torch.distributed as dist

log = logging.getLogger("lit_diffusion.distributed")


def config_hash(config: dict) -> str:
    """A stable short hash of a configuration made of plain values."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class PreflightError(RuntimeError):
    pass


def check_ranks(reports: list[dict]) -> None:
    """Raise PreflightError unless every rank reported the same config hash and world size."""
    hashes = {r["config_hash"] for r in reports}
    if len(hashes) > 1:
        lines = [f"  rank {r['rank']} on {r['host']}: config {r['config_hash']}" for r in reports]
        raise PreflightError("pre-flight: the ranks were started with different configurations (every srun task must "
                             "get the same config files and overrides):\n" + "\n".join(lines))
    worlds = {r["world_size"] for r in reports}
    if worlds != {len(reports)}:
        raise PreflightError(f"pre-flight: ranks disagree on the world size ({sorted(worlds)}) but {len(reports)} answered")


class Preflight(pl.Callback):
    """Runs at setup, after the process group exists: gathers (rank, host, config hash) from every rank."""

    def __init__(self, config_hash: str):
        self.config_hash = config_hash

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        world = trainer.world_size
        mine = {"rank": trainer.global_rank, "host": socket.gethostname(), "config_hash": self.config_hash,
                "world_size": world}
        if world > 1:
            if not (dist.is_available() and dist.is_initialized()):
                raise PreflightError(f"pre-flight: world size is {world} but torch.distributed is not initialised")
            reports: list = [None] * world
            try:
                dist.all_gather_object(reports, mine)
            except Exception as error:  # a failed collective: name it rather than a bare backend error
                raise PreflightError(f"pre-flight: rank {trainer.global_rank} could not complete a collective with "
                                     f"{world} ranks: {type(error).__name__}: {error}") from error
        else:
            reports = [mine]
        check_ranks(reports)
        if trainer.global_rank == 0:
            log.info("pre-flight ok: %d rank(s), config %s, hosts %s", world, self.config_hash,
                        sorted({r["host"] for r in reports}))
