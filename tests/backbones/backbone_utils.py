"""Small builders shared by the backbone tests (debug presets only, so everything runs on the CPU)."""
from __future__ import annotations

import torch
from torch import nn

from lit_diffusion.backbones import DiT, UNet


def debug_dit(in_channels: int = 3, size: int | tuple[int, int] = 8, num_classes: int = 10, **kw) -> DiT:
    return DiT.from_preset("debug", in_channels=in_channels, input_size=size, num_classes=num_classes, **kw)


def debug_unet(in_channels: int = 3, num_classes: int = 10, **kw) -> UNet:
    return UNet.from_preset("debug", in_channels=in_channels, num_classes=num_classes, **kw)


@torch.no_grad()
def perturb(model: nn.Module, scale: float = 0.05, seed: int = 0) -> nn.Module:
    """Move every parameter off its (partly zero) initialisation so that outputs and gradients are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def batch(in_channels: int = 3, size: tuple[int, int] = (8, 8), n: int = 3, num_classes: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, in_channels, *size, generator=gen)
    t = torch.rand(n, generator=gen)
    cond = torch.randint(0, num_classes + 1, (n,), generator=gen)  # includes the null class
    return x, t, cond


def assert_every_parameter_learns(model: nn.Module, steps: int = 3) -> None:
    """A few Adam steps on an MSE-to-input loss: every parameter is in the graph from the first backward,
    and every one has a non-zero gradient by the last (zero-initialised gates open after an update)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, t, cond = batch(n=8)
    for step in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x, t, cond), x).backward()
        if step == 0:
            assert all(p.grad is not None for p in model.parameters()), "a parameter is not in the graph"
        optimizer.step()
    silent = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"parameters without gradient: {silent}"
