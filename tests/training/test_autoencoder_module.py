"""The framework's autoencoder trains through `lit-diffusion fit` like any run: its configs parse against
AutoencoderModule, its loss is reconstruction + kl_weight * KL per pixel, and a run stopped and resumed with
--ckpt_path last ends with exactly the weights of an uninterrupted one."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from jsonargparse import ArgumentParser
from lightning.pytorch import Trainer

from lit_diffusion.backbones.autoencoders import KLAutoencoder
from lit_diffusion.backbones.autoencoders.kl_autoencoder import kl_to_standard_normal
from lit_diffusion.cli import main as cli
from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.training.autoencoder_module import AutoencoderModule

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "experiments" / "autoencoder").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_autoencoder_configs_parse(path):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action="config")
    parser.add_argument("--seed_everything", type=int | bool | None, default=None)
    parser.add_class_arguments(Trainer, "trainer", fail_untyped=False)
    parser.add_subclass_arguments(AutoencoderModule, "model", fail_untyped=False)
    parser.add_class_arguments(ShardDataModule, "data", fail_untyped=False)
    config = parser.parse_args(["--config", str(path)])
    assert config.model.init_args.autoencoder.class_path.endswith("KLAutoencoder")


def test_loss_is_reconstruction_plus_weighted_kl_per_pixel():
    torch.manual_seed(0)
    module = AutoencoderModule(KLAutoencoder(1, 2, (8, 16)), kl_weight=0.5, reconstruction="l2")
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    out = module.losses(x, torch.Generator().manual_seed(1))
    recon, mean, logvar = module.autoencoder(x, torch.Generator().manual_seed(1))
    rec = (recon - x).square().flatten(1).sum(1) / 64
    torch.testing.assert_close(out["reconstruction"], rec.mean())
    torch.testing.assert_close(out["loss"], (rec + 0.5 * kl_to_standard_normal(mean, logvar) / 64).mean())


def _config(tmp_path, shards, root, steps) -> str:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "default_root_dir": str(root),
                    "enable_progress_bar": False, "log_every_n_steps": 1},
        "model": {"class_path": "lit_diffusion.training.autoencoder_module.AutoencoderModule",
                  "init_args": {"autoencoder": {"class_path": "lit_diffusion.backbones.autoencoders.KLAutoencoder",
                                                "init_args": {"in_channels": 1, "latent_channels": 2,
                                                              "channels": [8, 16]}},
                                "max_images": 10_000, "kl_weight": 1.0e-3}},
        "data": {"train_shards": str(shards), "batch_size": 8, "num_workers": 0, "shuffle_buffer": 16},
    }
    path = tmp_path / f"{root.name}-{steps}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_resume_continues_exactly(tmp_path, digits_shards):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert cli(["fit", "-c", _config(tmp_path, digits_shards, straight, 4), "--preview_every_n_steps", "0"]) == 0
    assert cli(["fit", "-c", _config(tmp_path, digits_shards, stopped, 2), "--preview_every_n_steps", "0"]) == 0
    assert cli(["fit", "-c", _config(tmp_path, digits_shards, stopped, 4), "--preview_every_n_steps", "0",
                "--ckpt_path", "last"]) == 0
    a, b = (torch.load(r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False) for r in (straight, stopped))
    assert a["images_seen"] == b["images_seen"] == 32
    assert a["autoencoder"] == b["autoencoder"]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
