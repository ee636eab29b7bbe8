"""Adaptively weighted objectives (MeanFlow, sCM) log their unweighted error beside the weighted loss, which stays
near 1 by construction: train/raw_error in the metrics CSV (and so W&B), in the training progress line and in the
compare's progress line."""
import csv
import subprocess
import sys
import types
from pathlib import Path

import torch

from lit_diffusion.compare.train import progress
from lit_diffusion.runs import MetricsLog, RunDirectory
from lit_diffusion.training.progress import TrainingProgress

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_mean_flow_fit_logs_a_raw_error_that_moves(tmp_path, digits_shards):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "lit_diffusion.cli", "fit", "-c", str(ROOT / "experiments/digits/unet.yaml"),
               "-c", str(ROOT / "experiments/objectives/mean_flow.yaml"),
               "--model.backbone.init_args.second_time", "true", "--data.train_shards", str(digits_shards),
               "--data.num_workers", "0", "--data.batch_size", "16", "--model.max_images", "160",
               "--trainer.log_every_n_steps", "1", "--trainer.accelerator", "cpu", "--trainer.default_root_dir",
               str(run), "--preview_every_n_steps", "0"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [r for r in csv.DictReader(open(next(run.rglob("metrics.csv")))) if r.get("train/loss")]
    loss = [float(r["train/loss"]) for r in rows]
    raw = [float(r["train/raw_error"]) for r in rows]
    assert len(raw) == 10 and all(value > 0 for value in raw)
    assert max(abs(value - 1.0) for value in loss) < 0.01  # the weighted loss says nothing ...
    assert max(raw) > 1.05 * min(raw)  # ... the raw error moves
    line = progress(RunDirectory(run), 160)  # the compare's line, from the newest CSV row
    assert line.startswith("160 / 160 images (100%), loss ") and line.endswith(f"raw error {raw[-1]:.4g}")
    assert MetricsLog(RunDirectory(run)).latest_row()["train/raw_error"]


def test_the_training_progress_line_shows_the_raw_error_after_the_loss():
    bar = TrainingProgress()
    bar._images, bar._start = 640, 0.0
    trainer = types.SimpleNamespace(global_step=10, max_steps=-1, estimated_stepping_batches=float("inf"),
                                    callback_metrics={"train/loss": torch.tensor(1.0),
                                                      "train/raw_error": torch.tensor(41.25)})
    line = bar._line(trainer, types.SimpleNamespace(images_seen=640, max_images=6400), now=10.0)
    assert line == "step 10 | 640/6,400 images (10%) | loss 1 | raw error 41.25 | 64 images/s | ETA 1:30"


def test_scm_reports_its_unweighted_squared_error():
    from lit_diffusion.backbones import UNet
    from lit_diffusion.objectives.continuous_consistency import ContinuousConsistency

    torch.manual_seed(0)
    net = UNet(in_channels=1, channels=8, channel_mult=[1], num_res_blocks=1, attention_levels=[], norm_groups=4)
    objective = ContinuousConsistency(warmup_steps=0)
    with torch.no_grad():  # a non-zero adaptive weight, so that loss and raw error differ
        objective.adaptive_weight.linear.bias.fill_(0.5)
    out = objective.loss_with_diagnostics(net, torch.randn(4, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    raw = out.extras["raw_error"]
    assert raw.shape == (4,) and not raw.requires_grad
    torch.testing.assert_close(out.loss.detach(), torch.exp(torch.tensor(-0.5)) * raw + 0.5)
