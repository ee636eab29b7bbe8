"""The autoencoder on 2 gloo ranks through the real CLI (`lit-diffusion fit -c experiments/autoencoder/mnist.yaml
--trainer.strategy ddp --trainer.devices 2`): each rank's posterior draws come from its own noise generator, the
checkpoint keeps every rank's state (training/noise_generators.py, shared with DiffusionModule), and a resume
continues each rank's draws, so it ends bitwise where the uninterrupted run ends. With rank 0's state alone in
the checkpoint (what this module saved before), rank 1 would resume on rank 0's draws and the weights would
differ."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def fit(root: Path, shards: Path, max_steps: int, *extra: str) -> str:
    args = ["fit", "-c", str(REPO / "experiments/autoencoder/mnist.yaml"), "--data.train_shards", str(shards),
            "--data.num_workers", "0", "--data.batch_size", "8", "--data.samples_per_epoch", "64",
            "--model.autoencoder.init_args.channels", "[8, 8]", "--trainer.default_root_dir", str(root),
            "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
            "--trainer.max_steps", str(max_steps), "--checkpoint_every_n_steps", "2", "--preview_every_n_steps", "0",
            *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def checkpoint_at(root: Path, step: int) -> dict:
    found = sorted(Path(root, "checkpoints").rglob(f"*step={step}*.ckpt"))
    assert found, f"no checkpoint at step {step} in {root}"
    return torch.load(found[0], map_location="cpu", weights_only=False)


def test_each_rank_resumes_its_own_posterior_draws(digits_shards, tmp_path):
    straight = tmp_path / "straight"
    fit(straight, digits_shards, 4)
    resumed = tmp_path / "resumed"
    shutil.copytree(straight, resumed)
    for path in Path(resumed, "checkpoints").rglob("*.ckpt"):
        if "step=2" not in path.name:
            path.unlink()
    log = fit(resumed, digits_shards, 4, "--ckpt_path", "last")
    assert "training started at step 2" in log

    # measured before the per-rank states: max |weight difference| 2.6e-3 here (rank 1 resumed on rank 0's draws)
    a, b = checkpoint_at(straight, 4)["state_dict"], checkpoint_at(resumed, 4)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed run's weights differ from the uninterrupted run's"
    saved = checkpoint_at(straight, 2)
    states = saved["noise_generators"]
    assert len(states) == 2 and not torch.equal(states[0], states[1])  # each rank its own stream
    assert torch.equal(saved["noise_generator"], states[0])
    assert any(not torch.equal(a[k], saved["state_dict"][k]) for k in a)  # it trained from step 2 to 4
