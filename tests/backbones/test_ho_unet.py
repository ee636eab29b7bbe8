"""Ho et al. 2020's U-Net function: right/bottom stride-2 padding, sin-first time features with
exp(-ln 1e4 i / (half - 1)), and the time_shift that feeds an imported discrete model its 0-based index."""
import math

import pytest
import torch

from lit_diffusion.backbones import DiT, UNet
from lit_diffusion.backbones.embeddings import TimestepEmbedder, ho_time_embedding, sinusoidal_time_embedding
from lit_diffusion.backbones.unet import Downsample


def test_ho_time_features_closed_form():
    # dim 6: half 3, frequencies 1e4^(-i/2) = 1, 1e-2, 1e-4; features [sin(s w_i)..., cos(s w_i)...]
    steps = torch.tensor([0.0, 7.0, 999.0], dtype=torch.float64)
    w = [1.0, 1e-2, 1e-4]
    expected = torch.tensor([[math.sin(s * f) for f in w] + [math.cos(s * f) for f in w] for s in steps.tolist()],
                            dtype=torch.float64)
    assert torch.allclose(ho_time_embedding(steps, 6), expected, rtol=0, atol=1e-12)
    assert ho_time_embedding(steps, 7)[:, 6].abs().max() == 0  # odd dim: one zero column


def test_ho_time_features_equal_diffusers_ddpm_layout():
    embeddings = pytest.importorskip("diffusers.models.embeddings")
    steps = torch.arange(0, 1000, 37, dtype=torch.float32)
    ref = embeddings.get_timestep_embedding(steps, 128, flip_sin_to_cos=False, downscale_freq_shift=1)
    assert torch.allclose(ho_time_embedding(steps, 128), ref, rtol=0, atol=1e-5)


def test_dit_shift1_features_equal_diffusers_dit_layout():
    embeddings = pytest.importorskip("diffusers.models.embeddings")
    steps = torch.arange(0, 1000, 37, dtype=torch.float32)
    ref = embeddings.get_timestep_embedding(steps, 256, flip_sin_to_cos=True, downscale_freq_shift=1)
    emb = TimestepEmbedder(8, frequency_dim=256, time_scale=1.0, kind="dit_shift1")
    assert torch.allclose(emb.mlp(ref), emb(steps), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["dit", "ho", "dit_shift1"])
def test_time_shift_feeds_the_zero_based_index(kind):
    # the project puts alpha_bar_n at t = n / 1000; a published model wants k = n - 1 there
    n = torch.tensor([1, 2, 500, 1000], dtype=torch.float64)
    shifted = TimestepEmbedder(8, frequency_dim=16, time_shift=-1.0, kind=kind).double()
    plain = TimestepEmbedder(8, frequency_dim=16, kind=kind).double()
    plain.load_state_dict(shifted.state_dict())
    assert torch.allclose(shifted(n / 1000), plain((n - 1) / 1000), rtol=0, atol=1e-10)
    if kind == "dit":
        features = sinusoidal_time_embedding(n - 1, 16, scale=1.0)
    else:  # "dit_shift1" is "ho" with its sin and cos halves swapped
        features = ho_time_embedding(n - 1, 16)
        features = features if kind == "ho" else torch.cat([features[:, 8:], features[:, :8]], dim=1)
    assert torch.allclose(shifted(n / 1000), shifted.mlp(features), rtol=0, atol=1e-10)


def test_default_time_features_are_unchanged():
    t = torch.rand(5)
    emb = TimestepEmbedder(8, frequency_dim=16)
    ref = emb.mlp(sinusoidal_time_embedding(t, 16, scale=1000.0))
    assert torch.equal(emb(t), ref)


def test_right_bottom_padding_samples_odd_pixels_and_same_samples_even_ones():
    x = torch.arange(2 * 8 * 8, dtype=torch.float64).reshape(1, 2, 8, 8)
    for padding, offset in (("right_bottom", 1), ("same", 0)):
        down = Downsample(2, padding).double()
        with torch.no_grad():  # centre tap only: output (i, j) reads the input pixel at the kernel centre
            down.conv.weight.zero_()
            down.conv.bias.zero_()
            down.conv.weight[0, 0, 1, 1] = down.conv.weight[1, 1, 1, 1] = 1.0
        assert torch.equal(down(x), x[:, :, offset::2, offset::2]), padding
    down = Downsample(2, "right_bottom").double()
    with torch.no_grad():  # the bottom-right tap of the last output reads the zero padding
        down.conv.weight.zero_()
        down.conv.bias.zero_()
        down.conv.weight[:, :, 2, 2] = 1.0
        y = down(x)
    assert float(y[0, 0, 3, 3]) == 0.0 and float(y[0, 0, 2, 2]) == float(x[0, :, 6, 6].sum())


def test_ddpm_cifar10_preset_is_ho_et_al():
    with torch.device("meta"):
        model = UNet.from_preset("ddpm-cifar10")
    assert sum(p.numel() for p in model.parameters()) == 35_746_307  # Ho et al.'s CIFAR-10 model, exactly
    assert model.t_embedder.kind == "ho"
    assert all(m.right_bottom for m in model.modules() if isinstance(m, Downsample))
    with torch.device("meta"):
        assert not any(m.right_bottom for m in UNet.from_preset("small").modules() if isinstance(m, Downsample))


def test_out_channels_for_a_learned_variance():
    x = torch.randn(2, 3, 8, 8)
    unet = UNet.from_preset("debug", in_channels=3, out_channels=6, time_shift=-1.0)
    dit = DiT.from_preset("debug", in_channels=3, input_size=8, out_channels=6, time_shift=-1.0)
    assert unet(x, torch.rand(2)).shape == dit(x, torch.rand(2)).shape == (2, 6, 8, 8)


@pytest.mark.parametrize("kwargs, message", [
    ({"downsample_padding": "valid"}, "downsample_padding must be one of"),
    ({"time_embedding": "sin"}, "unknown time embedding 'sin'"),
    ({"out_channels": -2}, "out_channels must be positive"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet.from_preset("debug", **kwargs)
