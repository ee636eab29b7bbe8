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
from .feature_network import FeatureNetwork, check_images, extract
from .metric import Reference, Samples
from .sample_metrics import ClassAccuracy, FrechetDistance, InceptionScore, KernelDistance, Precision, Recall

REFERENCE_KEYS = ("mu", "sigma", "features_for_kid_pr")


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
    samples = Samples(x, labels).provide(feature_net, feats, logits)
    ref = Reference.of(feature_net, reference)
    metrics = [FrechetDistance(feature_net), KernelDistance(feature_net, kid_subsets, kid_subset_size, seed),
               Precision(feature_net, pr_k), Recall(feature_net, pr_k), InceptionScore(feature_net, is_splits),
               ClassAccuracy(feature_net)]
    out = {}
    for metric in metrics:  # the same arithmetic as a comparison's metrics (sample_metrics.py)
        value = metric.compute(samples, ref)
        if value is not None:
            out |= value.flat(metric.name)
    return out
