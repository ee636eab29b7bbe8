"""experiments/objectives/ddpm_learned_variance.yaml through the real CLI on the digits shards: a backbone
without the variance channels is told what to set; with them it trains and samples with DDPM ancestral steps."""
from pathlib import Path

import numpy as np
import pytest

from lit_diffusion.cli import main as cli_main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def fit(root, shards, *extra):
    return cli_main(["fit", "-c", str(EXPERIMENTS / "digits/unet.yaml"),
                     "-c", str(EXPERIMENTS / "objectives/ddpm_learned_variance.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.num_workers", "0",
                     "--model.max_images", "32", "--trainer.default_root_dir", str(root),
                     "--trainer.accelerator", "cpu", *extra])


def test_missing_variance_channels_are_named(tmp_path, digits_shards, capsys):
    with pytest.raises(Exception, match="Set the backbone's out_channels to 2"):
        if fit(tmp_path / "bad", digits_shards) != 0:
            raise RuntimeError(capsys.readouterr().err)


def test_fit_and_sample_with_a_learned_variance(tmp_path, digits_shards):
    assert fit(tmp_path / "run", digits_shards, "--model.backbone.init_args.out_channels", "2") == 0
    out = tmp_path / "samples"
    assert cli_main(["sample", "--ckpt", str(tmp_path / "run/checkpoints/last.ckpt"), "--sampler", "ddpm",
                     "--nfe", "3", "--num", "4", "--out", str(out), "--device", "cpu"]) == 0
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (4, 16, 16, 1)
