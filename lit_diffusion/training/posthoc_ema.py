"""Post-hoc EMA (Karras et al. 2024, EDM2 sec. 3): during training, snapshots of a few power-function EMA
profiles are written to RUN/ema_snapshots/; afterwards the EMA of any sigma_rel is reconstructed from them
by least squares over the profiles (the math and what is exact: posthoc_ema_math.py).

Switch it on with the callback in the fit config (`trainer.callbacks`):
    - class_path: lit_diffusion.training.posthoc_ema.PostHocEMASnapshots
      init_args: {sigma_rels: [0.05, 0.10], every_n_steps: 500}
Reconstruct with `reconstruct_ema(RUN, sigma_rel)`, `load_posthoc_ema(module, RUN, sigma_rel)`, or
`lit-diffusion ema RUN --sigma_rel S --out FILE.ckpt`.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lit_diffusion.distributed.shards import gather_whole, local_shard, shard_of
from lit_diffusion.runs import RunDirectory
from lit_diffusion.training.ema import gamma_from_sigma_rel
from lit_diffusion.training.ema_bank import DecayProfile, EMABank
from lit_diffusion.training.posthoc_ema_math import Profile, solve_posthoc_ema

FORMAT = "lit_diffusion.posthoc_ema/1"


class PostHocEMASnapshots(Callback):
    """Tracks one power-function EMA of the backbone per sigma_rel (EDM2 eq. 2-3, the same update as
    `DiffusionModule.ema`: one update per optimiser step, beta_t = (1 - 1/t)^(gamma + 1)) and writes a snapshot
    of each every `every_n_steps` optimiser steps and at the end of fit, to RUN/ema_snapshots/.

    Each snapshot step costs len(sigma_rels) x (backbone parameters x 4 bytes) on disk, and the callback holds
    len(sigma_rels) float32 copies of the parameters in device memory. The EMAs are saved in the checkpoint,
    so a resumed run continues the same profiles; snapshots written after the resumed step (by a run killed
    before its next checkpoint) are deleted at the start.

    Under FSDP2 and DeepSpeed ZeRO-3 each rank holds and averages only its shards of the profiles (the averaging
    is elementwise, so this is exact); a snapshot and the checkpoint state gather them whole on every rank
    (distributed/shards.py), so snapshots and checkpoints read the same under every strategy and a resume
    on another world size re-shards the profiles.

    Args:
        sigma_rels: the stored profiles' widths relative to training length (EDM2 stores 0.05 and 0.10).
        every_n_steps: snapshot interval in optimiser steps. The reconstruction is exact for any sigma_rel when
            every_n_steps <= len(sigma_rels), a least-squares approximation otherwise (see posthoc_ema_math).
    """

    def __init__(self, sigma_rels: list[float] = (0.05, 0.10), every_n_steps: int = 500):
        sigma_rels = [float(s) for s in sigma_rels]
        if not sigma_rels or len(set(sigma_rels)) != len(sigma_rels):
            raise ValueError(f"PostHocEMASnapshots: sigma_rels must be distinct and non-empty, got {sigma_rels}")
        if every_n_steps < 1:
            raise ValueError(f"PostHocEMASnapshots: every_n_steps must be >= 1, got {every_n_steps}")
        self.sigma_rels, self.every_n_steps = sigma_rels, int(every_n_steps)
        self.gammas = [gamma_from_sigma_rel(s) for s in sigma_rels]  # raises on a sigma_rel out of range
        self.bank = EMABank([DecayProfile(gamma) for gamma in self.gammas])  # the live EMA's averaging step
        self.num_updates = 0
        self.shadows: list[dict[str, torch.Tensor]] | None = None  # per profile: parameter name -> average
        self._loaded: dict | None = None
        self._saved_sigma_rels: list | None = None  # what a resumed checkpoint tracked, under another state key
        self._last_step = -1
        self._written_step = -1
        self._params: dict[str, torch.Tensor] | None = None  # the backbone's parameters (sharded or not), by name

    @property
    def state_key(self) -> str:
        return self._generate_state_key(sigma_rels=self.sigma_rels)

    def state_dict(self) -> dict:
        # whole tensors under every strategy (a collective where sharded: every rank saves the checkpoint together)
        return {"sigma_rels": self.sigma_rels, "num_updates": self.num_updates, "shadows": self._whole_shadows()}

    def _whole_shadows(self) -> list[dict[str, torch.Tensor]] | None:
        if self.shadows is None or self._params is None:
            return self.shadows
        return [{n: gather_whole(self._params[n], v) for n, v in shadow.items()} for shadow in self.shadows]

    def load_state_dict(self, state_dict: dict) -> None:
        self._loaded = state_dict  # applied at on_train_start, once the backbone is on its device

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        # Lightning restores a callback's state only under the same state key, which holds the sigma_rels: a
        # checkpoint of other widths looks like one without post-hoc EMA state unless its entry is found here
        for key, state in (checkpoint.get("callbacks") or {}).items():
            if key.startswith(type(self).__name__) and isinstance(state, dict) and state.get("shadows") is not None:
                self._saved_sigma_rels = [float(s) for s in state.get("sigma_rels", [])]

    @staticmethod
    def _parameters(module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return dict(module.backbone.named_parameters(remove_duplicate=False))

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        params = self._parameters(pl_module)
        unnamed = sorted(set(params) - set(pl_module.backbone.state_dict()))
        if unnamed:  # wrapped (flattened) parameters: a snapshot would hold raw weights under their names
            raise ValueError(f"PostHocEMASnapshots: parameters {unnamed[:3]} are not in the backbone's state_dict "
                             "(a wrapping strategy flattened them); use DDP, FSDP2 or DeepSpeed")
        self._params = params
        self._last_step = self._written_step = trainer.global_step
        loaded, self._loaded = self._loaded, None
        if loaded is not None and loaded.get("shadows") is not None:
            if [float(s) for s in loaded["sigma_rels"]] != self.sigma_rels:
                raise ValueError(f"PostHocEMASnapshots: the checkpoint tracked sigma_rels {loaded['sigma_rels']}, "
                                 f"this run asks for {self.sigma_rels}; resume with the same sigma_rels")
            self.num_updates = int(loaded["num_updates"])
            # whole tensors from any world size, cut into this rank's shards
            self.shadows = [{n: shard_of(params[n], v.to(torch.float32)).to(local_shard(params[n]).device).clone()
                             for n, v in shadow.items()} for shadow in loaded["shadows"]]
        elif self.shadows is None:
            if trainer.global_step > 0 and self._saved_sigma_rels is not None:
                # refused, not accepted: a profile averages from step 0 and no new one can start mid-run, while any
                # other width is reconstructed from the saved profiles' snapshots after training (EDM2 sec. 3)
                raise ValueError(f"PostHocEMASnapshots: the checkpoint tracked sigma_rels {self._saved_sigma_rels}, "
                                 f"this run asks for {self.sigma_rels} at step {trainer.global_step}; a profile "
                                 "averages from step 0, so new ones cannot start mid-run. Resume with sigma_rels "
                                 f"{self._saved_sigma_rels}; any other width is reconstructed afterwards: "
                                 "lit-diffusion ema RUN --sigma_rel S --out FILE.ckpt")
            if trainer.global_step > 0:
                raise ValueError(f"PostHocEMASnapshots: the run resumes at step {trainer.global_step} from a checkpoint "
                                 "without post-hoc EMA state, but the profiles average from step 0; start a new run "
                                 "with the callback, or resume without it")
            self.num_updates = 0
            self.shadows = [{n: local_shard(p).detach().to(torch.float32).clone() for n, p in params.items()}
                            for _ in self.sigma_rels]
        if trainer.is_global_zero:
            self._drop_snapshots_after(RunDirectory(trainer.default_root_dir), trainer.global_step)

    @staticmethod
    def _drop_snapshots_after(run: RunDirectory, step: int) -> None:
        """Snapshots beyond the resumed step belong to a run killed before its next checkpoint: they are
        written again, from the same state, when training gets there."""
        for info in list_snapshots(run.root, must_exist=False):
            if info.global_step > step:
                info.path.unlink(missing_ok=True)

    @torch.no_grad()
    def _update(self, module: pl.LightningModule) -> None:
        self.num_updates += 1
        params = self._parameters(module)
        names = list(self.shadows[0])  # every profile averages the same parameters
        self.bank.update([[shadow[n] for n in names] for shadow in self.shadows],  # cast to float32 by the bank
                         [local_shard(params[n]).detach() for n in names], self.num_updates)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self._last_step:  # no optimiser step in this batch (gradient accumulation)
            return
        self._last_step = trainer.global_step
        self._update(pl_module)
        if trainer.global_step % self.every_n_steps == 0:
            self._write(trainer, pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.num_updates > 0 and self._written_step != trainer.global_step:
            self._write(trainer, pl_module)

    def _write(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self._written_step = trainer.global_step
        shadows = self._whole_shadows()  # every rank takes part in the gathers
        if not trainer.is_global_zero:
            return
        run = RunDirectory(trainer.default_root_dir)
        run.ema_snapshots.mkdir(parents=True, exist_ok=True)
        state = module.backbone.state_dict()  # for the buffers (never sharded) and the key order
        for sigma_rel, gamma, shadow in zip(self.sigma_rels, self.gammas, shadows):
            tensors = {k: (shadow[k] if k in shadow else v).detach().cpu().clone().contiguous() for k, v in state.items()}
            metadata = {"format": FORMAT, "sigma_rel": repr(sigma_rel), "gamma": repr(gamma),
                        "num_updates": str(self.num_updates), "global_step": str(trainer.global_step),
                        "images_seen": str(int(getattr(module, "images_seen", 0))),
                        "averaged": json.dumps(sorted(k for k in state if k in shadow))}
            path = run.ema_snapshot(trainer.global_step, sigma_rel)
            partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            save_file(tensors, str(partial), metadata=metadata)
            os.replace(partial, path)  # atomic: a reader sees the whole snapshot or none


@dataclass(frozen=True)
class SnapshotInfo:
    path: Path
    sigma_rel: float
    gamma: float
    num_updates: int  # the EMA's t: optimiser steps averaged
    global_step: int
    images_seen: int

    @property
    def profile(self) -> Profile:
        return Profile(self.gamma, self.num_updates)


def list_snapshots(run_dir: str | Path, must_exist: bool = True) -> list[SnapshotInfo]:
    """The snapshots of a run folder (headers only), by step then sigma_rel."""
    folder = RunDirectory(run_dir).ema_snapshots
    infos = []
    for path in sorted(folder.glob("step_*.safetensors")) if folder.is_dir() else []:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a post-hoc EMA snapshot of this format ({FORMAT}); move it out of "
                             f"{folder}")
        infos.append(SnapshotInfo(path, float(meta["sigma_rel"]), float(meta["gamma"]), int(meta["num_updates"]),
                                  int(meta["global_step"]), int(meta["images_seen"])))
    if must_exist and not infos:
        raise FileNotFoundError(
            f"no post-hoc EMA snapshots in {folder}: train with the callback "
            "lit_diffusion.training.posthoc_ema.PostHocEMASnapshots in trainer.callbacks (see docs/training.md, "
            "'Post-hoc EMA (EDM2)')")
    return sorted(infos, key=lambda i: (i.global_step, i.sigma_rel))


@dataclass(frozen=True)
class ReconstructedEMA:
    state_dict: dict[str, torch.Tensor]  # the backbone's state_dict (float32), keys as backbone.state_dict()
    sigma_rel: float
    step: int  # global step of the target (the last snapshot step unless asked otherwise)
    images_seen: int
    num_updates: int
    relative_residual: float  # profile error of the least-squares fit (0: exact, see posthoc_ema_math)
    coefficients: dict[str, float]  # snapshot file name -> its weight in the reconstruction

    def summary(self) -> dict:
        return {"sigma_rel": self.sigma_rel, "step": self.step, "images_seen": self.images_seen,
                "num_updates": self.num_updates, "relative_residual": self.relative_residual,
                "snapshots": len(self.coefficients)}


def reconstruct_ema(run_dir: str | Path, sigma_rel: float, at_step: int | None = None) -> ReconstructedEMA:
    """The power-function EMA of width `sigma_rel` at `at_step` (default: the last snapshot step), from the
    snapshots in RUN/ema_snapshots taken at or before that step (EDM2 App. C.2)."""
    if not 0.0 < sigma_rel < 0.2887:
        raise ValueError(f"post-hoc EMA: sigma_rel must lie in (0, 0.2887) (a power-function EMA cannot be wider), "
                         f"got {sigma_rel}; EDM2's optima are around 0.05-0.15")
    gamma = gamma_from_sigma_rel(sigma_rel)
    snapshots = list_snapshots(run_dir)
    steps = sorted({s.global_step for s in snapshots})
    step = steps[-1] if at_step is None else int(at_step)
    at_target = [s for s in snapshots if s.global_step == step]
    if not at_target:
        raise ValueError(f"post-hoc EMA: no snapshot at step {step} in {RunDirectory(run_dir).ema_snapshots}; "
                         f"snapshot steps: {steps[:5]}{' ...' if len(steps) > 5 else ''} {steps[-1]}")
    used = [s for s in snapshots if s.global_step <= step]
    solution = solve_posthoc_ema([s.profile for s in used], Profile(gamma, at_target[0].num_updates))
    total: dict[str, torch.Tensor] = {}
    averaged: set[str] = set()
    for info, x in zip(used, solution.coefficients.tolist()):
        if x == 0.0:
            continue
        with safe_open(str(info.path), framework="pt") as f:
            averaged = set(json.loads(f.metadata()["averaged"]))
        for key, value in load_file(str(info.path)).items():
            if key in averaged:
                total[key] = total.get(key, 0.0) + x * value.to(torch.float64)
    buffers = load_file(str(at_target[0].path))  # buffers (not averaged) as they were at the target step
    state = {k: total[k].to(torch.float32) if k in total else v for k, v in buffers.items()}
    return ReconstructedEMA(state, float(sigma_rel), step, at_target[0].images_seen, at_target[0].num_updates,
                            solution.relative_residual,
                            {i.path.name: float(x) for i, x in zip(used, solution.coefficients.tolist())})


def load_posthoc_ema(module, run_dir: str | Path, sigma_rel: float, at_step: int | None = None) -> ReconstructedEMA:
    """Write the reconstruction into `module.ema.shadow` (a DiffusionModule, e.g. from `load_module`), so that
    generation with the EMA weights uses it; returns what was loaded."""
    result = reconstruct_ema(run_dir, sigma_rel, at_step)
    device = next(module.ema.shadow.parameters()).device
    module.ema.shadow.load_state_dict({k: v.to(device) for k, v in result.state_dict.items()})
    return result
