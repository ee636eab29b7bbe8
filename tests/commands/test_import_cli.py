"""`lit-diffusion import` writes a checkpoint of the project that the rest takes like any trained run: `sample`
(pixels, and latents decoded through the recorded autoencoder), load_module, a distillation teacher, and
--model.init_from for tuning."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "published"))
from tiny_published import DIT, original_dit_state, save_pipeline, tiny_dit, tiny_unet  # noqa: E402

from lit_diffusion.cli import main as cli_main  # noqa: E402
from lit_diffusion.runs import RunDirectory, read_record  # noqa: E402
from lit_diffusion.training.loading import load_module  # noqa: E402


@pytest.fixture(scope="module")
def unet_run(tmp_path_factory):
    from diffusers import DDPMScheduler

    root = tmp_path_factory.mktemp("import_unet")
    reference = tiny_unet()
    save_pipeline(reference, DDPMScheduler(), root / "pipe", "unet")
    assert cli_main(["import", "diffusers", str(root / "pipe"), "--out", str(root / "run")]) == 0
    return reference, RunDirectory(root / "run").last_checkpoint


def test_the_checkpoint_is_a_project_checkpoint_with_the_published_function(unet_run):
    reference, path = unet_run
    info = read_record(path)
    assert info.content_sha256 and info.sample_shape == (3, 16, 16) and info.global_step == 0
    assert info.model_spec["objective"]["init_args"]["variance"] == "fixed_small"
    module = load_module(path)
    x, k = torch.randn(2, 3, 16, 16), torch.tensor([3, 999])
    with torch.no_grad():
        expected = reference(x, k).sample
        for net in (module.ema.shadow, module.backbone):
            torch.testing.assert_close(net(x, (k + 1) / 1000.0), expected, atol=1e-5, rtol=0)


def test_sample_takes_it(unet_run, tmp_path):
    _, path = unet_run
    assert cli_main(["sample", "--ckpt", str(path), "--out", str(tmp_path), "--num", "2", "--nfe", "2",
                     "--sampler", "ddpm"]) == 0
    assert np.load(tmp_path / "samples.npz")["images"].shape == (2, 16, 16, 3)


def test_distillation_and_tuning_take_it(unet_run):
    from lit_diffusion.backbones import UNet
    from lit_diffusion.objectives import FlowMatching
    from lit_diffusion.training.module import DiffusionModule
    from lit_diffusion.training.recipes import ConsistencyDistillationFromCheckpoint

    _, path = unet_run
    teacher = ConsistencyDistillationFromCheckpoint(teacher_checkpoint=str(path), num_scales=4)
    assert type(teacher.teacher).__name__ == "DDPM"
    spec = read_record(path).model_spec["backbone"]["init_args"]
    student = DiffusionModule(UNet(**spec), FlowMatching(), init_from=str(path))
    torch.testing.assert_close(student.backbone.state_dict(), teacher.teacher_net.state_dict())


def test_a_latent_dit_records_its_autoencoder_and_samples_decode_to_images(tmp_path):
    """The original DiT layout with --autoencoder (a tiny AutoencoderKL folder standing in for SD-VAE):
    sampling with the learned variance and guidance decodes the latents to RGB."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=4,
                  latent_channels=4).save_pretrained(tmp_path / "vae")
    torch.save(original_dit_state(tiny_dit(norm_eps=1e-6)), tmp_path / "dit.pt")
    base = ["import", "dit-pt", str(tmp_path / "dit.pt"), "--out", str(tmp_path / "run"), "--num_heads", "2"]
    assert cli_main(base) == 1  # 4-channel latents without an autoencoder: refused, --autoencoder named
    assert cli_main(base + ["--autoencoder", str(tmp_path / "vae")]) == 0
    path = RunDirectory(tmp_path / "run").last_checkpoint
    latent = read_record(path).model_spec["latent"]
    assert latent["normalization"] == {"kind": "scalar", "scale": 0.18215, "shift": 0.0}
    assert latent["image_shape"] == [3, 16, 16]
    assert cli_main(["sample", "--ckpt", str(path), "--out", str(tmp_path / "s"), "--num", "2", "--nfe", "3",
                     "--sampler", "ddpm", "--cfg", "1.5"]) == 0
    assert np.load(tmp_path / "s" / "samples.npz")["images"].shape == (2, 16, 16, 3)
    assert cli_main(base + ["--autoencoder", str(tmp_path / "vae")]) == 1  # exists: --overwrite needed
    assert DIT["num_embeds_ada_norm"] == read_record(path).model_spec["objective"]["init_args"]["null_label"]
