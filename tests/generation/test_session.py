"""generation/session.py: the one preamble from a trained model to samples on disk, shared by `sample` and
`reflow`: device, sample shape, conditioning and x0-threshold checks, PNGs + samples.npz, reflow couplings."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from lit_diffusion.generation import generate, sample_noise
from lit_diffusion.generation.session import GenerationSession
from lit_diffusion.objectives import FlowMatching


class Shrink(nn.Module):
    """A velocity field with a known flow: v = x (the ODE scales the noise), conditioned or not."""

    def __init__(self, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x, t, cond=None):
        return x * 0.5


class FakeModule(SimpleNamespace):
    def to(self, device):
        return self


def module(num_classes=0, shape=(1, 4, 4), image_data=True, latent=None):
    objective = FlowMatching()
    net = Shrink(num_classes)
    return FakeModule(objective=objective, backbone=net, ema=SimpleNamespace(shadow=net), sample_shape=shape,
                      sample_classes=num_classes, sample_options={}, image_data=image_data, latent=latent)


def open_session(fake, **options):
    return GenerationSession.open("run.ckpt", lambda path: fake, command="lit-diffusion sample", device="cpu",
                                  **options)


def test_a_module_without_a_sample_shape_is_refused():
    with pytest.raises(SystemExit, match="lit-diffusion sample: run.ckpt records no sample shape"):
        open_session(module(shape=None))


def test_conditioning_checks():
    session = open_session(module(num_classes=3))
    with pytest.raises(SystemExit, match="--label 3 outside the model's 3 classes"):
        session.check_conditioning(3, 1.0)
    session.check_conditioning(2, 2.0)
    assert session.module.objective.null_label == 3  # guidance uses the backbone's reserved null class
    with pytest.raises(SystemExit, match="--cfg needs a class-conditional model"):
        open_session(module()).check_conditioning(None, 2.0)


def test_the_x0_threshold_setting_is_checked_once_here():
    session = open_session(module())
    assert session.x0_threshold("none") == {} and session.x0_threshold("default") == {}
    assert session.x0_threshold("dynamic") == {"x0_threshold": "dynamic", "data_range": (-1.0, 1.0)}
    with pytest.raises(ValueError, match=r"--x0-threshold must be default, none or one of \['clip', 'dynamic'\]"):
        session.x0_threshold("clamp")
    with pytest.raises(ValueError, match="use --x0-threshold none"):
        open_session(module(image_data=False)).x0_threshold("clip")


def test_samples_on_disk_follow_the_index(tmp_path):
    session = open_session(module(num_classes=3), raw_weights=True)
    nfe = session.write_samples(tmp_path, 5, seed=1, batch_size=2, sampler="euler", nfe=2)
    saved = np.load(tmp_path / "samples.npz")
    assert nfe == 2 and saved["images"].shape == (5, 4, 4, 1) and list(saved["labels"]) == [0, 1, 2, 0, 1]
    assert sorted(p.name for p in tmp_path.glob("sample_*.png")) == [f"sample_{i:06d}.png" for i in range(5)]
    assert (tmp_path / "grid.png").is_file()


def test_couplings_are_the_shared_noise_and_its_samples():
    fake = module(num_classes=2)
    pairs = open_session(fake).couplings(5, seed=3, batch_size=2, sampler="euler", nfe=2)
    assert np.array_equal(pairs.noise, sample_noise(range(5), (1, 4, 4), 3).numpy())
    direct = torch.cat([b.x0 for b in generate(fake.objective, fake.ema.shadow, (1, 4, 4), 5, seed=3, batch_size=5,
                                               num_classes=2, sampler="euler", nfe=2)])
    assert np.allclose(pairs.x0, direct.numpy()) and list(pairs.labels) == [0, 1, 0, 1, 0]
