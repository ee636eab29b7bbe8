"""A short run through the real CLI for every objective x (DiT debug, U-Net debug) on MNIST shards made
from ../shared/data/mnist, then sampling from the checkpoint with `lit-diffusion sample`."""
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_diffusion.cli import main as cli_main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
OBJECTIVES = ["ddpm", "flow_matching", "rectified_flow", "consistency_training", "consistency_distillation"]


def fit(root, shards, backbone, objective, *extra):
    return cli_main(["fit", "-c", str(EXPERIMENTS / f"mnist/{backbone}.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.num_workers", "0",
                     "--model.max_images", "48", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
                     *extra])


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["dit", "unet"])
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_fit_and_sample_through_the_cli(tmp_path, mnist_test_shards, backbone, objective):
    extra = []
    if objective == "consistency_distillation":  # the teacher: a flow-matching run of the same backbone
        assert fit(tmp_path / "teacher", mnist_test_shards, backbone, "flow_matching") == 0
        extra = ["--model.objective.init_args.teacher_checkpoint", str(tmp_path / "teacher/checkpoints/last.ckpt")]
    assert fit(tmp_path / "run", mnist_test_shards, backbone, objective, *extra) == 0
    ckpt = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 3 and ckpt["images_seen"] == 48
    assert ckpt["sample_shape"] == [1, 28, 28]
    out = tmp_path / "samples"
    assert cli_main(["sample", "--ckpt", str(tmp_path / "run/checkpoints/last.ckpt"), "--nfe", "2", "--num", "5",
                     "--out", str(out), "--device", "cpu"]) == 0
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (5, 28, 28, 1) and images.dtype == np.uint8
    assert len(list(out.glob("sample_*.png"))) == 5 and (out / "grid.png").is_file()


def test_an_unknown_consistency_distance_is_refused_naming_the_choices(tmp_path, mnist_test_shards, capsys):
    assert fit(tmp_path / "run", mnist_test_shards, "unet", "consistency_training",
               "--model.objective.init_args.distance", "l1") != 0
    err = capsys.readouterr().err
    assert "distance must be one of ('pseudo_huber', 'squared_l2'), got 'l1'" in err
    assert not (tmp_path / "run/checkpoints").exists()  # refused before anything trained
