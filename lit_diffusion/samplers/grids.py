"""Time grids for sampling: decreasing from t_max (noise) to exactly 0 (data).

Every grid has `steps + 1` points; samplers evaluate the network at the first `steps` of them, all at
t >= the path's t_min (where sigma_t > 0), and take their last step to t = 0.

A discrete-time path also takes the integer spacings of samplers/integer_steps.py ('linspace', 'leading',
'trailing', 'ddim'), and samples on them by default (DEFAULT_SPACING); continuous grids stay available by name.
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.samplers.integer_steps import SPACINGS, integer_step_grid, is_discrete

# The spaced grids ('edm', 'logsnr') place their points between the noise ratios sigma/alpha = 80 and 0.002,
# EDM's range for data in [-1, 1] (Karras et al. 2022, sec. 5 and Table 1). A path whose t_max lies above 80
# starts there instead (noise beyond ratio 80 is, to the network, pure noise); one whose t_min lies below 0.002
# ends with one extra step from 0.002 to t_min, as EDM's final step to sigma = 0. Spacing steps down to
# ratio ~0 instead wastes them, and a step across many orders of magnitude of noise is where second-order
# corrections (Heun's trapezoid) go wrong.
EDM_SIGMA_MIN = 0.002
EDM_SIGMA_MAX = 80.0

CONTINUOUS_GRIDS = ("uniform", "edm", "logsnr")
GRIDS = CONTINUOUS_GRIDS + SPACINGS  # every name a suite or the CLI may give (spacings: discrete-time models only)
DEFAULT_SPACING = "linspace"  # a discrete-time model's default: the rounded form of the old uniform grid


def is_spacing(kind: str) -> bool:
    """Whether `kind` names an integer spacing ('ddim50' included) rather than a continuous grid."""
    return kind in SPACINGS or (kind.startswith("ddim") and kind[4:].isdigit())


def default_grid(path, continuous_default: str) -> str:
    """The grid a sampler uses when none is named: integer steps on a discrete-time path, else its own default."""
    return DEFAULT_SPACING if is_discrete(path) else continuous_default


def time_grid(kind: str, steps: int, path, t_max: float = 1.0, t_min: float | None = None,
              rho: float = 7.0) -> torch.Tensor:
    """A (steps + 1,) float64 grid of kind 'uniform' (in t), 'edm' (Karras et al. 2022, eq. 5: rho-spaced
    noise levels sigma/alpha) or 'logsnr' (uniform in log(alpha^2 / sigma^2), Lu et al. 2022)."""
    if is_spacing(kind):
        if not is_discrete(path):
            raise ValueError(f"timestep spacing {kind!r} needs a discrete-time model (integer steps); this path is "
                             f"continuous: give a grid among {list(CONTINUOUS_GRIDS)}")
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"time grid: steps must be an integer >= 1, got {steps!r}")
        return integer_step_grid(kind, steps, path, t_max=t_max)
    if kind not in CONTINUOUS_GRIDS:
        raise ValueError(f"unknown time grid {kind!r}; known: {list(CONTINUOUS_GRIDS)}, and on a discrete-time model "
                         f"the timestep spacings {list(SPACINGS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"time grid: steps must be an integer >= 1, got {steps!r}")
    t_min = path.t_min if t_min is None else float(t_min)
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"time grid: need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    # points before the final 0; if t_min is 0 itself, the grid reaches it within `steps` intervals
    n = steps + 1 if t_min == 0.0 else steps
    if kind == "uniform" or n == 1:
        points = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    else:
        points = _spaced_points(path, n, t_max, t_min, _rho_ratios if kind == "edm" else _logsnr_ratios, rho)
    if t_min > 0.0:
        points = torch.cat([points, torch.zeros(1, dtype=torch.float64)])
    if bool((points[1:] >= points[:-1]).any()):
        raise ValueError(f"time grid {kind!r} with {steps} steps is not strictly decreasing on this path: {points.tolist()}")
    return points


def _rho_ratios(hi: float, lo: float, m: int, rho: float) -> torch.Tensor:
    """m noise ratios from hi to lo, uniform in ratio^(1/rho) (Karras et al. 2022, eq. 5)."""
    u = torch.linspace(0.0, 1.0, m, dtype=torch.float64)
    return (hi ** (1 / rho) + u * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho


def _logsnr_ratios(hi: float, lo: float, m: int, rho: float) -> torch.Tensor:
    """m noise ratios from hi to lo, uniform in log-SNR = -2 log(ratio) (Lu et al. 2022)."""
    u = torch.linspace(0.0, 1.0, m, dtype=torch.float64)
    return torch.exp(math.log(hi) + u * (math.log(lo) - math.log(hi)))


def _spaced_points(path, n: int, t_max: float, t_min: float, spacing, rho: float) -> torch.Tensor:
    """n points from t_max to t_min, spaced by `spacing` inside [EDM_SIGMA_MIN, EDM_SIGMA_MAX]."""
    r_max, r_min = (float(r) for r in path.noise_ratio(torch.tensor([t_max, t_min], dtype=torch.float64)))
    tail = r_min < EDM_SIGMA_MIN * (1 - 1e-9)
    points = path.t_from_noise_ratio(spacing(min(r_max, EDM_SIGMA_MAX), max(r_min, EDM_SIGMA_MIN), n - tail, rho))
    points[0] = t_max
    if not tail:
        points[-1] = t_min
        return points
    return torch.cat([points, torch.tensor([t_min], dtype=torch.float64)])
