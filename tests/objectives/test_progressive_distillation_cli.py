"""Progressive distillation through the real CLI: a tiny DDPM (v, cosine) teacher on the digits, one round from
its checkpoint and weights (2 teacher DDIM steps -> 1), sampled at the student's step count by default, each run's
images counted in its checkpoint; and a bad teacher_steps as one line, no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lit_diffusion.cli import main as cli_main
from lit_diffusion.runs import read_record

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def fit_args(shards, root, objective, *extra):
    return ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
            "--data.train_shards", str(shards), "--data.batch_size", "8", "--data.num_workers", "0",
            "--model.max_images", "16", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
            "--preview_every_n_steps", "0", *extra]


def test_a_round_from_a_teacher_checkpoint_and_a_bad_step_count(digits_shards, tmp_path, capsys):
    assert cli_main(fit_args(digits_shards, tmp_path / "teacher", "ddpm_v")) == 0
    teacher = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    round_args = ("--model.init_from", str(teacher), "--model.objective.init_args.teacher_checkpoint", str(teacher))
    assert cli_main(fit_args(digits_shards, tmp_path / "round1", "progressive_distillation", *round_args,
                             "--model.objective.init_args.teacher_steps", "2")) == 0
    student = tmp_path / "round1" / "checkpoints" / "last.ckpt"
    assert read_record(teacher).images_seen == read_record(student).images_seen == 16
    capsys.readouterr()
    assert cli_main(["sample", "--ckpt", str(student), "--num", "2", "--out", str(tmp_path / "samples")]) == 0
    assert "(1 NFE, sampler ddim" in capsys.readouterr().out
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    bad = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *fit_args(digits_shards, tmp_path / "bad", "progressive_distillation",
                                                                               *round_args, "--model.objective.init_args.teacher_steps", "3")],
                         capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    errors = [line for line in bad.stderr.splitlines() if "error" in line.lower()]
    assert errors and "teacher_steps must be an even integer >= 2" in errors[-1], bad.stderr
