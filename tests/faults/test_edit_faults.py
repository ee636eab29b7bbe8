"""Edits through the real CLI (issue 29): `lit-diffusion sample --edit sdedit|inpaint` on a tiny digits model keeps
what it must, and each bad request (an objective that cannot edit, masks of the wrong shape or values, t0 outside
(0, 1], no --mask for inpaint, inputs that do not fit the model) ends in one line that says what to do."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from lit_diffusion.cli import main as cli_main
from fault_helpers import EXPERIMENTS, REPO


def fit(root, shards, *configs_and_flags) -> None:
    assert cli_main(["fit", *configs_and_flags, "--data.train_shards", str(shards), "--data.batch_size", "8",
                     "--data.num_workers", "0", "--model.max_images", "16", "--trainer.default_root_dir", str(root),
                     "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0"]) == 0
    return root / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def flow_ckpt(digits_shards, tmp_path_factory):
    """An unconditional flow-matching DiT on the 16x16 digits (two steps: the edits' plumbing, not their quality)."""
    return fit(tmp_path_factory.mktemp("edit-flow"), digits_shards, "-c", str(EXPERIMENTS / "digits/dit.yaml"),
               "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"), "--model.conditional", "false")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three 16x16 grey input PNGs, the top-half mask as a PNG, and arrays of the wrong kinds."""
    root = tmp_path_factory.mktemp("edit-inputs")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / "images" / f"{i}.png")
    top = np.zeros((16, 16), dtype=np.uint8)
    top[:8] = 255
    Image.fromarray(top).save(root / "top.png")
    Image.fromarray((top // 2).astype(np.uint8)).save(root / "grey.png")  # 0 and 127: not binary
    np.save(root / "wrong_size.npy", np.ones((1, 1, 8, 8), dtype=bool))
    np.save(root / "two_masks.npy", np.ones((2, 1, 16, 16), dtype=bool))
    Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8)).save(root / "small.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "rgb.png")
    return root


def sample(ckpt, out, *flags) -> int:
    return cli_main(["sample", "--ckpt", str(ckpt), "--out", str(out), "--device", "cpu", *flags])


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return next(line for line in err.splitlines() if "error:" in line)


def test_inpaint_keeps_the_unmasked_pixels_and_sdedit_writes_one_output_per_input(flow_ckpt, inputs, tmp_path):
    assert sample(flow_ckpt, tmp_path / "inpaint", "--edit", "inpaint", "--input", str(inputs / "images"), "--mask",
                  str(inputs / "top.png"), "--nfe", "4", "--jump", "2", "--resample", "2") == 0
    for i in range(3):
        before = np.array(Image.open(inputs / "images" / f"{i}.png"))
        after = np.array(Image.open(tmp_path / "inpaint" / f"sample_{i:06d}.png"))
        assert np.array_equal(after[8:], before[8:])  # the kept half, pixel for pixel
        assert not np.array_equal(after[:8], before[:8])
    assert sample(flow_ckpt, tmp_path / "sdedit", "--edit", "sdedit", "--input", str(inputs / "images"), "--t0",
                  "0.3", "--nfe", "3") == 0
    assert np.load(tmp_path / "sdedit" / "samples.npz")["images"].shape == (3, 16, 16, 1)


BAD = {
    "mask_values": (["--edit", "inpaint", "--mask", "grey.png"], ["binary", "white (255)"]),
    "mask_size": (["--edit", "inpaint", "--mask", "wrong_size.npy"], ["(1, 1, 8, 8)", "16x16 pixels"]),
    "mask_count": (["--edit", "inpaint", "--mask", "two_masks.npy"], ["2 masks for 3", "one per image"]),
    "no_mask": (["--edit", "inpaint"], ["needs --mask"]),
    "t0_zero": (["--edit", "sdedit", "--t0", "0"], ["(0, 1]"]),
    "t0_above_one": (["--edit", "sdedit", "--t0", "1.5"], ["(0, 1]"]),
    "num_with_edit": (["--edit", "sdedit", "--num", "4"], ["--num does not apply", "drop --num"]),
    "unknown_edit": (["--edit", "outpaint"], ["sdedit", "inpaint"]),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_edit_requests(case, flow_ckpt, inputs, tmp_path, capsys):
    flags, expected = BAD[case]
    flags = [str(inputs / f) if f.endswith((".png", ".npy")) else f for f in flags]
    assert sample(flow_ckpt, tmp_path / "out", *flags, "--input", str(inputs / "images"), "--nfe", "2") == 2
    line = error_line(capsys)
    assert all(e in line for e in expected), line


@pytest.mark.parametrize("image, expected", [("small.png", ["12, 12", "16x16 pixels"]), ("rgb.png", ["RGB", "greyscale"])])
def test_inputs_that_do_not_fit_the_model(image, expected, flow_ckpt, inputs, tmp_path, capsys):
    assert sample(flow_ckpt, tmp_path / "out", "--edit", "sdedit", "--input", str(inputs / image)) == 2
    line = error_line(capsys)
    assert all(e in line for e in expected), line


@pytest.mark.slow
def test_an_objective_that_cannot_edit_is_refused_by_the_cli_process(digits_shards, inputs, tmp_path):
    """INDM's sampler state is its flow's latent z = g(x): a child process of the real CLI refuses in one line."""
    ckpt = fit(tmp_path / "indm", digits_shards, "-c", str(EXPERIMENTS / "mnist/indm_identity.yaml"),
               "--model.backbone.init_args.score.init_args.channels", "8")
    child = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "sample", "--ckpt", str(ckpt), "--out",
                            str(tmp_path / "out"), "--device", "cpu", "--edit", "sdedit", "--input",
                            str(inputs / "images")], capture_output=True, text=True, cwd=REPO)
    assert child.returncode == 2 and "Traceback" not in child.stderr, child.stderr
    line = child.stderr.strip().splitlines()[-1]
    assert "INDM cannot edit" in line and "latent" in line and "flow matching" in line, line
