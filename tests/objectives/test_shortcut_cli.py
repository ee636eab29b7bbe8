"""A shortcut model through the real CLI: a tiny fit on the digits, then `sample` at a step count it was trained
for, and at one it was not (one line naming the valid step counts, no traceback)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lit_diffusion.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def test_sampling_at_an_untrained_step_size_is_one_line_naming_the_valid_counts(digits_shards, tmp_path):
    root = tmp_path / "run"
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/shortcut.yaml"),
                     "--model.backbone.init_args.second_time", "true", "--model.objective.init_args.max_steps", "8",
                     "--data.train_shards", str(digits_shards), "--data.batch_size", "8", "--data.num_workers", "0",
                     "--model.max_images", "16", "--trainer.default_root_dir", str(root),
                     "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0"]) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    assert cli_main(["sample", "--ckpt", str(ckpt), "--nfe", "4", "--num", "2", "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "samples.npz").is_file()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    bad = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "sample", "--ckpt", str(ckpt), "--nfe", "3",
                          "--num", "2", "--out", str(tmp_path / "bad")], capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "3 steps" in lines[0] and "valid step counts: 1, 2, 4, 8" in lines[0], bad.stderr
