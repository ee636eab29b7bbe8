"""All sample-quality metrics of a set of generated images against reference statistics.

``evaluate_samples`` extracts features and logits in batches (each rank its share when
torch.distributed is initialised, then all-gathered, so every rank returns the same numbers) and
computes the Frechet distance (frechet.py), KID (kid.py), Inception Score with the feature
network's classifier (inception_score.py), improved precision/recall (precision_recall.py) and,
for conditional samples, the class accuracy: how often the network classifies a sample as the
class it was generated for.
"""
from __future__ import annotations

import torch

from ._dist import gather_rows, rank_world, share
from .feature_network import FeatureNetwork, check_images
from .frechet import frechet_distance, gaussian_stats
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .precision_recall import knn_radii, precision_recall

REFERENCE_KEYS = ("mu", "sigma", "features_for_kid_pr")


def extract(feature_net: FeatureNetwork, x: torch.Tensor, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, F), logits (N, K)), float32 on the CPU, of images ``x`` (N, C, H, W), in batches."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    feats, logits = [], []
    for i in range(0, x.shape[0], batch_size):
        f, lg = feature_net.features_and_logits(x[i:i + batch_size])
        feats.append(f.float().cpu())
        logits.append(lg.float().cpu())
    if not feats:
        return torch.empty(0, feature_net.num_features), torch.empty(0, feature_net.num_classes)
    return torch.cat(feats), torch.cat(logits)


def evaluate_samples(samples: torch.Tensor, feature_net: FeatureNetwork, reference: dict,
                     labels: torch.Tensor | None = None, *, batch_size: int = 250, kid_subsets: int = 100,
                     kid_subset_size: int | None = None, pr_k: int = 3, is_splits: int = 10, seed: int = 0,
                     local_samples: bool = False) -> dict[str, float]:
    """Metrics of ``samples`` (N, C, H, W) in [-1, 1] against ``reference`` (from ``reference_stats``).

    Returns floats: "fd" (squared Frechet distance, the number FID reports), "kid" and "kid_std"
    (mean and std of the unbiased MMD^2 over ``kid_subsets`` subsets of ``kid_subset_size``
    samples, None: min(1000, N, reference subset size)), "is" (Inception Score over ``is_splits``
    chunks, with the feature network's logits; only when it has a classifier head), "precision" and
    "recall" (k = ``pr_k``, against the reference subset), and "class_accuracy" when ``labels``
    (N,), the classes the samples were generated for, are given and the network has a head.

    Under torch.distributed: with ``local_samples=False`` every rank passes the same N samples
    and extracts a contiguous share; with ``local_samples=True`` each rank passes its own samples
    (and labels), e.g. generated on that rank, and the metrics cover their union.
    """
    x = check_images(samples, "evaluate_samples: samples")
    for k in REFERENCE_KEYS:
        if k not in reference:
            raise ValueError(f"evaluate_samples: reference lacks {k!r} (use reference_stats to make it)")
    ref_fp = reference.get("feature_fingerprint")
    if ref_fp is not None and ref_fp != feature_net.fingerprint:
        raise ValueError(f"evaluate_samples: reference was computed with feature network {ref_fp}, not "
                         f"{feature_net.fingerprint}")
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.shape != (x.shape[0],) or labels.is_floating_point():
            shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"evaluate_samples: labels must be an integer tensor of shape ({x.shape[0]},), "
                             f"got {shape}")
        labels = labels.cpu().to(torch.int64)
    rank, world = rank_world()
    if local_samples or world == 1:
        feats, logits = extract(feature_net, x, batch_size)
        if world > 1:
            feats, logits = gather_rows(feats), gather_rows(logits)
            labels = gather_rows(labels) if labels is not None else None
    else:
        start, stop = share(x.shape[0], rank, world)
        feats, logits = extract(feature_net, x[start:stop], batch_size)
        feats, logits = gather_rows(feats), gather_rows(logits)
    n = feats.shape[0]
    ref_feats = reference["features_for_kid_pr"]
    if feats.shape[1] != reference["mu"].shape[0]:
        raise ValueError(f"evaluate_samples: the feature network gives {feats.shape[1]} features, the reference "
                         f"has {reference['mu'].shape[0]}")
    if n < 2:
        raise ValueError(f"evaluate_samples: need at least 2 samples, got {n}")
    mu, sigma = gaussian_stats(feats)
    # a feature network without a classifier head (num_classes 0) has no Inception Score or class accuracy
    has_head = feature_net.num_classes >= 2
    is_mean = inception_score(logits, is_splits)[0] if has_head else None
    # the pairwise metrics run on the feature network's device (a GPU where there is one)
    dev = feature_net.device
    feats, ref_feats = feats.to(dev), ref_feats.to(dev)
    subset = min(1000, n, ref_feats.shape[0]) if kid_subset_size is None else kid_subset_size
    kid, kid_std = kernel_inception_distance(feats, ref_feats, kid_subsets, subset,
                                             generator=torch.Generator().manual_seed(seed))
    # the reference's k-NN radii cost most of precision/recall and never change: kept in the reference dict
    radii_key = f"_knn_radii_k{pr_k}_{dev}"
    if radii_key not in reference and ref_feats.shape[0] > pr_k:  # too few rows: precision_recall says so
        reference[radii_key] = knn_radii(ref_feats.detach().to(dev, torch.float64), pr_k)
    precision, recall = precision_recall(ref_feats, feats, pr_k, real_radii=reference.get(radii_key))
    out = {"fd": frechet_distance(mu, sigma, reference["mu"], reference["sigma"]), "kid": kid, "kid_std": kid_std,
           "precision": precision, "recall": recall}
    if has_head:
        out["is"] = is_mean
    if labels is not None and has_head:
        out["class_accuracy"] = float((logits.argmax(dim=1) == labels).double().mean())
    return out
