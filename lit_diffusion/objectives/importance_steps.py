"""Importance sampling of the discrete step n for L_vlb (Nichol & Dhariwal 2021, sec. 3.3, eq. 17):
p_n proportional to sqrt(E[L_n^2]), estimated from the last `history` values recorded at each step (10 in the
paper); uniform until every step has that many. DDPM records each sample's whole loss there, as improved-diffusion's
training loop does (objectives/ddpm.py). Each sample's loss is multiplied by 1 / (T p_n), so the
estimate of sum_n L_n stays unbiased. A small share of uniform probability keeps every step visited (their
released code mixes in 0.1%).

The history lives in this object only: it is neither saved in checkpoints nor shared between DDP ranks, so a
resumed run (or each rank) starts again from uniform sampling until the history refills (T * history terms).
"""
from __future__ import annotations

import torch

from lit_diffusion.objectives.time_samplers import TimeSampler


class ImportanceSampledSteps(TimeSampler):
    """t = n / T with n drawn from the L_vlb importance distribution; an objective calls `loss_weights(t)` for
    the factors 1 / (T p_n) and `update(t, terms)` with each sample's L_n (DDPM with variance='learned_range')."""

    def __init__(self, num_steps: int = 1000, history: int = 10, uniform_share: float = 0.001):
        if num_steps < 1 or history < 1:
            raise ValueError(f"ImportanceSampledSteps: num_steps={num_steps} and history={history} must be >= 1")
        if not 0.0 <= uniform_share <= 1.0:
            raise ValueError(f"ImportanceSampledSteps: uniform_share must lie in [0, 1], got {uniform_share}")
        self.num_steps, self.history, self.uniform_share = int(num_steps), int(history), float(uniform_share)
        self._squares = torch.zeros(self.num_steps, self.history, dtype=torch.float64)  # ring buffer of L_n^2
        self._counts = torch.zeros(self.num_steps, dtype=torch.long)

    def warm(self) -> bool:
        """True once every step has `history` recorded terms."""
        return bool((self._counts >= self.history).all())

    def probabilities(self) -> torch.Tensor:
        """(T,) float64 p_n: uniform before warm(), then sqrt(mean L_n^2) normalised and mixed with uniform."""
        if not self.warm():
            return torch.full((self.num_steps,), 1.0 / self.num_steps, dtype=torch.float64)
        root = self._squares.mean(1).sqrt()
        p = root / root.sum() if float(root.sum()) > 0 else torch.full_like(root, 1.0 / self.num_steps)
        return (1.0 - self.uniform_share) * p + self.uniform_share / self.num_steps

    def sample(self, batch_size, path, generator=None, device=None):
        """float32 t = n / T; a discrete path reads its float64 table at n itself for such a t (paths.py)."""
        n = torch.multinomial(self.probabilities(), batch_size, replacement=True, generator=generator) + 1
        return (n.float() / self.num_steps).to(device)

    def _steps(self, t: torch.Tensor) -> torch.Tensor:
        return torch.round(t.detach().double().cpu() * self.num_steps).long().clamp(1, self.num_steps)

    def loss_weights(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) 1 / (T p_n) for times t = n / T, in t's dtype and device."""
        p = self.probabilities()[self._steps(t) - 1]
        return (1.0 / (self.num_steps * p)).to(device=t.device, dtype=t.dtype)

    def update(self, t: torch.Tensor, terms: torch.Tensor) -> None:
        """Record each sample's L_n (B,) at its step (the oldest value of a full history is replaced)."""
        for n, value in zip(self._steps(t).tolist(), terms.detach().double().cpu().tolist()):
            self._squares[n - 1, self._counts[n - 1] % self.history] = value * value
            self._counts[n - 1] += 1

    def __repr__(self) -> str:
        return (f"ImportanceSampledSteps(num_steps={self.num_steps}, history={self.history}, "
                f"uniform_share={self.uniform_share})")
