"""Tiny `lit-diffusion fit` runs on 2 CPU ranks (gloo) under DDP and the DeepSpeed *_cpu presets, and what the
DeepSpeed tests compare: weights and EMA through the one checkpoint door (a DeepSpeed folder is consolidated
there), Adam's moments merged from the ranks' optimiser partitions."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from lit_diffusion.runs import open_checkpoint

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def fit_command(root, shards, strategy: str, devices: int, steps: int, *extra: str) -> list[str]:
    # the debug DiT, 16 samples per rank and step: every rank sees the same samples, noise and times under
    # each strategy (the data stream and the noise generator depend on (seed, rank), not on the strategy)
    return [sys.executable, "-m", "lit_diffusion.cli", "fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"),
            "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"), "--data.num_workers", "0",
            "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.samples_per_epoch", "192",
            "--model.max_images", "100000", "--trainer.default_root_dir", str(root), "--trainer.log_every_n_steps",
            "1", "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0", "--trainer.devices", str(devices),
            "--trainer.strategy", strategy, "--trainer.max_steps", str(steps), *extra]


def run_fit(root, shards, strategy: str, devices: int, steps: int, *extra: str,
            check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), DS_ACCELERATOR="cpu")
    done = subprocess.run(fit_command(root, shards, strategy, devices, steps, *extra), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"fit {strategy} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done


def weights(checkpoint) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file or a DeepSpeed folder, as the tools read it (float32)."""
    return {k: v.float() for k, v in open_checkpoint(checkpoint).full()["state_dict"].items()}


def max_difference(a: dict, b: dict, prefix: str) -> float:
    keys = [k for k in a if k.startswith(prefix)]
    assert keys and set(keys) == {k for k in b if k.startswith(prefix)}, prefix
    return max(float((a[k] - b[k]).abs().max()) for k in keys)


def ddp_moments(checkpoint, names: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's exp_avg and exp_avg_sq of a DDP checkpoint file, by parameter name (one group, model order)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["optimizer_states"][0]["state"]
    assert len(state) == len(names)
    return {m: {name: state[i][m] for i, name in enumerate(names)} for m in ("exp_avg", "exp_avg_sq")}


def deepspeed_moments(folder) -> dict[str, dict[str, torch.Tensor]]:
    """Adam's moments of a DeepSpeed folder, merged from the ranks' flat partitions by DeepSpeed's own
    zero_to_fp32 merge (fed the moment partitions where it reads the float32 master partitions)."""
    from deepspeed.utils import zero_to_fp32 as z

    tag = Path(folder) / (Path(folder) / "latest").read_text().strip()
    models = z.parse_model_states(z.get_model_state_files(str(tag)))
    files = [torch.load(f, map_location="cpu", weights_only=False)["optimizer_state_dict"]
             for f in z.get_optim_files(str(tag))]
    stage = files[0]["zero_stage"]
    out = {}
    for moment in ("exp_avg", "exp_avg_sq"):
        inner = "base_optimizer_state" if stage <= 2 else "optimizer_state_dict"
        groups = [[f[inner]["state"][g][moment] for g in sorted(f[inner]["state"])] for f in files]
        if stage <= 2:
            merged = z._get_fp32_state_dict_from_zero2_checkpoint(len(files), groups, models, True,
                                                                  files[0].get("param_alignment_paddings"))
        else:
            merged = z._get_fp32_state_dict_from_zero3_checkpoint(len(files), groups, models, True)
        trained = [name for shapes in models[0].param_shapes for name in shapes]
        out[moment] = {name: z.to_torch_tensor({name: merged[name]})[name] for name in trained}
    return out


def moments_difference(a: dict, b: dict) -> float:
    return max(float((a[m][n].float() - b[m][n].float()).abs().max()) for m in a for n in a[m])
