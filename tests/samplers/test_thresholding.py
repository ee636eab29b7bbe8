"""x0 clipping and dynamic thresholding (Saharia et al. 2022) as a prediction wrapper, images only."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.contract import Prediction
from lit_diffusion.objectives import DDPM
from lit_diffusion.samplers import thresholded
from lit_diffusion.samplers.base import path_values


def _predict(x, t):
    x0 = torch.linspace(-3, 3, x[0].numel()).reshape(x.shape[1:]).expand_as(x).clone()
    return Prediction(x0, torch.zeros_like(x))


@pytest.mark.parametrize("kind", ["clip", "dynamic"])
def test_threshold_bounds_x0_and_keeps_the_pair_consistent(kind):
    path = DDPM().path
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    pred = thresholded(_predict, path, kind)(x, 0.5)
    assert float(pred.x0.abs().max()) <= 1.0 + 1e-12
    alpha, sigma = path_values(path, 0.5, x)
    torch.testing.assert_close(alpha * pred.x0 + sigma * pred.eps, x)
    if kind == "dynamic":  # scaled by the 99.5th percentile, not cut: values keep their order
        assert float(pred.x0.abs().max()) == pytest.approx(1.0) and len(pred.x0[0].unique()) == 64


def test_ddpm_sampling_with_clipping_stays_in_range_and_vectors_are_refused():
    obj = DDPM()
    def net(x, t, cond=None):
        return -5.0 * x  # an eps prediction whose x0 leaves [-1, 1]
    x = obj.sample(net, torch.randn(2, 1, 4, 4), nfe=4, x0_threshold="clip")
    assert float(x.abs().max()) <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="image batches"):
        obj.sample(lambda x, t, cond=None: x, torch.randn(3, 2), nfe=2, x0_threshold="clip")
    with pytest.raises(ValueError, match="unknown x0 threshold"):
        obj.sample(net, torch.randn(2, 1, 4, 4), nfe=2, x0_threshold="percentile")
