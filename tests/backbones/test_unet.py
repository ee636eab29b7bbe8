"""U-Net: the DDPM CIFAR-10 size, zero-initialised residual branches, channels_last, conditioning modes, errors."""
import math

import pytest
import torch
from backbone_utils import assert_every_parameter_learns, batch, debug_unet, perturb

from lit_diffusion.backbones import UNET_PRESETS, UNet
from lit_diffusion.backbones import attention as attention_module


def test_ddpm_cifar10_has_35_7m_parameters():
    with torch.device("meta"):  # Ho et al. 2020, App. B: 35.7M parameters
        model = UNet.from_preset("ddpm-cifar10", in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(35.7e6, rel=0.01)


def test_presets_table():
    assert set(UNET_PRESETS) == {"ddpm-cifar10", "small", "debug"}
    ddpm = UNET_PRESETS["ddpm-cifar10"]
    assert (ddpm["channels"], ddpm["channel_mult"], ddpm["num_res_blocks"]) == (128, (1, 2, 2, 2), 2)
    assert (ddpm["attention_levels"], ddpm["dropout"], ddpm["scale_shift"]) == ((1,), 0.1, False)
    with torch.device("meta"):
        assert sum(p.numel() for p in UNet.from_preset("debug").parameters()) < 300_000


@pytest.mark.parametrize("scale_shift", [True, False])
def test_fresh_model_outputs_exactly_zero(scale_shift):
    model = debug_unet(scale_shift=scale_shift)
    x, t, cond = batch()
    assert torch.equal(model(x, t, cond), torch.zeros_like(x))


@pytest.mark.parametrize("scale_shift", [True, False])
def test_every_parameter_gets_gradient(scale_shift):
    torch.manual_seed(0)
    assert_every_parameter_learns(debug_unet(scale_shift=scale_shift))


def test_sdpa_matches_plain_math_in_float64(monkeypatch):
    def plain(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1) @ v

    model = perturb(debug_unet(num_heads=2)).double().eval()
    x, t, cond = batch()
    fused = model(x.double(), t, cond)
    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", plain)
    torch.testing.assert_close(fused, model(x.double(), t, cond), rtol=1e-10, atol=1e-12)


def test_channels_last_matches_contiguous():
    model = perturb(debug_unet()).eval()
    x, t, cond = batch()
    expected = model(x, t, cond)
    model = model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    out = model(x_cl, t, cond)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    out.square().mean().backward()
    assert model.input_conv.weight.grad is not None


def test_attention_at_chosen_levels():
    model = UNet(channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(0, 2), norm_groups=8)
    with_attention = [m.attention is not None for m in model.down if isinstance(m, UNet.block_class)]
    assert with_attention == [True, False, True]
    assert model.mid[0].attention is not None and model.mid[1].attention is None


def test_resolution_must_be_divisible_by_depth():
    with torch.device("meta"):
        model = UNet.from_preset("ddpm-cifar10", in_channels=1)
        with pytest.raises(ValueError, match=r"multiples of 8; got 28x28"):
            model(torch.randn(1, 1, 28, 28), torch.rand(1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attention_levels": (4,)}, r"attention_levels \[4\]"),
        ({"channels": 24, "norm_groups": 32}, "norm_groups=32"),
        ({"channels": 32, "num_heads": 3}, "num_heads=3"),
    ],
)
def test_bad_configuration_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet(**kwargs)
