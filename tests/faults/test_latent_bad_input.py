"""Issue 14, bad input through the real CLI: shards encoded with another autoencoder than the checkpoint's, a latent
shape the backbone cannot take, a missing autoencoder folder: one-line errors that say what to do."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "commands"))
from test_latent_end_to_end import encode, fit_latent_dit  # noqa: E402

from lit_diffusion.cli import main as cli  # noqa: E402

pytest.importorskip("diffusers")


def _vae(folder: Path, seed: int) -> str:
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                  latent_channels=2, norm_num_groups=8, sample_size=16).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def two_encodings(digits_shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    out = []
    for seed in (0, 1):
        vae = _vae(root / f"vae{seed}", seed)
        assert encode(digits_shards, vae, root / f"latents{seed}") == 0
        out.append((vae, root / f"latents{seed}"))
    return out


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    return next(line for line in err if "error:" in line)


def test_shards_of_another_autoencoder_than_the_checkpoints(two_encodings, tmp_path, capsys):
    (vae_a, latents_a), (vae_b, latents_b) = two_encodings
    status, ckpt = fit_latent_dit(tmp_path, latents_a, name="a", steps=1)
    assert status == 0
    status, _ = fit_latent_dit(tmp_path, latents_b, name="b", steps=1, extra=["--model.init_from", ckpt])
    assert status == 1
    line = _error(capsys)
    assert "was encoded with another autoencoder" in line and vae_a in line and "data encode" in line
    # sampling with an autoencoder of other weights than the recorded one is refused too
    assert cli(["sample", "--ckpt", ckpt, "--out", str(tmp_path / "s"), "--num", "2", "--autoencoder", vae_b]) != 0
    line = _error(capsys)
    assert "other weights" in line and "--autoencoder" in line


def test_a_latent_shape_the_backbone_cannot_take(two_encodings, tmp_path, capsys):
    _, latents = two_encodings[0]
    status, _ = fit_latent_dit(tmp_path, latents, extra=["--model.backbone.init_args.in_channels", "4"])
    assert status == 1
    line = _error(capsys)
    assert "latents" in line and "[2, 8, 8]" in line and "--model.backbone.init_args.in_channels 2" in line
    status, _ = fit_latent_dit(tmp_path, latents, extra=["--model.backbone.init_args.input_size", "16"])
    assert status == 1
    assert "--model.backbone.init_args.input_size 8" in _error(capsys)


def test_a_missing_autoencoder_folder(digits_shards, tmp_path, capsys):
    missing = tmp_path / "no-such-vae"
    assert encode(digits_shards, str(missing), tmp_path / "out") == 1
    line = _error(capsys)
    assert str(missing) in line and "does not exist" in line and "save_pretrained" in line
    assert encode(digits_shards, str(tmp_path / "no.ckpt"), tmp_path / "out") == 1
    assert "experiments/autoencoder" in _error(capsys)
