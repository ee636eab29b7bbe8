"""x0 thresholds chosen by the objective for image data (issue 11, item 7): DDPM with eps prediction clips by
default, as Ho et al. 2020 sample; flows and v prediction do not; `lit-diffusion sample --x0-threshold` overrides,
and a threshold on data that are not known to be images is refused with what to do instead."""
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_diffusion.cli import DEBUG_ENV, main as cli_main
from lit_diffusion.objectives import DDPM, FlowMatching
from lit_diffusion.training.loading import load_module

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_defaults_follow_the_measurement():
    assert DDPM(prediction="eps").default_x0_threshold == "clip"
    assert DDPM(prediction="eps", schedule="cosine").default_x0_threshold == "clip"
    assert DDPM(prediction="v", schedule="cosine").default_x0_threshold is None
    assert DDPM(prediction="eps", variance="learned_range").default_x0_threshold is None  # keeps its variance
    assert FlowMatching().default_x0_threshold is None


def fit(root, shards, objective):
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "digits/unet.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.num_workers", "0",
                     "--model.max_images", "32", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
                     "--preview_every_n_steps", "0"]) == 0
    return root / "checkpoints" / "last.ckpt"


def sample(ckpt, out, *extra):
    code = cli_main(["sample", "--ckpt", str(ckpt), "--nfe", "4", "--num", "6", "--out", str(out), "--device", "cpu",
                     *extra])
    return code, (np.load(out / "samples.npz")["images"] if code == 0 else None)


@pytest.mark.slow
def test_sample_clips_eps_ddpm_by_default_and_says_so(tmp_path, digits_shards, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    ckpt = fit(tmp_path / "ddpm", digits_shards, "ddpm")
    module = load_module(ckpt)
    assert module.image_data and module.sample_options == {"x0_threshold": "clip", "data_range": (-1.0, 1.0)}
    code, default = sample(ckpt, tmp_path / "default")
    assert code == 0 and "x0 threshold clip" in capsys.readouterr().out
    _, clip = sample(ckpt, tmp_path / "clip", "--x0-threshold", "clip")
    _, none = sample(ckpt, tmp_path / "none", "--x0-threshold", "none")
    assert np.array_equal(default, clip) and not np.array_equal(default, none)  # 2 steps: x0 leaves [-1, 1]
    assert "x0 threshold none" in capsys.readouterr().out
    # a flow keeps its predictions as they are
    assert load_module(fit(tmp_path / "fm", digits_shards, "flow_matching")).sample_options == {}
    # bad input: an unknown threshold, and a threshold where the data are not known to be images
    code, _ = sample(ckpt, tmp_path / "bogus", "--x0-threshold", "clamp")
    assert code != 0 and "--x0-threshold must be default, none or one of ['clip', 'dynamic']" in capsys.readouterr().err
    old = torch.load(ckpt, weights_only=False)
    del old["image_data"]  # a checkpoint written before the data kind was recorded
    torch.save(old, tmp_path / "old.ckpt")
    assert load_module(tmp_path / "old.ckpt").sample_options == {}
    code, _ = sample(tmp_path / "old.ckpt", tmp_path / "old", "--x0-threshold", "dynamic")
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err and "use --x0-threshold none" in err
