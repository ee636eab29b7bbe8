"""Learned reverse-step variances and the variational bound of discrete DDPM (Nichol & Dhariwal 2021,
"Improved Denoising Diffusion Probabilistic Models", sec. 3.1).

Eq. 15: the network outputs one extra value per dimension, and the reverse step n -> n - 1 has
    log Sigma_n = frac log beta_n + (1 - frac) log beta_tilde_n,   beta_tilde_n = (1 - abar_{n-1}) / (1 - abar_n) beta_n.
Convention (their code, diffusers' "learned_range", DiT's checkpoints): the raw channel v is nominally in
[-1, 1] and frac = (v + 1) / 2; nothing is clamped. beta_tilde_1 = 0, so step 1 uses beta_tilde_2 instead
("clipped", as their code does); it only enters the n = 1 decoder term.

Eq. 16: L_hybrid = L_simple + lambda L_vlb, with the stop-gradient on the mean inside L_vlb (the mean is
trained by L_simple alone). L_vlb = sum_n L_n (Ho et al. 2020, eq. 5): for n >= 2 the KL between the
Gaussians q(x_{n-1} | x_n, x_0) and p(x_{n-1} | x_n); for n = 1 the decoder NLL -log p(x_0 | x_1), the
discretised Gaussian of Ho et al. eq. 13 (256 bins over [-1, 1]; exact normal CDF; a bin's probability floored
at 1e-12 as improved-diffusion's code does) or, for continuous
data, the Gaussian density. One uniform n gives the estimate T * L_n. L_n is in bits per dimension (mean
over dimensions / ln 2) as in their code, so lambda = 0.001 at T = 1000 is their rescaled weight (vb * T / 1000).
"""
from __future__ import annotations

import math

import torch

DECODERS = ("discretized", "gaussian")
_LOG_2PI = math.log(2 * math.pi)
LOG_MIN_BIN_PROBABILITY = math.log(1e-12)  # improved-diffusion's floor on a decoder bin's probability


def split_variance_channels(raw: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2C, ...) network output -> (mean part (B, C, ...), v (B, C, ...)); loud error on any other shape."""
    if raw.ndim != x.ndim or raw.shape[0] != x.shape[0] or raw.shape[1] != 2 * x.shape[1] or raw.shape[2:] != x.shape[2:]:
        raise ValueError(
            f"variance='learned_range' needs a network with twice the data channels (mean and variance, dim 1): "
            f"expected output {(x.shape[0], 2 * x.shape[1], *x.shape[2:])} for input {tuple(x.shape)}, got "
            f"{tuple(raw.shape)}. Set the backbone's out_channels to {2 * x.shape[1]}."
        )
    return raw[:, : x.shape[1]], raw[:, x.shape[1]:]


def variance_fraction(v: torch.Tensor) -> torch.Tensor:
    """The raw variance channel v (nominally [-1, 1]) -> the interpolation weight frac = (v + 1) / 2."""
    return (v + 1.0) / 2.0


def interpolated_log_variance(frac: torch.Tensor, log_beta, log_beta_tilde) -> torch.Tensor:
    """Eq. 15 of Nichol & Dhariwal 2021: frac log beta + (1 - frac) log beta_tilde."""
    return frac * log_beta + (1.0 - frac) * log_beta_tilde


def gaussian_kl(mean_q, log_var_q, mean_p, log_var_p) -> torch.Tensor:
    """Elementwise KL(N(mean_q, exp log_var_q) || N(mean_p, exp log_var_p)) in nats."""
    return 0.5 * (log_var_p - log_var_q + torch.exp(log_var_q - log_var_p)
                  + (mean_q - mean_p) ** 2 * torch.exp(-log_var_p) - 1.0)


def gaussian_nll(x, mean, log_var) -> torch.Tensor:
    """Elementwise -log N(x; mean, exp log_var) in nats (a density: for continuous data)."""
    return 0.5 * (_LOG_2PI + log_var + (x - mean) ** 2 * torch.exp(-log_var))


def discretized_gaussian_nll(x, mean, log_var, levels: int = 256) -> torch.Tensor:
    """Elementwise -log P(bin of x) in nats for data on `levels` equally spaced values in [-1, 1] (Ho et al. 2020,
    eq. 13): the Gaussian mass over the bin [x - 1/(levels-1), x + 1/(levels-1)], the edge bins open to +-inf."""
    half_bin = 1.0 / (levels - 1)
    inv_std = torch.exp(-0.5 * log_var)
    upper = (x - mean + half_bin) * inv_std
    lower = (x - mean - half_bin) * inv_std
    log_below_upper = torch.special.log_ndtr(upper)  # first bin: everything below its upper edge
    log_above_lower = torch.special.log_ndtr(-lower)  # last bin: everything above its lower edge
    # interior bins: log(Phi(upper) - Phi(lower)), taken on the side of the mean where both CDFs are small
    flip = (lower + upper) > 0
    a, b = torch.where(flip, -upper, lower), torch.where(flip, -lower, upper)
    log_b = torch.special.log_ndtr(b)
    log_mass = log_b + torch.log(-torch.expm1((torch.special.log_ndtr(a) - log_b).clamp(max=-1e-30)))
    edge = 1.0 - 1e-3
    log_p = torch.where(x < -edge, log_below_upper, torch.where(x > edge, log_above_lower, log_mass))
    # a bin's probability is floored at 1e-12 (at most 27.6 nats per dimension), as improved-diffusion's
    # discretized_gaussian_log_likelihood clamps each of its three probabilities: a mean far off the bin under a
    # small variance would otherwise give hundreds of nats and dominate L_vlb and its importance weights
    return -log_p.clamp(min=LOG_MIN_BIN_PROBABILITY)


class DiscreteVLB:
    """The terms L_n of the discrete DDPM bound with a learned variance, for a DiscreteVPPath.

    Tables are indexed by the 1-based step n = T t (n = 1..T), kept in float64 and cast on use.
    """

    def __init__(self, path, decoder: str = "discretized"):
        if decoder not in DECODERS:
            raise ValueError(f"unknown vlb decoder {decoder!r}; choose one of {list(DECODERS)} "
                             f"('discretized' for 8-bit images in [-1, 1], 'gaussian' for continuous data)")
        if not hasattr(path, "log_alpha_bar"):
            raise ValueError(f"a learned variance needs the discrete DDPM path (discrete=True), got {path!r}")
        self.decoder, self.num_steps = decoder, path.num_steps
        log_abar = path.log_alpha_bar()  # (T+1,)
        log_beta = torch.log(-torch.expm1(log_abar[1:] - log_abar[:-1]))  # (T,)
        log_one_minus = torch.log(-torch.expm1(log_abar))  # (T+1,) log(1 - abar_n); -inf at n = 0
        log_beta_tilde = log_one_minus[:-1] - log_one_minus[1:] + log_beta  # (T,); -inf at n = 1
        if self.num_steps > 1:  # Improved DDPM's "clipped" posterior log-variance: step 1 uses step 2's
            log_beta_tilde[0] = log_beta_tilde[1]
        else:
            log_beta_tilde[0] = log_beta[0]
        # posterior mean q(x_{n-1} | x_n, x0) = coef_x0 x0 + coef_xt x_n (Ho et al. 2020, eq. 7)
        coef_x0 = torch.exp(0.5 * log_abar[:-1] + log_beta - log_one_minus[1:])
        coef_xt = torch.exp(0.5 * torch.log1p(-torch.exp(log_beta)) + log_one_minus[:-1] - log_one_minus[1:])
        self._tables = {"log_beta": log_beta, "log_beta_tilde": log_beta_tilde, "coef_x0": coef_x0, "coef_xt": coef_xt}

    def step_index(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) times t = n / T -> (B,) long n; loud error off the grid."""
        n = torch.round(t.double() * self.num_steps)
        if bool(((n - t.double() * self.num_steps).abs() > 1e-3).any()) or bool(((n < 1) | (n > self.num_steps)).any()):
            raise ValueError(f"a learned-variance loss needs times on the discrete grid n / {self.num_steps}, "
                             f"n = 1..{self.num_steps}; use the discrete time sampler (got t = {t.tolist()[:4]}...)")
        return n.long()

    def table(self, name: str, n: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Table entry at step n (B,), shaped (B, 1, ...) in like's dtype and device."""
        values = self._tables[name].to(like.device)[n.to(like.device) - 1]
        return values.to(like.dtype).reshape((-1,) + (1,) * (like.ndim - 1))

    def model_log_variance(self, frac: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return interpolated_log_variance(frac, self.table("log_beta", n, frac), self.table("log_beta_tilde", n, frac))

    def posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        return self.table("coef_x0", n, x_t) * x0 + self.table("coef_xt", n, x_t) * x_t

    def term(self, x0, x_t, x0_hat, frac, n) -> torch.Tensor:
        """(B,) L_n in bits per dimension: KL for n >= 2, decoder NLL for n = 1. x0_hat: the model's clean
        estimate (detach it for Improved DDPM's stop-gradient), frac: the variance weight, n: (B,) long."""
        log_var_p = self.model_log_variance(frac, n)
        mean_p = self.posterior_mean(x0_hat, x_t, n)
        kl = gaussian_kl(self.posterior_mean(x0, x_t, n), self.table("log_beta_tilde", n, x_t), mean_p, log_var_p)
        nll_fn = discretized_gaussian_nll if self.decoder == "discretized" else gaussian_nll
        nll = nll_fn(x0, mean_p, log_var_p)
        first = (n == 1).to(x_t.device).reshape((-1,) + (1,) * (x_t.ndim - 1))
        return torch.where(first, nll, kl).flatten(1).mean(1) / math.log(2.0)
