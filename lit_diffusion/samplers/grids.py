"""Time grids for sampling: decreasing from t_max (noise) to exactly 0 (data).

Every grid has `steps + 1` points; samplers evaluate the network at the first `steps` of them, all at
t >= the path's t_min (where sigma_t > 0), and take their last step to t = 0.
"""
from __future__ import annotations

import math

import torch

# Beyond |log-SNR| = 20 (a noise-to-signal ratio outside [e^-10, e^10]) a step changes nothing at
# float32 precision, so log-SNR and rho grids clamp their ends there.
LOGSNR_LIMIT = 20.0
# The rho grid starts its spacing at most at EDM's sigma_max = 80 (Karras et al. 2022, sec. 5, for data in
# [-1, 1]); on paths that reach higher noise ratios the first step jumps from t_max straight there.
EDM_SIGMA_MAX = 80.0

GRIDS = ("uniform", "edm", "logsnr")


def time_grid(kind: str, steps: int, path, t_max: float = 1.0, t_min: float | None = None,
              rho: float = 7.0) -> torch.Tensor:
    """A (steps + 1,) float64 grid of kind 'uniform' (in t), 'edm' (Karras et al. 2022, eq. 5: rho-spaced
    noise levels sigma/alpha) or 'logsnr' (uniform in log(alpha^2 / sigma^2), Lu et al. 2022)."""
    if kind not in GRIDS:
        raise ValueError(f"unknown time grid {kind!r}; known: {list(GRIDS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"time grid: steps must be an integer >= 1, got {steps!r}")
    t_min = path.t_min if t_min is None else float(t_min)
    if not 0.0 <= t_min < t_max <= 1.0:
        raise ValueError(f"time grid: need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
    # points before the final 0; if t_min is 0 itself, the grid reaches it within `steps` intervals
    n = steps + 1 if t_min == 0.0 else steps
    if kind == "uniform" or n == 1:
        points = torch.linspace(t_max, t_min, n, dtype=torch.float64)
    elif kind == "edm":
        points = _rho_points(path, n, t_max, t_min, rho)
    else:  # logsnr: lambda = -2 log(sigma / alpha), uniform between the (clamped) ends
        log_ratio = _clamped_log_ratio(path, t_max, t_min)
        ratios = torch.exp(log_ratio[0] + torch.linspace(0.0, 1.0, n, dtype=torch.float64) * (log_ratio[1] - log_ratio[0]))
        points = path.t_from_noise_ratio(ratios)
        points[0], points[-1] = t_max, t_min
    if t_min > 0.0:
        points = torch.cat([points, torch.zeros(1, dtype=torch.float64)])
    if bool((points[1:] >= points[:-1]).any()):
        raise ValueError(f"time grid {kind!r} with {steps} steps is not strictly decreasing on this path: {points.tolist()}")
    return points


def _clamped_log_ratio(path, t_max: float, t_min: float) -> torch.Tensor:
    ends = torch.tensor([t_max, t_min], dtype=torch.float64)
    return torch.log(path.noise_ratio(ends)).clamp(-LOGSNR_LIMIT / 2, LOGSNR_LIMIT / 2)


def _rho_points(path, n: int, t_max: float, t_min: float, rho: float) -> torch.Tensor:
    """n points from t_max to t_min whose noise ratios are rho-spaced (Karras et al. 2022, eq. 5), the
    spacing starting at most at EDM_SIGMA_MAX; above it the first step jumps from t_max directly."""
    log_ratio = _clamped_log_ratio(path, t_max, t_min)
    jump = float(log_ratio[0]) > math.log(EDM_SIGMA_MAX)
    hi, lo = torch.exp(log_ratio.clamp(max=math.log(EDM_SIGMA_MAX)) / rho)
    m = n - 1 if jump else n
    ratios = (hi + torch.linspace(0.0, 1.0, m, dtype=torch.float64) * (lo - hi)) ** rho
    points = path.t_from_noise_ratio(ratios)
    points[-1] = t_min
    if jump:
        return torch.cat([torch.tensor([t_max], dtype=torch.float64), points])
    points[0] = t_max
    return points
