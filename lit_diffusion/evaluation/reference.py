"""Reference statistics of a real split in a feature network's space, computed once and cached.

``reference_stats`` streams the split once (each rank its share, see ``shards.py``), accumulates
the feature mean and covariance in float64 with the pairwise update of Chan, Golub & LeVeque
(1979) (exact merging of per-batch and per-rank moments, no catastrophic cancellation), and keeps
the features of a fixed random subset of samples for KID and precision/recall. The result is
cached under ``<cache_dir>/reference-<key>.pt`` where the key hashes the feature network's
fingerprint, the dataset fingerprint, ``max_samples``, the subset size and its seed.

The statistics record what they were measured with (evaluator name, weights sha256, resize
convention, dataset fingerprint, split, count, and a sha256 of mu and sigma) for the protocol
card; ``check_reference`` refuses statistics from another evaluator or another dataset.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # annotations only: evaluation stays Lightning-free (DESIGN §1)
    from lit_diffusion.data.datamodule import ShardDataModule

from . import cache
from ._dist import broadcast_object, gather_rows, rank_world
from .feature_network import FeatureNetwork
from .shards import SplitReader

log = logging.getLogger("lit_diffusion.evaluation")
VERSION = 2  # 2: records evaluator, weights sha256, resize, split and stats sha256


class ReferenceMismatchError(ValueError):
    """Reference statistics measured with another feature network or on another dataset."""


class RunningGaussian:
    """Count, mean (D,) and scatter matrix M2 = sum (x - mean)(x - mean)^T (D, D), float64."""

    def __init__(self, dim: int, device: torch.device | str = "cpu"):
        self.n = 0
        self.mean = torch.zeros(dim, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(dim, dim, dtype=torch.float64, device=device)

    def merge(self, n_b: int, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        """Chan et al. (1979): M2 = M2_a + M2_b + delta delta^T n_a n_b / n, delta = mean_b - mean_a."""
        if n_b == 0:
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.m2 += m2_b + torch.outer(delta, delta) * (self.n * n_b / n)
        self.mean += delta * (n_b / n)
        self.n = n

    def update(self, features: torch.Tensor) -> None:
        f = features.to(device=self.mean.device, dtype=torch.float64)
        mean_b = f.mean(dim=0)
        c = f - mean_b
        self.merge(f.shape[0], mean_b, c.T @ c)

    def all_ranks(self) -> "RunningGaussian":
        """The moments of the union of every rank's data (merged in rank order; same on all ranks)."""
        d = self.mean.shape[0]
        row = torch.cat([torch.tensor([float(self.n)], dtype=torch.float64, device=self.mean.device),
                         self.mean, self.m2.reshape(-1)])[None]
        rows = gather_rows(row)
        total = RunningGaussian(d, self.mean.device)
        for r in rows:
            total.merge(int(r[0]), r[1:1 + d], r[1 + d:].reshape(d, d))
        return total

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.n < 2:
            raise ValueError(f"reference statistics need at least 2 samples, got {self.n}")
        return self.mean.cpu(), (self.m2 / (self.n - 1)).cpu()


def subset_positions(limit: int, size: int, seed: int) -> torch.Tensor:
    """Sorted positions (< limit) of the fixed random subset kept for KID and precision/recall."""
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(limit, generator=g)[:size].sort().values


def _compute(feature_net: FeatureNetwork, reader: SplitReader, kid_pr_samples: int, seed: int) -> dict:
    keep = subset_positions(reader.limit, kid_pr_samples, seed)
    running = RunningGaussian(feature_net.num_features, feature_net.device)
    kept_f, kept_p = [], []
    for pos, batch in reader:
        f = feature_net.features(batch["x"])
        running.update(f)
        mask = torch.isin(pos, keep)
        if mask.any():
            kept_f.append(f[mask.to(f.device)].float().cpu())
            kept_p.append(pos[mask])
    total = running.all_ranks()
    if total.n != reader.limit:
        raise RuntimeError(f"reference_stats: read {total.n} samples, expected {reader.limit}")
    feats = torch.cat(kept_f) if kept_f else torch.empty(0, feature_net.num_features)
    pos = torch.cat(kept_p) if kept_p else torch.empty(0, dtype=torch.int64)
    feats, pos = gather_rows(feats), gather_rows(pos)
    mu, sigma = total.stats()
    return {"mu": mu, "sigma": sigma, "features_for_kid_pr": feats[pos.argsort()], "num": total.n}


def stats_sha256(mu: torch.Tensor, sigma: torch.Tensor) -> str:
    """sha256 of the float64 bytes of mu and sigma: identifies the statistics on the protocol card."""
    h = hashlib.sha256()
    for t in (mu, sigma):
        h.update(t.detach().to("cpu", torch.float64).contiguous().reshape(-1).numpy().tobytes())
    return h.hexdigest()


def split_name(shards) -> str:
    """A short name of the split for people: the shard folder's name (e.g. "train")."""
    spec = str(getattr(shards, "train_shards", shards))
    path = Path(spec)
    return path.parent.name if path.suffix == ".json" or "{" in path.name or path.suffix == ".tar" else path.name


def check_reference(reference: dict, feature_net: FeatureNetwork, dataset_fingerprint: str | None = None) -> None:
    """Raise ``ReferenceMismatchError`` unless ``reference`` was measured with ``feature_net`` (and, when
    ``dataset_fingerprint`` is given, on that dataset). The message names both values and what to do."""
    fix = "recompute it with reference_stats(feature_net, <the real split>) (it is cached per network and dataset)"
    got = reference.get("feature_fingerprint")
    if got != feature_net.fingerprint:
        raise ReferenceMismatchError(
            f"reference statistics were measured with evaluator {reference.get('evaluator', '?')} ({got}), but the "
            f"samples are scored with {feature_net.name} ({feature_net.fingerprint}): Frechet distances across "
            f"feature spaces mean nothing; {fix}")
    if dataset_fingerprint is not None and reference.get("dataset_fingerprint") != dataset_fingerprint:
        raise ReferenceMismatchError(
            f"reference statistics are of dataset {reference.get('dataset_fingerprint')} (split "
            f"{reference.get('split', '?')}), not of dataset {dataset_fingerprint} that the model was trained on; {fix}")


def reference_from_features(feature_net: FeatureNetwork, features: torch.Tensor, dataset_fingerprint: str,
                            split: str, kid_pr_samples: int = 10_000, seed: int = 0) -> dict:
    """The reference dict (same fields as ``reference_stats``) of features already extracted with
    ``feature_net`` from the first N samples of a split (for callers that keep the features)."""
    if features.ndim != 2 or features.shape[1] != feature_net.num_features:
        raise ValueError(f"reference_from_features: features must be (N, {feature_net.num_features}), got "
                         f"{tuple(features.shape)}")
    running = RunningGaussian(features.shape[1])
    running.update(features)
    mu, sigma = running.stats()
    n = features.shape[0]
    keep = subset_positions(n, kid_pr_samples, seed)
    return {"mu": mu, "sigma": sigma, "features_for_kid_pr": features[keep].float().cpu(), "num": n,
            "feature_fingerprint": feature_net.fingerprint, "dataset_fingerprint": dataset_fingerprint,
            "max_samples": n, "evaluator": feature_net.name, "weights_sha256": feature_net.weights_sha256,
            "resize": feature_net.resize, "stats_sha256": stats_sha256(mu, sigma), "split": split}


def reference_stats(feature_net: FeatureNetwork, shards: str | os.PathLike | ShardDataModule,
                    max_samples: int | None = None, cache_dir: str | os.PathLike | None = None, *,
                    kid_pr_samples: int = 10_000, seed: int = 0, batch_size: int = 500, num_workers: int = 2,
                    recompute: bool = False) -> dict:
    """Feature statistics of the real split ``shards``, from the cache or computed once.

    Returns ``{"mu": (F,) float64, "sigma": (F, F) float64, "features_for_kid_pr": (M, F) float32,
    "num": samples used, "feature_fingerprint", "dataset_fingerprint", "max_samples", "evaluator",
    "weights_sha256", "resize", "split", "stats_sha256"}``, where
    the statistics cover the first ``max_samples`` samples in stored order (None: all) and the M =
    min(kid_pr_samples, num) kept features are a random subset of them fixed by ``seed``.
    Default cache folder: ``$LIT_DIFFUSION_CACHE/reference`` or ``~/.cache/lit_diffusion/reference``.
    Under torch.distributed every rank extracts its share; rank 0 owns the cache file and every
    rank returns the same statistics.
    """
    if not isinstance(feature_net, FeatureNetwork):
        raise ValueError(f"reference_stats: feature_net must be a FeatureNetwork, got {type(feature_net).__name__}")
    if kid_pr_samples < 1:
        raise ValueError(f"reference_stats: kid_pr_samples must be >= 1, got {kid_pr_samples}")
    reader = SplitReader(shards, max_samples=max_samples, batch_size=batch_size, num_workers=num_workers)
    meta = {"feature_fingerprint": feature_net.fingerprint, "dataset_fingerprint": reader.info.fingerprint,
            "max_samples": max_samples}
    key = cache.cache_key({"kind": "reference", "version": VERSION, **meta, "kid_pr_samples": kid_pr_samples,
                           "seed": seed})
    path = cache.cache_folder("reference", cache_dir) / f"reference-{key}.pt"
    rank, _ = rank_world()
    stats = cache.load(path) if rank == 0 and path.is_file() and not recompute else None
    if not broadcast_object(stats is not None):
        stats = _compute(feature_net, reader, kid_pr_samples, seed)
        stats.update(meta, evaluator=feature_net.name, weights_sha256=feature_net.weights_sha256,
                     resize=feature_net.resize, stats_sha256=stats_sha256(stats["mu"], stats["sigma"]))
        if rank == 0:
            cache.atomic_save(stats, path)
            log.info("reference statistics of %d samples saved to %s", stats["num"], path)
    else:
        stats = broadcast_object(stats if rank == 0 else None)
        log.info("reference statistics loaded from %s", path)
    stats["cache_path"] = str(path)
    stats["split"] = split_name(shards)  # not part of the key: the same data under another folder name is reused
    return stats
