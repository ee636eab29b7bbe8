"""`lit-diffusion import` given the wrong thing (another architecture, missing keys, other channel counts, no such
path): one line naming the keys or setting that is wrong and what to give instead, status 1, no traceback."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "published"))
from tiny_published import tiny_unet  # noqa: E402

from lit_diffusion.cli import DEBUG_ENV, main as cli_main  # noqa: E402


def one_line_error(argv, capsys, monkeypatch) -> str:
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert cli_main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lit-diffusion import")]
    assert len(lines) == 1, err
    return lines[0]


def test_missing_and_unexpected_keys_are_named_with_counts(tmp_path, capsys, monkeypatch):
    from safetensors.torch import load_file, save_file

    tiny_unet().save_pretrained(tmp_path / "unet")
    file = tmp_path / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(str(file))
    dropped = sorted(k for k in state if k.startswith("mid_block."))
    kept = {k: v for k, v in state.items() if k not in dropped}
    save_file({**kept, "extra_head.weight": torch.zeros(3)}, str(file))
    line = one_line_error(["import", "diffusers", str(tmp_path / "unet"), "--out", str(tmp_path / "run")], capsys,
                          monkeypatch)
    assert f"{len(dropped)} missing key(s): {dropped[0]}" in line and f"and {len(dropped) - 4} more" in line
    assert "1 unexpected key(s): extra_head.weight" in line
    assert "google/ddpm-cifar10-32" in line  # what to give instead
    assert not (tmp_path / "run").exists()


def test_wrong_channel_count_names_the_tensor_and_both_shapes(tmp_path, capsys, monkeypatch):
    tiny_unet(in_channels=1, out_channels=1).save_pretrained(tmp_path / "unet")
    config = tmp_path / "unet" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "in_channels": 3, "out_channels": 3}))
    line = one_line_error(["import", "diffusers", str(tmp_path / "unet"), "--out", str(tmp_path / "run")], capsys,
                          monkeypatch)
    assert "conv_in.weight (32, 1, 3, 3) (expected (32, 3, 3, 3))" in line and "conv_out.weight" in line


def test_another_architecture_is_named(tmp_path, capsys, monkeypatch):
    from diffusers import AutoencoderKL

    AutoencoderKL(block_out_channels=(8,), norm_num_groups=4, latent_channels=4).save_pretrained(tmp_path / "vae")
    line = one_line_error(["import", "diffusers", str(tmp_path / "vae"), "--out", str(tmp_path / "run")], capsys,
                          monkeypatch)
    assert "holds a 'AutoencoderKL'" in line and "UNet2DModel" in line and "DiTTransformer2DModel" in line


def test_a_unet_given_as_a_dit_checkpoint_names_the_missing_dit_key(tmp_path, capsys, monkeypatch):
    torch.save(tiny_unet().state_dict(), tmp_path / "unet.pt")
    line = one_line_error(["import", "dit-pt", str(tmp_path / "unet.pt"), "--out", str(tmp_path / "run")], capsys,
                          monkeypatch)
    assert "missing key x_embedder.proj.weight" in line and "DiT-XL-2-256x256.pt" in line


def test_no_such_source(tmp_path, capsys, monkeypatch):
    line = one_line_error(["import", "diffusers", str(tmp_path / "nothing"), "--out", str(tmp_path / "run")], capsys,
                          monkeypatch)
    assert "does not exist" in line and "google/ddpm-cifar10-32" in line
