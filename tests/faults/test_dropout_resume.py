"""A model with dropout resumes exactly: dropout draws from the global RNG, which the checkpoint stores and the
resumed run restores at its first batch (after the data loader has drawn its own base seed)."""
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli_main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def fit(root, shards, steps, *extra):
    return cli_main(["fit", "-c", str(EXPERIMENTS / "digits/unet.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
                     "--data.train_shards", str(shards), "--data.num_workers", "0", "--data.batch_size", "32",
                     "--model.backbone.init_args.dropout", "0.1", "--preview_every_n_steps", "0",
                     "--seed_everything", "7", "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(root),
                     "--trainer.accelerator", "cpu", *extra])


def test_a_model_with_dropout_resumes_bitwise(tmp_path, digits_shards):
    assert fit(tmp_path / "straight", digits_shards, 8) == 0
    assert fit(tmp_path / "stopped", digits_shards, 4) == 0
    assert fit(tmp_path / "stopped", digits_shards, 8, "--ckpt_path", "last") == 0
    a = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "stopped/checkpoints/last.ckpt", weights_only=False)["state_dict"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
