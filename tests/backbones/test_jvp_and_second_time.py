"""Forward-mode derivatives through every backbone (JVP == central finite differences in float64, bf16
autocast) and the optional second time input r (zero-initialised: old checkpoints load, outputs unchanged)."""
from __future__ import annotations

import pytest
import torch

from backbone_utils import debug_dit, debug_unet, perturb
from lit_diffusion.backbones import MLP
from lit_diffusion.contract import network_jvp


def _cases(second_time=False):
    return {
        "dit": (lambda: debug_dit(second_time=second_time), (2, 3, 8, 8), True),
        "unet": (lambda: debug_unet(second_time=second_time), (2, 3, 8, 8), True),
        "mlp": (lambda: MLP(dim=2, width=32, depth=2, second_time=second_time), (3, 2), False),
    }


def _inputs(shape, conditional, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    t = torch.rand(shape[0], generator=g, dtype=torch.float64) * 0.8 + 0.1
    cond = torch.randint(0, 10, (shape[0],), generator=g) if conditional else None
    return g, x, t, cond


def _central(net, x, t, cond, tx, tt, r=None, tr=None, h=1e-7):
    def f(s):
        return net(x + s * tx, t + s * tt, cond) if r is None else net(x + s * tx, t + s * tt, cond, r=r + s * tr)
    return (f(h) - f(-h)) / (2 * h)


@pytest.mark.parametrize("name", ["dit", "unet", "mlp"])
def test_jvp_equals_central_differences_float64(name):
    build, shape, conditional = _cases(second_time=True)[name]
    net = perturb(build(), scale=0.05).double()
    g, x, t, cond = _inputs(shape, conditional)
    tx, tt = torch.randn(x.shape, generator=g, dtype=torch.float64), torch.randn(t.shape, generator=g, dtype=torch.float64)
    r, tr = t * 0.5, torch.randn(t.shape, generator=g, dtype=torch.float64)
    for kwargs, ref in [({}, _central(net, x, t, cond, tx, tt)),
                        ({"r": r, "tangent_r": tr}, _central(net, x, t, cond, tx, tt, r, tr))]:
        out, d = network_jvp(net, x, t, tx, tt, cond, **kwargs)
        torch.testing.assert_close(d, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
        torch.testing.assert_close(out, net(x, t, cond, **({"r": r} if kwargs else {})))
        _, d_fd = network_jvp(net, x, t, tx, tt, cond, method="finite_difference", step=1e-7, **kwargs)
        torch.testing.assert_close(d_fd, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())


def test_jvp_primal_keeps_its_graph_and_runs_under_bf16_autocast():
    net = perturb(debug_dit())
    _, x, t, cond = _inputs((2, 3, 8, 8), True)
    x, t = x.float(), t.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, d = network_jvp(net, x, t, torch.randn_like(x), torch.ones_like(t), cond)
    assert torch.isfinite(d).all() and out.shape == x.shape
    out.float().pow(2).mean().backward()
    assert net.final_layer.linear.weight.grad is not None


def test_jvp_failure_names_the_backbone_and_the_alternative():
    class NoForwardAD(torch.nn.Module):
        def forward(self, x, t, cond=None):
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(x, x, x)[0] * t.reshape(-1, 1, 1, 1)

    x = torch.randn(1, 1, 4, 8)
    with pytest.raises(RuntimeError, match="(?s)NoForwardAD cannot provide a forward-mode JVP.*finite_difference"):
        network_jvp(NoForwardAD(), x, torch.ones(1), torch.ones_like(x), torch.ones(1))
    with pytest.raises(ValueError, match="unknown jvp method"):
        network_jvp(NoForwardAD(), x, torch.ones(1), torch.ones_like(x), torch.ones(1), method="reverse")


@pytest.mark.parametrize("name", ["dit", "unet", "mlp"])
def test_second_time_is_zero_initialised_and_old_checkpoints_load(name):
    build_old, shape, conditional = _cases(second_time=False)[name]
    build_new = _cases(second_time=True)[name][0]
    torch.manual_seed(0)
    old = perturb(build_old())
    new = build_new()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith(("r_embedder", "r_mlp")) for k in missing)
    _, x, t, cond = _inputs(shape, conditional)
    x, t = x.float(), t.float()
    ref = old(x, t, cond)
    torch.testing.assert_close(new(x, t, cond), ref, rtol=0, atol=0)
    torch.testing.assert_close(new(x, t, cond, r=t * 0.3), ref, rtol=0, atol=0)
    old.load_state_dict(old.state_dict())  # a model without r is unchanged: strict load of its own keys
    with pytest.raises(ValueError, match="built without a second time input.*second_time=True"):
        old(x, t, cond, r=t)
