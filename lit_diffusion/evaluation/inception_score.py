"""Inception Score (Salimans et al. 2016, "Improved Techniques for Training GANs", sec. 4):

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

computed on ``splits`` equal consecutive chunks of the samples (p(y) estimated per chunk, as in the
paper's code) and reported as the mean and (population) std over chunks. It ranges from 1
(every prediction uniform, or all the same) to the number of classes (confident and balanced).
"""
from __future__ import annotations

import torch


def inception_score(logits: torch.Tensor | None = None, splits: int = 10, *,
                    probs: torch.Tensor | None = None) -> tuple[float, float]:
    """(mean, std) of the IS from class ``logits`` (N, C), or from ``probs`` (N, C) given by keyword."""
    if (logits is None) == (probs is None):
        raise ValueError("inception_score: give exactly one of logits (N, C) or probs=(N, C)")
    name, t = ("logits", logits) if logits is not None else ("probs", probs)
    if not isinstance(t, torch.Tensor) or t.ndim != 2 or t.shape[1] < 2:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"inception_score: {name} must be an (N, C) tensor with C >= 2, got {shape}")
    t = t.detach().to(torch.float64).cpu()
    if not torch.isfinite(t).all():
        raise ValueError(f"inception_score: {name} contains NaN or inf")
    if logits is not None:
        log_p = torch.log_softmax(t, dim=1)
    else:
        if (t < 0).any() or not torch.allclose(t.sum(dim=1), torch.ones(t.shape[0], dtype=t.dtype), atol=1e-4):
            raise ValueError("inception_score: probs rows must be non-negative and sum to 1 (pass logits= otherwise)")
        log_p = torch.log(t.clamp(min=1e-300))  # 0 * log 0 = 0 below
    if splits < 1:
        raise ValueError(f"inception_score: splits must be >= 1, got {splits}")
    n = t.shape[0]
    if n < splits:
        raise ValueError(f"inception_score: {n} samples cannot be cut into splits={splits} chunks")
    p = log_p.exp()
    scores = []
    for chunk in torch.tensor_split(torch.arange(n), splits):
        p_c, log_p_c = p[chunk], log_p[chunk]
        log_py = p_c.mean(dim=0).clamp(min=1e-300).log()  # log p(y) of the chunk
        kl = (p_c * (log_p_c - log_py)).sum(dim=1)  # KL(p(y|x) || p(y)) per sample
        scores.append(kl.mean().exp())
    s = torch.stack(scores)
    return float(s.mean()), float(s.std(unbiased=False))
