"""EMA against closed forms: the classic constant decay and EDM2's power-function profile."""
import math

import pytest
import torch
from torch import nn

from lit_diffusion.training.ema import EMA, gamma_from_sigma_rel


def run_ema(ema, values):
    model = nn.Linear(1, 1, bias=False)
    for v in values:
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
    return float(ema.shadow.weight)


def test_classic_decay_matches_its_closed_form():
    """p_k = k from p_0 = 0: ema_n = sum_k (1 - b) b^(n-k) k = n - b (1 - b^n) / (1 - b)."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    beta, n = 0.9, 50
    ema = EMA(model, decay=beta)
    got = run_ema(ema, range(1, n + 1))
    assert got == pytest.approx(n - beta * (1 - beta**n) / (1 - beta), rel=1e-6)


def test_power_function_ema_matches_its_closed_form():
    """beta_t = (1 - 1/t)^(g+1) telescopes: ema_n = sum_k (k^(g+1) - (k-1)^(g+1)) / n^(g+1) p_k."""
    model = nn.Linear(1, 1, bias=False)
    ema = EMA(model, sigma_rel=0.1)
    g = ema.gamma
    values = [math.sin(0.3 * k) + 0.01 * k for k in range(1, 201)]
    expected = sum((k ** (g + 1) - (k - 1) ** (g + 1)) / 200 ** (g + 1) * v for k, v in enumerate(values, 1))
    assert run_ema(ema, values) == pytest.approx(expected, rel=1e-5)


def test_sigma_rel_inversion_and_bad_values():
    for sigma_rel in (0.05, 0.1, 0.2):
        g = gamma_from_sigma_rel(sigma_rel)
        assert math.sqrt(g + 1) / ((g + 2) * math.sqrt(g + 3)) == pytest.approx(sigma_rel, rel=1e-9)
    with pytest.raises(ValueError, match="sigma_rel must lie in"):
        gamma_from_sigma_rel(0.5)
    with pytest.raises(ValueError, match="decay must lie in"):
        EMA(nn.Linear(1, 1), decay=1.0)
