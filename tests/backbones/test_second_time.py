"""The one second-time helper (backbones/second_time.py) that DiT, U-Net and MLP share: r embedded like t,
zero-initialised, rejected by a model built without it, broadcast from 0-dim and checked for its shape."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from backbone_utils import debug_dit, debug_unet
from lit_diffusion.backbones import MLP
from lit_diffusion.backbones.second_time import add_second_time, init_second_time, second_time_embedder


def _mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 8))


def test_embedder_is_built_by_ts_factory_or_absent():
    assert second_time_embedder(False, _mlp) is None
    built = second_time_embedder(True, _mlp)
    assert isinstance(built, nn.Sequential) and built[0].weight.shape == (8, 4)


def test_init_zeroes_the_last_layer_and_draws_the_first_only_when_asked():
    torch.manual_seed(0)
    embedder = _mlp()
    first = embedder[0].weight.clone()
    init_second_time(embedder)
    assert torch.equal(embedder[0].weight, first)  # left as built (the U-Net's and MLP's xavier init)
    assert not embedder[2].weight.any() and not embedder[2].bias.any()
    init_second_time(embedder, first_layer_std=0.02)  # DiT: like its t embedder's first layer
    assert not torch.equal(embedder[0].weight, first) and embedder[0].weight.std() < 0.05
    init_second_time(None)  # a model without r: nothing to do


def test_add_second_time_broadcasts_checks_and_refuses():
    emb, embedder = torch.zeros(3, 8), _mlp()
    features = lambda r: r[:, None].expand(-1, 4)  # noqa: E731
    assert add_second_time(emb, None, None, "M") is emb
    full = add_second_time(emb, torch.full((3,), 0.5), embedder, "M", features)
    torch.testing.assert_close(add_second_time(emb, torch.tensor(0.5), embedder, "M", features), full, rtol=0, atol=0)
    with pytest.raises(ValueError, match="t must have shape"):
        add_second_time(emb, torch.zeros(2), embedder, "M", features)
    with pytest.raises(ValueError, match="M was built without a second time input"):
        add_second_time(emb, torch.zeros(3), None, "M")


@pytest.mark.parametrize("build", [lambda: debug_dit(second_time=True), lambda: debug_unet(second_time=True),
                                   lambda: MLP(dim=2, width=32, depth=2, second_time=True)])
def test_every_backbone_rejects_an_r_of_the_wrong_batch(build):
    net = build()
    x = torch.randn(2, 2) if isinstance(net, MLP) else torch.randn(2, 3, 8, 8)
    with pytest.raises(ValueError, match="t must have shape"):
        net(x, torch.rand(2), None, r=torch.rand(3))
