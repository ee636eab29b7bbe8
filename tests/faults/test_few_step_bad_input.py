"""Bad input of the few-step objectives through the real CLI (issue 11): MeanFlow on a backbone without the
second time input r, and consistency tuning started from a checkpoint of another shape. Each fails with a
message that says what is wrong and what to do."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.backbones import DiT
from lit_diffusion.cli import main as cli_main
from fault_helpers import EXPERIMENTS


def fit(root, shards, objective, *extra) -> int:
    return cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "8", "--data.num_workers", "0",
                     "--model.max_images", "16", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
                     "--preview_every_n_steps", "0", *extra])


def error_line(capsys) -> str:
    return next(line for line in capsys.readouterr().err.splitlines() if "error:" in line)


def test_mean_flow_on_a_backbone_without_the_second_time_input(digits_shards, tmp_path, capsys):
    assert fit(tmp_path / "run", digits_shards, "mean_flow") != 0
    line = error_line(capsys)
    assert "second time input r" in line and "DiT" in line and "second_time=True" in line, line


def test_consistency_tuning_from_a_checkpoint_of_another_shape(digits_shards, tmp_path, capsys):
    # a 'pre-trained' run of a wider DiT than the config's (hidden 96, not 64)
    other = DiT(in_channels=1, input_size=16, patch_size=2, hidden_size=96, depth=2, num_heads=4, num_classes=10)
    ckpt = tmp_path / "wider.ckpt"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in other.state_dict().items()}}, ckpt)
    assert fit(tmp_path / "run", digits_shards, "consistency_tuning", "--model.init_from", str(ckpt)) != 0
    line = error_line(capsys)
    assert "init_from" in line and str(ckpt) in line and "does not fit" in line, line
