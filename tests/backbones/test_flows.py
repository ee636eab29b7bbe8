"""Flows: invertibility to 1e-5, log-determinants equal to the autograd Jacobian's, and clear errors where a
flow cannot take the data (a shape it cannot squeeze, a channel count it cannot split)."""
import pytest
import torch

from lit_diffusion.backbones.flows import (ActNorm, AffineCoupling, IdentityFlow, InvConv1x1, MultiscaleFlow,
                                           VectorFlow, multiscale_flow_from_preset)


def _perturbed(flow, scale=0.2, seed=0):
    """Flows start at the identity (zero-initialised couplings); perturb every parameter so the tests bite."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


def _flows():
    return {
        "identity": (IdentityFlow(), (3, 2)),
        "actnorm": (ActNorm(3), (3, 3, 2, 2)),
        "invconv": (InvConv1x1(4), (3, 4, 2, 2)),
        "coupling-image": (AffineCoupling(3, hidden=8), (3, 3, 2, 2)),
        "coupling-vector": (AffineCoupling(3, hidden=8, image=False, swap=True), (3, 3)),
        "vector": (VectorFlow(2, layers=3, hidden=8), (5, 2)),
        "multiscale-0": (MultiscaleFlow(2, levels=0, steps=2, hidden=8), (2, 2, 2, 2)),
        "multiscale-1": (MultiscaleFlow(1, levels=1, steps=2, hidden=8), (2, 1, 4, 4)),
        "multiscale-2": (MultiscaleFlow(3, levels=2, steps=1, hidden=8), (2, 3, 4, 4)),
    }


@pytest.mark.parametrize("name", list(_flows()))
def test_flow_inverts_and_its_log_det_is_the_jacobians(name):
    torch.manual_seed(0)
    flow, shape = _flows()[name]
    flow = _perturbed(flow.double())
    x = torch.randn(shape, dtype=torch.float64)
    z, log_det = flow(x)
    assert z.shape == x.shape and log_det.shape == (shape[0],)
    assert torch.allclose(flow.inverse(z), x, atol=1e-5, rtol=0)
    for i in range(shape[0]):  # log|det| of the full Jacobian of one sample, by autograd
        jac = torch.autograd.functional.jacobian(lambda v: flow(v.view((1,) + shape[1:]))[0].flatten(), x[i].flatten())
        assert torch.allclose(log_det[i], torch.linalg.slogdet(jac)[1], atol=1e-6), name


def test_float32_multiscale_flow_inverts_to_1e_5_at_mnist_size():
    torch.manual_seed(0)
    flow = _perturbed(multiscale_flow_from_preset("debug", in_channels=1), scale=0.05)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    z, _ = flow(x)
    assert (flow.inverse(z) - x).abs().max() < 1e-5


def test_a_shape_the_flow_cannot_squeeze_is_named():
    flow = MultiscaleFlow(1, levels=2, steps=1, hidden=8)
    with pytest.raises(ValueError, match="not invertible at image size .*divisible by 4"):
        flow(torch.randn(2, 1, 6, 6))
    with pytest.raises(ValueError, match=r"expects images \(B, 1, H, W\)"):
        flow(torch.randn(2, 3, 8, 8))


@pytest.mark.parametrize("build", [lambda: AffineCoupling(1), lambda: VectorFlow(dim=1),
                                   lambda: MultiscaleFlow(in_channels=1, levels=0)],
                         ids=["coupling", "vector", "multiscale-no-squeeze"])
def test_a_channel_count_the_flow_cannot_split_is_named(build):
    with pytest.raises(ValueError, match="cannot split 1 channel"):
        build()


def test_presets_are_named_and_unknown_ones_listed():
    assert isinstance(multiscale_flow_from_preset("small", in_channels=1), MultiscaleFlow)
    with pytest.raises(ValueError, match="unknown flow preset 'huge'; known"):
        multiscale_flow_from_preset("huge")
