"""Training-time distributions over t in [0, 1] (0 = data, 1 = noise), as small pluggable objects."""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.registry import build


def _randn(n, generator, device):
    return torch.randn(n, generator=generator, device=device, dtype=torch.float64)


def _rand(n, generator, device):
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64)


class TimeSampler:
    """`sample(batch_size, path, generator=None, device=None) -> t` of shape (B,), float32."""

    def sample(self, batch_size: int, path, generator=None, device=None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


class UniformTime(TimeSampler):
    """t ~ U[t_min, t_max]; t_min defaults to the path's smallest usable time (e.g. 1e-3 for VP)."""

    def __init__(self, t_min: float | None = None, t_max: float = 1.0):
        if t_min is not None and not 0.0 <= t_min < t_max <= 1.0:
            raise ValueError(f"UniformTime: need 0 <= t_min < t_max <= 1, got t_min={t_min}, t_max={t_max}")
        self.t_min, self.t_max = t_min, float(t_max)

    def sample(self, batch_size, path, generator=None, device=None):
        lo = path.t_min if self.t_min is None else self.t_min
        return (lo + (self.t_max - lo) * _rand(batch_size, generator, device)).float()


class DiscreteUniformTime(TimeSampler):
    """t = n / T with n uniform in {1, ..., T}: the discrete DDPM training distribution (Ho et al. 2020)."""

    def __init__(self, num_steps: int = 1000):
        if num_steps < 1:
            raise ValueError(f"DiscreteUniformTime: num_steps must be >= 1, got {num_steps}")
        self.num_steps = int(num_steps)

    def sample(self, batch_size, path, generator=None, device=None):
        """float32 t = n / T (the objective's dtype); a discrete path reads its float64 table at n itself for
        such a t, without interpolating towards the neighbouring step (DiscreteVPPath._log_alpha_sq)."""
        n = torch.randint(1, self.num_steps + 1, (batch_size,), generator=generator, device=device)
        return n.float() / self.num_steps


class LogitNormalTime(TimeSampler):
    """t = sigmoid(mean + std z), z ~ N(0, 1) (Esser et al. 2024, SD3, sec. 3.1), clipped to the path's range."""

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        if std <= 0:
            raise ValueError(f"LogitNormalTime: std must be positive, got {std}")
        self.mean, self.std = float(mean), float(std)

    def sample(self, batch_size, path, generator=None, device=None):
        t = torch.sigmoid(self.mean + self.std * _randn(batch_size, generator, device))
        return t.clamp(min=path.t_min).float()


class LogNormalSigma(TimeSampler):
    """ln sigma ~ N(P_mean, P_std^2) in EDM noise level sigma_t / alpha_t (Karras et al. 2022, Table 1),
    mapped to t through the path; levels outside the path's range clamp to its ends."""

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2):
        if p_std <= 0:
            raise ValueError(f"LogNormalSigma: p_std must be positive, got {p_std}")
        self.p_mean, self.p_std = float(p_mean), float(p_std)

    def sample(self, batch_size, path, generator=None, device=None):
        sigma = torch.exp(self.p_mean + self.p_std * _randn(batch_size, generator, device))
        return path.t_from_noise_ratio(sigma).clamp(min=path.t_min).float()


class PairSampler:
    """`sample_pairs(batch_size, step, path, generator=None, device=None, progress=None) -> (t_i, t_next)`,
    each (B,) float32 with t_i < t_next: the adjacent times a consistency objective compares; `step` is the
    training step and `progress` the share of the run done (images seen / max_images, None if unknown),
    for curricula that refine the grid as training goes."""

    def sample_pairs(self, batch_size: int, step: int, path, generator=None, device=None, progress=None):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in vars(self).items())})"


class ConsistencyCurriculum(PairSampler):
    """Improved consistency training's discretisation curriculum (Song & Dhariwal 2023, sec. 3.4-3.5).

    N(k) = min(s0 * 2^floor(k / K'), s1) + 1 with K' = floor(K / (log2(s1 / s0) + 1)), K total steps: the
    grid doubles in S = floor(log2(s1 / s0)) + 1 equal stages of the run. The stage follows, in order of
    preference: the run's progress p in [0, 1] (stage floor(p S), so any run length gets the whole
    curriculum; the training loop passes it), a hand-set `total_steps`, or, in a plain loop that knows
    neither, one doubling every `doubling_steps` steps.
    The grid has N points t_i = (i - 1) / (N - 1) (Karras' rho-spaced sigmas on the EDM path); the pair
    index i is drawn with p(i) proportional to erf((ln s_{i+1} - P_mean) / (sqrt2 P_std)) -
    erf((ln s_i - P_mean) / (sqrt2 P_std)), the lognormal over sigma (eq. 9 there).
    """

    def __init__(self, total_steps: int | None = None, s0: int = 10, s1: int = 1280,
                 p_mean: float = -1.1, p_std: float = 2.0, doubling_steps: int = 1000):
        if total_steps is not None and total_steps < 1:
            raise ValueError(f"ConsistencyCurriculum: total_steps must be >= 1 or None, got {total_steps}")
        if not 1 <= s0 <= s1:
            raise ValueError(f"ConsistencyCurriculum: need 1 <= s0 <= s1, got s0={s0}, s1={s1}")
        if p_std <= 0 or doubling_steps < 1:
            raise ValueError(f"ConsistencyCurriculum: need p_std > 0 and doubling_steps >= 1, got {p_std}, {doubling_steps}")
        self.total_steps, self.s0, self.s1 = None if total_steps is None else int(total_steps), int(s0), int(s1)
        self.p_mean, self.p_std, self.doubling_steps = float(p_mean), float(p_std), int(doubling_steps)

    def num_scales(self, step: int, progress: float | None = None) -> int:
        if progress is not None:
            stages = math.floor(math.log2(self.s1 / self.s0)) + 1
            doublings = min(math.floor(max(0.0, float(progress)) * stages), stages - 1)
        elif self.total_steps is not None:
            doublings = step // max(1, math.floor(self.total_steps / (math.log2(self.s1 / self.s0) + 1)))
        else:
            doublings = step // self.doubling_steps
        return min(self.s0 * 2 ** min(doublings, 62), self.s1) + 1

    def sample_pairs(self, batch_size: int, step: int, path, generator=None, device=None, progress=None):
        """(t_i, t_{i+1}) of shape (B,) each, t_i < t_{i+1}, on the grid of N(step or progress) points."""
        n = self.num_scales(step, progress)
        grid = torch.linspace(0.0, 1.0, n, dtype=torch.float64, device=device)
        log_sigma = torch.log(path.noise_ratio(grid))
        cdf = torch.erf((log_sigma - self.p_mean) / (math.sqrt(2.0) * self.p_std))
        probs = (cdf[1:] - cdf[:-1]).clamp_min(0)
        i = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        return grid[i].float(), grid[i + 1].float()


class UniformGridPairs(PairSampler):
    """Adjacent pairs (t_n, t_{n+1}) of a fixed N-point uniform grid, n uniform: consistency
    distillation's discretisation (Song et al. 2023, Alg. 2; N = 18 for CIFAR-10)."""

    def __init__(self, num_scales: int = 18):
        if num_scales < 2:
            raise ValueError(f"UniformGridPairs: num_scales must be >= 2, got {num_scales}")
        self.num_scales = int(num_scales)

    def sample_pairs(self, batch_size: int, step: int, path, generator=None, device=None, progress=None):
        i = torch.randint(0, self.num_scales - 1, (batch_size,), generator=generator, device=device)
        return i.float() / (self.num_scales - 1), (i + 1).float() / (self.num_scales - 1)


TIME_SAMPLERS = {
    "uniform": UniformTime,
    "discrete": DiscreteUniformTime,
    "logit_normal": LogitNormalTime,
    "lognormal_sigma": LogNormalSigma,
}


def make_time_sampler(name: str, **kwargs) -> TimeSampler:
    return build("time sampler", TIME_SAMPLERS, name, **kwargs)
