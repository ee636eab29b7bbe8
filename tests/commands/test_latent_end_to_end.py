"""Issue 14, must show: encode -> latent shards -> fit a few steps -> sample -> decode, end to end on the CPU through
the real CLI, for the framework's autoencoder (trained here by `lit-diffusion fit`) and a randomly initialised
diffusers AutoencoderKL saved to a folder; and the encode job split over two ranks (then resumed) writes exactly
the shards of a one-rank job."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from lit_diffusion.cli import main as cli

DIGITS_AE = {"in_channels": 1, "latent_channels": 2, "channels": [8, 16]}  # 16x16 -> 2x8x8


def _fit_autoencoder(tmp_path, shards) -> str:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": 2, "default_root_dir": str(tmp_path / "ae"),
                    "enable_progress_bar": False, "log_every_n_steps": 1},
        "model": {"class_path": "lit_diffusion.training.autoencoder_module.AutoencoderModule",
                  "init_args": {"autoencoder": {"class_path": "lit_diffusion.backbones.autoencoders.KLAutoencoder",
                                                "init_args": DIGITS_AE}, "max_images": 10_000}},
        "data": {"train_shards": str(shards), "batch_size": 8, "num_workers": 0, "shuffle_buffer": 0},
    }
    path = tmp_path / "ae.yaml"
    path.write_text(yaml.safe_dump(config))
    assert cli(["fit", "-c", str(path), "--preview_every_n_steps", "2"]) == 0
    assert (tmp_path / "ae" / "previews" / "step_0000002.png").is_file()  # originals beside reconstructions
    return str(tmp_path / "ae" / "checkpoints" / "last.ckpt")


def _diffusers_folder(tmp_path) -> str:
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                        latent_channels=2, norm_num_groups=8, sample_size=16)
    folder = tmp_path / "vae"
    vae.save_pretrained(folder)
    return str(folder)


def fit_latent_dit(tmp_path, latents, name="dit", steps=2, extra=()) -> tuple[int, str]:
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "max_steps": steps, "default_root_dir": str(tmp_path / name),
                    "enable_progress_bar": False, "log_every_n_steps": 1},
        "model": {"backbone": {"class_path": "lit_diffusion.backbones.DiT",
                               "init_args": {"in_channels": 2, "input_size": 8, "patch_size": 2, "hidden_size": 32,
                                             "depth": 1, "num_heads": 2, "num_classes": 10}},
                  "objective": {"class_path": "lit_diffusion.objectives.FlowMatching"}, "conditional": True},
        "data": {"train_shards": str(latents), "batch_size": 8, "num_workers": 0, "shuffle_buffer": 0},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    status = cli(["fit", "-c", str(path), "--preview_every_n_steps", str(steps), *extra])
    return status, str(tmp_path / name / "checkpoints" / "last.ckpt")


def encode(source, autoencoder, out, *extra, shard_size=1000) -> int:
    return cli(["data", "encode", str(source), "--autoencoder", autoencoder, "--out", str(out), "--no-progress",
                "--shard-size", str(shard_size), "--batch-size", "256", *extra])


def _sample_and_check(tmp_path, ckpt):
    out = tmp_path / "samples"
    assert cli(["sample", "--ckpt", ckpt, "--out", str(out), "--num", "4", "--nfe", "2"]) == 0
    images = np.load(out / "samples.npz")["images"]
    assert images.shape == (4, 16, 16, 1) and images.dtype == np.uint8  # decoded to pixels, not 2x8x8 latents
    return images


@pytest.mark.parametrize("kind", ["framework", "diffusers"])
def test_encode_fit_sample_decode(tmp_path, digits_shards, kind):
    autoencoder = _fit_autoencoder(tmp_path, digits_shards) if kind == "framework" else _diffusers_folder(tmp_path)
    latents = tmp_path / "latents"
    assert encode(digits_shards, autoencoder, latents, "--normalization", "channel") == 0
    info = json.loads((latents / "dataset.json").read_text())
    assert info["shape"] == [2, 8, 8] and info["num_samples"] == 1797 and info["kind"] == "tensor"
    latent = info["build"]["latent"]
    assert latent["autoencoder"]["kind"] == kind and len(latent["autoencoder"]["weights_sha256"]) == 64
    assert latent["normalization"]["kind"] == "channel" and len(latent["normalization"]["std"]) == 2
    status, ckpt = fit_latent_dit(tmp_path, latents)
    assert status == 0
    saved = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert saved["model_spec"]["latent"] == latent  # the checkpoint knows its autoencoder and normalisation
    assert (tmp_path / "dit" / "previews" / "step_0000002.png").is_file()
    from PIL import Image

    preview = Image.open(tmp_path / "dit" / "previews" / "step_0000002.png")
    assert preview.size == (8 * 17 + 1, 8 * 17 + 1)  # 64 decoded 16x16 images, 8 columns, 1-pixel gaps
    _sample_and_check(tmp_path, ckpt)


def test_encode_split_over_ranks_and_resumed_matches_one_rank(tmp_path, digits_shards, monkeypatch):
    vae = _diffusers_folder(tmp_path)
    assert encode(digits_shards, vae, tmp_path / "one", shard_size=500) == 0
    split = tmp_path / "split"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert encode(digits_shards, vae, split, shard_size=500) == 0
    assert not (split / "dataset.json").exists()  # rank 0's shards are missing
    assert sorted(p.name for p in split.glob("*.tar")) == ["shard-000001.tar", "shard-000003.tar"]
    monkeypatch.setenv("RANK", "0")
    before = (split / "shard-000001.tar").stat().st_mtime_ns
    assert encode(digits_shards, vae, split, shard_size=500) == 0
    assert (split / "shard-000001.tar").stat().st_mtime_ns == before  # not rank 0's: left alone
    one, two = (json.loads((d / "dataset.json").read_text()) for d in (tmp_path / "one", split))
    assert one["shards"] == two["shards"] and one["fingerprint"] == two["fingerprint"]  # byte-identical shards
    assert one["build"]["latent"] == two["build"]["latent"]
    # scalar normalisation of a diffusers VAE defaults to its own scaling_factor (0.18215 when not configured)
    assert one["build"]["latent"]["normalization"] == {"kind": "scalar", "scale": 0.18215, "shift": 0.0}
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert encode(digits_shards, vae, split, shard_size=500) == 0  # all done: a rerun encodes nothing
    assert (split / "shard-000001.tar").stat().st_mtime_ns == before


def test_encode_an_image_folder(tmp_path):
    """An image folder (class sub-folders: labels; RGB files converted to the autoencoder's grey channel, resized to
    --resolution): each stored mean is the autoencoder's posterior mean of that image."""
    from PIL import Image

    from lit_diffusion.data.latent_encode import FolderImages
    from lit_diffusion.generation.latents import open_autoencoder

    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tmp_path / "images" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / "images" / cls / f"{i}.png")
    vae = _diffusers_folder(tmp_path)
    out = tmp_path / "latents"
    assert encode(tmp_path / "images", vae, out, "--resolution", "16") == 0
    info = json.loads((out / "dataset.json").read_text())
    assert (info["num_samples"], info["shape"], info["class_names"]) == (6, [2, 8, 8], ["cat", "dog"])
    from lit_diffusion.data.ordered_reader import OrderedShardReader

    batch = next(iter(OrderedShardReader.from_spec(str(out), batch_size=6)))  # normalised posterior means
    model, _ = open_autoencoder(vae)
    images = torch.stack([FolderImages(str(tmp_path / "images"), 1, 16)._image(i)[0] for i in range(6)])
    with torch.no_grad():
        mean, _ = model.encode(images.float() / 127.5 - 1)
    scale = info["build"]["latent"]["normalization"]["scale"]
    torch.testing.assert_close(batch["x"], mean * scale, atol=1e-5, rtol=1e-5)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1]


def test_latent_training_resumes_exactly_across_an_epoch_boundary(tmp_path, digits_shards):
    """Epochs of 4 steps: 6 straight steps vs 3 steps, stop, --ckpt_path last to 6; the latents drawn after the
    resume (the rest of epoch 0 and all of epoch 1) are the same, so the weights are bit-identical."""
    vae = _diffusers_folder(tmp_path)
    assert encode(digits_shards, vae, tmp_path / "latents") == 0
    short = ["--data.samples_per_epoch", "32", "--checkpoint_every_n_steps", "3"]
    assert fit_latent_dit(tmp_path, tmp_path / "latents", name="straight", steps=6, extra=short)[0] == 0
    assert fit_latent_dit(tmp_path, tmp_path / "latents", name="stopped", steps=3, extra=short)[0] == 0
    status, _ = fit_latent_dit(tmp_path, tmp_path / "latents", name="stopped", steps=6, extra=[*short, "--ckpt_path", "last"])
    assert status == 0
    a, b = (torch.load(tmp_path / r / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
            for r in ("straight", "stopped"))
    assert a["global_step"] == b["global_step"] == 6
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
