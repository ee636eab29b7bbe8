"""Gaussian probability paths x_t = alpha_t * x_0 + sigma_t * eps, with t in [0, 1] (0 = data, 1 = noise).

Every path gives alpha_t, sigma_t and their time derivatives, evaluated in the dtype of t (float32 or
float64), plus the inverse map from the noise-to-signal ratio sigma_t / alpha_t back to t, which lets
two paths be translated into each other (a teacher on one path, a student on another).
"""
from __future__ import annotations

import math

import torch

from lit_diffusion.objectives.registry import build


class GaussianPath:
    """Base class. Subclasses implement `alpha`, `sigma`, `d_alpha`, `d_sigma` on a tensor of times."""

    #: smallest time a sampler or ODE solver should evaluate the network at (sigma > 0 there)
    t_min: float = 0.0
    #: T of a discrete-time path (its steps sit at t = n / T); None for continuous time. Samplers evaluate a
    #: discrete-time model on these integer steps by default (samplers/integer_steps.py)
    num_steps: int | None = None

    def alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_snr(self, t: torch.Tensor) -> torch.Tensor:
        """lambda_t = log(alpha_t^2 / sigma_t^2), decreasing in t."""
        return 2.0 * (torch.log(self.alpha(t)) - torch.log(self.sigma(t)))

    def noise_ratio(self, t: torch.Tensor) -> torch.Tensor:
        """sigma_t / alpha_t: the EDM noise level of x_t / alpha_t, increasing in t."""
        return self.sigma(t) / self.alpha(t)

    def t_from_noise_ratio(self, ratio: torch.Tensor, iterations: int = 60) -> torch.Tensor:
        """Inverse of `noise_ratio` by bisection on [0, 1] (monotone for every path here).

        Ratios outside the path's range clamp to t = 0 or t = 1.
        """
        lo = torch.zeros_like(ratio, dtype=torch.float64)
        hi = torch.ones_like(ratio, dtype=torch.float64)
        target = ratio.to(torch.float64)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            above = self.noise_ratio(mid) > target
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return (0.5 * (lo + hi)).to(ratio.dtype)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class LinearPath(GaussianPath):
    """Rectified flow (Liu et al. 2022): alpha_t = 1 - t, sigma_t = t; straight lines from data to noise."""

    def alpha(self, t):
        return 1.0 - t

    def sigma(self, t):
        return t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def d_sigma(self, t):
        return torch.ones_like(t)


class OTFlowPath(GaussianPath):
    """Conditional OT path of flow matching (Lipman et al. 2023, eq. 20), in our time direction.

    With their time s = 1 - t: x = (1 - (1 - sigma_min) s) eps + s x_0, i.e.
    alpha_t = 1 - t, sigma_t = sigma_min + (1 - sigma_min) t.
    """

    def __init__(self, sigma_min: float = 1e-4):
        if not 0.0 < sigma_min < 1.0:
            raise ValueError(f"OTFlowPath: sigma_min must lie in (0, 1), got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def alpha(self, t):
        return 1.0 - t

    def sigma(self, t):
        return self.sigma_min + (1.0 - self.sigma_min) * t

    def d_alpha(self, t):
        return -torch.ones_like(t)

    def d_sigma(self, t):
        return torch.full_like(t, 1.0 - self.sigma_min)


class VPLinearPath(GaussianPath):
    """Continuous VP SDE with a linear beta schedule (Song et al. 2021, eq. 33):

    beta(t) = beta_min + t (beta_max - beta_min), log alpha_t = -1/2 int_0^t beta, sigma_t^2 = 1 - alpha_t^2.
    beta_min = 0.1, beta_max = 20 is the continuum limit of DDPM's 1e-4 .. 0.02 over 1000 steps.
    """

    t_min = 1e-3  # Song et al. 2021 sample and evaluate likelihoods from t = 1e-3 (sigma ~ 0.01)

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        if not 0.0 <= beta_min < beta_max:
            raise ValueError(f"VPLinearPath: need 0 <= beta_min < beta_max, got {beta_min}, {beta_max}")
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def _log_alpha(self, t):
        return -0.5 * (self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2)

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def alpha(self, t):
        return torch.exp(self._log_alpha(t))

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(2.0 * self._log_alpha(t)))

    def d_alpha(self, t):
        return -0.5 * self._beta(t) * self.alpha(t)

    def d_sigma(self, t):
        # d/dt sqrt(1 - alpha^2) = -alpha alpha' / sigma = beta alpha^2 / (2 sigma)
        return 0.5 * self._beta(t) * self.alpha(t) ** 2 / self.sigma(t)


class VPCosinePath(GaussianPath):
    """Continuous VP path with the cosine schedule (Nichol & Dhariwal 2021), written in log-SNR and
    truncated to [logsnr_min, logsnr_max] so that alpha_1 > 0 and sigma_0 > 0 (Hoogeboom et al. 2023,
    "simple diffusion", sec. 3): lambda(t) = -2 log tan(a + t (b - a)), a = atan(exp(-lambda_max / 2)),
    b = atan(exp(-lambda_min / 2)); alpha_t^2 = sigmoid(lambda), sigma_t^2 = sigmoid(-lambda).
    """

    def __init__(self, logsnr_min: float = -15.0, logsnr_max: float = 15.0):
        if not logsnr_min < logsnr_max:
            raise ValueError(f"VPCosinePath: need logsnr_min < logsnr_max, got {logsnr_min}, {logsnr_max}")
        self.logsnr_min, self.logsnr_max = float(logsnr_min), float(logsnr_max)
        self._a = math.atan(math.exp(-0.5 * logsnr_max))
        self._b = math.atan(math.exp(-0.5 * logsnr_min))

    def _angle(self, t):
        return self._a + t * (self._b - self._a)

    def log_snr(self, t):
        return -2.0 * torch.log(torch.tan(self._angle(t)))

    # tan(angle) = sigma / alpha with alpha^2 + sigma^2 = 1, so alpha = cos and sigma = sin exactly
    def alpha(self, t):
        return torch.cos(self._angle(t))

    def sigma(self, t):
        return torch.sin(self._angle(t))

    def d_alpha(self, t):
        return -torch.sin(self._angle(t)) * (self._b - self._a)

    def d_sigma(self, t):
        return torch.cos(self._angle(t)) * (self._b - self._a)


class DiscreteVPPath(GaussianPath):
    """Discrete-time DDPM (Ho et al. 2020) with T steps: alpha_bar_n = prod_{i<=n} (1 - beta_i).

    Step n sits at t = n / T (n = 0 is clean data). Between grid points log alpha_t^2 is interpolated
    linearly in t and sigma_t = sqrt(1 - alpha_t^2), so the path is continuous, variance preserving,
    and exact at every step: the float64 table is read at n itself whenever t is n / T up to t's rounding. schedule "linear": beta from 1e-4 to 0.02 at T = 1000 (Ho et al.; scaled
    by 1000 / T otherwise); "cosine": Nichol & Dhariwal 2021, eq. 17, offset s = 0.008, betas <= 0.999.

    Time-index convention: the network is called with t = n / T at alpha_bar_n (1-based n). Ho et al.'s code,
    diffusers and DiT call theirs with the 0-based index k = n - 1 (alphas_cumprod[k]); a model imported from
    them is built with the backbone option time_shift=-1 (and time_scale=1000), so that at t = n / 1000 it
    embeds 1000 t - 1 = k, exactly the integer its authors fed it. diffusers timestep k <-> t = (k + 1) / T.
    """

    t_min = 1e-3

    def __init__(self, num_steps: int = 1000, schedule: str = "linear"):
        if num_steps < 1:
            raise ValueError(f"DiscreteVPPath: num_steps must be >= 1, got {num_steps}")
        if schedule not in ("linear", "cosine"):
            raise ValueError(f"DiscreteVPPath: unknown schedule {schedule!r}; choose 'linear' or 'cosine'")
        self.num_steps, self.schedule = int(num_steps), schedule
        self.t_min = 1.0 / num_steps  # the first noisy step
        if schedule == "linear":
            scale = 1000.0 / num_steps
            betas = torch.linspace(1e-4 * scale, 0.02 * scale, num_steps, dtype=torch.float64)
        else:
            n = torch.arange(num_steps + 1, dtype=torch.float64)
            f = torch.cos((n / num_steps + 0.008) / 1.008 * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        if not bool((betas < 1).all()):
            raise ValueError(f"DiscreteVPPath: {num_steps} steps is too few for the {schedule} schedule (beta >= 1)")
        # (T+1,) log alpha_bar_n, n = 0..T
        self._log_alpha_bar = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(torch.log1p(-betas), 0)])

    def betas(self) -> torch.Tensor:
        return -torch.expm1(self._log_alpha_bar[1:] - self._log_alpha_bar[:-1])

    def log_alpha_bar(self) -> torch.Tensor:
        """(T+1,) float64 log alpha_bar_n for n = 0..T (n = 0: clean data, log 1 = 0)."""
        return self._log_alpha_bar.clone()

    def _log_alpha_sq(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Piecewise-linear log alpha_t^2 and its slope in t, in float64 whatever t's dtype.

        A time within rounding of a step n / T (a float32 t = n / T is up to T * 6e-8 steps off) is that step: the
        table entry itself, not an interpolation towards the neighbour (at cosine n = 999 a float32 t interpolated
        put alpha 4.4e-5 relative off). The slope there is that of the segment above the step, as at an exact n."""
        table = self._log_alpha_bar.to(device=t.device)
        pos = (t.to(torch.float64) * self.num_steps).clamp(0, self.num_steps)
        nearest = pos.round()
        on_step = (pos - nearest).abs() <= self.num_steps * torch.finfo(t.dtype).eps
        pos = pos + torch.where(on_step, nearest - pos, torch.zeros_like(pos)).detach()  # gradient in t kept
        lo = pos.detach().floor().clamp(max=self.num_steps - 1).long()
        step = table[lo + 1] - table[lo]
        return table[lo] + (pos - lo) * step, step * self.num_steps

    def alpha(self, t):
        return torch.exp(0.5 * self._log_alpha_sq(t)[0]).to(t.dtype)

    def sigma(self, t):
        return torch.sqrt(-torch.expm1(self._log_alpha_sq(t)[0])).to(t.dtype)

    def d_alpha(self, t):
        value, slope = self._log_alpha_sq(t)
        return (0.5 * slope * torch.exp(0.5 * value)).to(t.dtype)

    def d_sigma(self, t):
        # sigma^2 = 1 - alpha^2  =>  sigma' = -alpha alpha' / sigma
        value, slope = self._log_alpha_sq(t)
        alpha_sq = torch.exp(value)
        return (-0.5 * slope * alpha_sq / torch.sqrt(-torch.expm1(value))).to(t.dtype)


class EDMSigmaPath(GaussianPath):
    """Variance-exploding path of EDM / consistency models (Karras et al. 2022, eq. 5):

    alpha_t = 1, sigma_t = (sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho,
    so a uniform grid in t is exactly Karras' rho-spaced sigma grid (rho = 7).
    t = 0 is sigma_min (the consistency boundary), t = 1 is sigma_max.
    """

    def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0):
        if not 0.0 < sigma_min < sigma_max:
            raise ValueError(f"EDMSigmaPath: need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if rho <= 0:
            raise ValueError(f"EDMSigmaPath: rho must be positive, got {rho}")
        self.sigma_min, self.sigma_max, self.rho = float(sigma_min), float(sigma_max), float(rho)
        self._lo = sigma_min ** (1 / rho)
        self._span = sigma_max ** (1 / rho) - self._lo

    def alpha(self, t):
        return torch.ones_like(t)

    def sigma(self, t):
        return (self._lo + t * self._span) ** self.rho

    def d_alpha(self, t):
        return torch.zeros_like(t)

    def d_sigma(self, t):
        return self.rho * self._span * (self._lo + t * self._span) ** (self.rho - 1)

    def t_from_noise_ratio(self, ratio, iterations: int = 60):
        return ((ratio ** (1 / self.rho) - self._lo) / self._span).clamp(0.0, 1.0)


PATHS = {
    "linear": LinearPath,
    "ot": OTFlowPath,
    "vp_linear": VPLinearPath,
    "vp_cosine": VPCosinePath,
    "vp_discrete": DiscreteVPPath,
    "edm": EDMSigmaPath,
}


def make_path(name: str, **kwargs) -> GaussianPath:
    """Build by name; unknown names raise with the list of known ones."""
    return build("path", PATHS, name, **kwargs)
