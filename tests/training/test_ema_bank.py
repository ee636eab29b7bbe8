"""The one EMA bank (training/ema_bank.py) behind the live EMA and the post-hoc snapshots: profiles, the
averaging step, and that both users get exactly what a bank of their profiles computes."""
from __future__ import annotations

import types

import pytest
import torch
from torch import nn

from lit_diffusion.training.ema import EMA, gamma_from_sigma_rel
from lit_diffusion.training.ema_bank import DecayProfile, EMABank, lerp_average
from lit_diffusion.training.posthoc_ema import PostHocEMASnapshots


def test_profiles_constant_and_power():
    assert DecayProfile(decay=0.9).beta(1) == 0.9 == DecayProfile(decay=0.9).beta(50)
    gamma = gamma_from_sigma_rel(0.05)
    power = DecayProfile(gamma)
    assert power.beta(1) == 0.0  # the first update copies the model
    assert power.beta(10) == (1.0 - 1.0 / 10) ** (gamma + 1.0)


def test_lerp_average_casts_values_to_the_averages_dtype():
    average = [torch.zeros(3)]
    lerp_average(average, [torch.ones(3, dtype=torch.bfloat16)], beta=0.75)
    assert average[0].dtype == torch.float32 and torch.equal(average[0], torch.full((3,), 0.25))


def test_bank_updates_each_profile_like_a_bank_of_one():
    values = [torch.randn(4, 5), torch.randn(5)]
    profiles = [DecayProfile(gamma_from_sigma_rel(s)) for s in (0.05, 0.1)] + [DecayProfile(decay=0.5)]
    together = [[torch.zeros_like(v) for v in values] for _ in profiles]
    alone = [[torch.zeros_like(v) for v in values] for _ in profiles]
    for t in (1, 2, 3):
        step = [v + t for v in values]
        EMABank(profiles).update(together, step, t)
        for profile, averages in zip(profiles, alone):
            EMABank([profile]).update([averages], step, t)
    for a, b in zip(together, alone):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="2 lists of averages for 3 profiles"):
        EMABank(profiles).update(together[:2], values, 4)
    with pytest.raises(ValueError, match="count from 1"):
        EMABank(profiles).update(together, values, 0)
    with pytest.raises(ValueError, match="at least one"):
        EMABank([])


def test_live_and_posthoc_ema_agree_on_the_same_profile():
    """The live power EMA and the post-hoc profile of the same sigma_rel are one computation: equal bit for bit."""
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    live = EMA(model, sigma_rel=0.1)
    posthoc = PostHocEMASnapshots(sigma_rels=[0.1], every_n_steps=1)
    posthoc.shadows = [{n: p.detach().clone() for n, p in model.named_parameters()}]
    holder = types.SimpleNamespace(backbone=model)
    for _ in range(7):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        live.update(model)
        posthoc._update(holder)
    for name, p in live.shadow.named_parameters():
        assert torch.equal(p, posthoc.shadows[0][name])
