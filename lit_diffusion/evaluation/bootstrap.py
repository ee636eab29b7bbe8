"""Bootstrap confidence interval of the Frechet distance over the generated samples, and the tie rule.

The reference statistics (mu_r, S_r) are held fixed; the N generated feature vectors are resampled with
replacement ``replicates`` times and the FD of each resample is computed exactly; the interval is the
percentile interval of those FDs (Efron & Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13)
shifted by the bootstrap estimate of the bias, mean(FD*) - FD (ch. 10), so it is centred on the reported
FD. The shift is needed: FD is biased upward at finite N (Chong & Forsyth 2020, "Effectively Unbiased FID
and Inception Score"), and a resample, with only ~63% distinct rows, is more biased still, so the raw
percentile interval of FD* often lies entirely above the FD it should bracket. ``FDInterval.bias`` keeps
the shift (raw interval = [low + bias, high + bias]). Comparing objectives at the same N, the shifted
intervals measure what the tie rule needs: how much FD moves with the draw of generated samples.

A resample is a vector of counts w (N,), sum N. Its mean is mu_w = X^T w / N and its unbiased covariance
S_w = (X - mu_w)^T diag(w) (X - mu_w) / (N - 1), exactly what ``gaussian_stats`` gives on the resampled rows.
With d^2 = |mu_w - mu_r|^2 + tr S_w + tr S_r - 2 tr (S_w S_r)^(1/2) (frechet.py), only the last term is
costly. Its value is the sum of sqrt(eigenvalues) of any matrix with the same non-zero spectrum as
S_r^(1/2) S_w S_r^(1/2); two are cheap to batch:

* N <= D (the usual case): the m x m matrix W^(1/2) (X - mu_w) S_r (X - mu_w)^T W^(1/2) / (N - 1) over the
  m ~ 0.63 N distinct rows of the resample, built from G = X S_r X^T (computed once) by rank-one updates;
* N > D: the D x D matrix (P^T diag(w) P - N a a^T) / (N - 1), P = X S_r^(1/2) (once), a = S_r^(1/2) mu_w.

Everything runs in float64, batched over replicates on the features' device (a GPU where there is one).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

import torch

from .frechet import _check_stats, _psd_sqrt


@dataclass(frozen=True)
class FDInterval:
    """A Frechet distance on all generated samples and its bootstrap percentile interval."""

    fd: float
    low: float
    high: float
    level: float
    replicates: int
    seed: int
    num_samples: int
    bias: float
    """mean(FD*) - FD over the resamples; the interval is the percentile interval of FD* minus this."""

    def overlaps(self, other: "FDInterval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def as_dict(self) -> dict:
        return asdict(self)


def _counts(n: int, replicates: int, seed: int) -> torch.Tensor:
    """(replicates, n) float64 counts of n draws with replacement per replicate (CPU generator: reproducible
    on every device)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(n, (replicates, n), generator=g)
    w = torch.zeros(replicates, n, dtype=torch.float64)
    return w.scatter_add_(1, idx, torch.ones_like(w))


def _trace_sqrt_gram(x: torch.Tensor, g: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """tr (S_w S_r)^(1/2) for each row of counts w (B, N), N <= D path; g = X S_r X^T (N, N)."""
    n = x.shape[0]
    v = w @ g / n  # (B, N): row b is (X S_r mu_w)^T
    c = (w * v).sum(1) / n  # mu_w^T S_r mu_w
    m = int((w > 0).sum(1).max())
    ws, idx = w.sort(dim=1, descending=True)  # the distinct rows first, zero-weight padding after
    ws, idx = ws[:, :m], idx[:, :m]
    vs = v.gather(1, idx)
    k = g[idx[:, :, None], idx[:, None, :]] - vs[:, :, None] - vs[:, None, :] + c[:, None, None]
    r = ws.sqrt()
    mat = r[:, :, None] * k * r[:, None, :] / (n - 1)
    return torch.linalg.eigvalsh((mat + mat.transpose(1, 2)) / 2).clamp(min=0).sqrt().sum(1)


def _trace_sqrt_cov(p: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """tr (S_w S_r)^(1/2) for each row of counts w (B, N), N > D path; p = X S_r^(1/2) (N, D)."""
    n = p.shape[0]
    a = w @ p / n  # (B, D) = S_r^(1/2) mu_w
    mat = torch.einsum("nd,bn,ne->bde", p, w, p)
    mat = (mat - n * a[:, :, None] * a[:, None, :]) / (n - 1)
    return torch.linalg.eigvalsh((mat + mat.transpose(1, 2)) / 2).clamp(min=0).sqrt().sum(1)


def fds_for_counts(features: torch.Tensor, mu_r: torch.Tensor, sigma_r: torch.Tensor, counts: torch.Tensor,
                   chunk: int | None = None) -> torch.Tensor:
    """The FD against N(mu_r, sigma_r) of each weighted copy of ``features`` (N, D) given by a row of
    ``counts`` (B, N) (how often each row is drawn; rows sum to N): (B,) float64 on the CPU. A row of ones
    is the FD of the features themselves. ``chunk``: rows per batched eigen-decomposition (None: by memory)."""
    x = features.detach().to(torch.float64)
    if x.ndim != 2 or x.shape[0] < 2 or not torch.isfinite(x).all():
        raise ValueError(f"bootstrap_fd: features must be a finite (N, D) tensor with N >= 2, got "
                         f"{tuple(x.shape)}")
    mu_r, s_r = _check_stats(mu_r, sigma_r, "_r")
    n, d = x.shape
    if mu_r.shape[0] != d:
        raise ValueError(f"bootstrap_fd: features have {d} dimensions, the reference {mu_r.shape[0]}")
    if counts.ndim != 2 or counts.shape[1] != n:
        raise ValueError(f"bootstrap_fd: counts must be (B, {n}), got {tuple(counts.shape)}")
    mu_r, s_r = mu_r.to(x.device), s_r.to(x.device)
    gram = n <= d
    if chunk is None:  # ~256 MiB of float64 matrices per batch
        side = math.ceil(0.7 * n) if gram else d
        chunk = max(1, (256 << 20) // (8 * side * side * 3))
    # computed once for every replicate: G = X S_r X^T (N <= D) or P = X S_r^(1/2) (N > D)
    shared = (x @ s_r) @ x.T if gram else x @ _psd_sqrt(s_r)
    sq, tr_r = (x * x).sum(1), torch.trace(s_r)
    out = []
    for w in counts.to(torch.float64).split(chunk):
        w = w.to(x.device)
        mu_w = w @ x / n
        mean_term = ((mu_w - mu_r) ** 2).sum(1)
        tr_w = (w @ sq - n * (mu_w * mu_w).sum(1)) / (n - 1)
        tr_sqrt = _trace_sqrt_gram(x, shared, w) if gram else _trace_sqrt_cov(shared, w)
        out.append((mean_term + tr_w + tr_r - 2 * tr_sqrt).clamp(min=0).cpu())
    return torch.cat(out)


def bootstrap_fds(features: torch.Tensor, mu_r: torch.Tensor, sigma_r: torch.Tensor, replicates: int = 200,
                  seed: int = 0, chunk: int | None = None) -> torch.Tensor:
    """The FD of each of ``replicates`` resamples (with replacement) of ``features`` (N, D), then the FD of
    ``features`` itself: (replicates + 1,) float64 on the CPU."""
    if replicates < 1:
        raise ValueError(f"bootstrap_fd: replicates must be >= 1, got {replicates}")
    n = features.shape[0] if isinstance(features, torch.Tensor) and features.ndim == 2 else 0
    counts = torch.cat([_counts(n, replicates, seed), torch.ones(1, n, dtype=torch.float64)])
    return fds_for_counts(features, mu_r, sigma_r, counts, chunk)


def bootstrap_fd(features: torch.Tensor, mu_r: torch.Tensor, sigma_r: torch.Tensor, replicates: int = 200,
                 level: float = 0.95, seed: int = 0) -> FDInterval:
    """FD of ``features`` (N, D) against the fixed reference N(mu_r, sigma_r), with the ``level`` bias-shifted
    percentile bootstrap interval over ``replicates`` resamples of the features (seeded by ``seed``).

    Cost (measured, 2 shared CPU cores, D = 2048): N = 1000 and 200 replicates ~1 min (the N <= D path);
    N > D needs one D x D eigen-decomposition per replicate (seconds each on a CPU, milliseconds on a GPU):
    pass features on the GPU, or fewer replicates on a CPU."""
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_fd: level must be in (0, 1), got {level}")
    all_fds = bootstrap_fds(features, mu_r, sigma_r, replicates, seed)
    fds, fd = all_fds[:-1], float(all_fds[-1])  # the last is the FD of the features themselves
    tail = (1 - level) / 2
    low, high = torch.quantile(fds, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    bias = float(fds.mean()) - fd
    return FDInterval(fd=fd, low=low - bias, high=high - bias, level=level, replicates=replicates, seed=seed,
                      num_samples=int(features.shape[0]), bias=bias)


def winner(intervals: Mapping[str, FDInterval]) -> tuple[str | None, list[str]]:
    """The tie rule: ``(name, [])`` when the entry with the lowest FD has an interval entirely below every
    other entry's interval; otherwise ``(None, tied)``, the names whose intervals overlap the best one's
    (the best included, in the given order): a tie."""
    if not intervals:
        raise ValueError("winner: no intervals given")
    best = min(intervals, key=lambda k: intervals[k].fd)
    tied = [k for k, iv in intervals.items() if k == best or iv.overlaps(intervals[best])]
    return (best, []) if len(tied) == 1 else (None, tied)
