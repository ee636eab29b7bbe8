"""The sample-quality metrics as typed objects (metric.py): Frechet distance, KID, Inception Score, improved
precision and recall, and class accuracy, each in one feature network's space. The arithmetic lives in
frechet.py, kid.py, inception_score.py and precision_recall.py; these classes pick the features and the
reference statistics and name the result."""
from __future__ import annotations

import torch

from .bootstrap import bootstrap_fd
from .feature_network import FeatureNetwork
from .frechet import frechet_distance, gaussian_stats
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .metric import MetricValue, Reference, Samples
from .precision_recall import knn_radii, precision_recall

VERSION = 1  # part of every fingerprint: raise it when a metric's arithmetic changes


class FeatureMetric:
    """Shared parts: a name, a label, the feature network, and a fingerprint of all three plus parameters."""

    lower_is_better = True

    def __init__(self, feature_net: FeatureNetwork, name: str, label: str, **parameters):
        self.feature_net, self.name, self.label, self.parameters = feature_net, name, label, parameters

    @property
    def fingerprint(self) -> str:
        params = "".join(f"-{k}{v}" for k, v in sorted(self.parameters.items()))
        return f"{self.name}-v{VERSION}{params}-{self.feature_net.fingerprint}"

    def _features(self, samples: Samples, reference: Reference) -> tuple[torch.Tensor, dict]:
        features, stats = samples.features(self.feature_net), reference.stats(self.feature_net)
        if features.shape[1] != stats["mu"].shape[0]:
            raise ValueError(f"{self.label}: the feature network gives {features.shape[1]} features, the reference "
                             f"has {stats['mu'].shape[0]}")
        if features.shape[0] < 2:
            raise ValueError(f"{self.label}: need at least 2 samples, got {features.shape[0]}")
        return features, stats


class FrechetDistance(FeatureMetric):
    """Squared Frechet distance between Gaussians fitted to the sample and reference features (the number FID
    reports in the Inception space, FD_DINOv2 in DINOv2's)."""

    def __init__(self, feature_net: FeatureNetwork, name: str = "fd", label: str = "FD"):
        super().__init__(feature_net, name, label)

    def compute(self, samples: Samples, reference: Reference) -> MetricValue:
        features, stats = self._features(samples, reference)
        mu, sigma = gaussian_stats(features)
        return MetricValue(frechet_distance(mu, sigma, stats["mu"], stats["sigma"]))

    def interval(self, samples: Samples, reference: Reference, *, replicates: int, level: float,
                 seed: int) -> MetricValue:
        """The value with the bias-corrected percentile bootstrap interval over the generated samples
        (evaluation.bootstrap), the reference statistics held fixed."""
        value = self.compute(samples, reference)
        features, stats = self._features(samples, reference)
        iv = bootstrap_fd(features.double(), stats["mu"], stats["sigma"], replicates=replicates, level=level,
                          seed=seed)
        return MetricValue(value.value, interval=(float(iv.low), float(iv.high)), level=float(iv.level),
                           replicates=int(iv.replicates))


class KernelDistance(FeatureMetric):
    """KID: the mean (and std) of the unbiased MMD^2 over `subsets` random subsets of `subset_size` samples
    against the reference subset (None: min(1000, N, reference subset)), seeded."""

    def __init__(self, feature_net: FeatureNetwork, subsets: int = 100, subset_size: int | None = None,
                 seed: int = 0, name: str = "kid", label: str = "KID"):
        super().__init__(feature_net, name, label, subsets=subsets, size=subset_size, seed=seed)
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed

    def compute(self, samples: Samples, reference: Reference) -> MetricValue:
        features, stats = self._features(samples, reference)
        dev = self.feature_net.device  # the pairwise metrics run where the network runs (a GPU where there is one)
        feats, ref = features.to(dev), stats["features_for_kid_pr"].to(dev)
        size = min(1000, feats.shape[0], ref.shape[0]) if self.subset_size is None else self.subset_size
        kid, std = kernel_inception_distance(feats, ref, self.subsets, size,
                                             generator=torch.Generator().manual_seed(self.seed))
        return MetricValue(kid, std=std)


class _PrecisionRecall(FeatureMetric):
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k nearest neighbours; precision and recall
    share one pass through Samples.memo, and the reference's k-NN radii are kept in its statistics."""

    lower_is_better = False
    part = 0

    def __init__(self, feature_net: FeatureNetwork, k: int = 3, name: str = "", label: str = ""):
        super().__init__(feature_net, name or self.default_name, label or self.default_name, k=k)
        self.k = k

    def compute(self, samples: Samples, reference: Reference) -> MetricValue:
        return MetricValue(samples.memo(("precision_recall", self.feature_net.fingerprint, self.k),
                                        lambda: self._both(samples, reference))[self.part])

    def _both(self, samples: Samples, reference: Reference) -> tuple[float, float]:
        features, stats = self._features(samples, reference)
        dev = self.feature_net.device
        feats, ref = features.to(dev), stats["features_for_kid_pr"].to(dev)
        # the reference's k-NN radii cost most of precision/recall and never change: kept in the statistics
        radii = f"_knn_radii_k{self.k}_{dev}"
        if radii not in stats and ref.shape[0] > self.k:  # too few rows: precision_recall says so
            stats[radii] = knn_radii(ref.detach().to(dev, torch.float64), self.k)
        return precision_recall(ref, feats, self.k, real_radii=stats.get(radii))


class Precision(_PrecisionRecall):
    default_name, part = "precision", 0


class Recall(_PrecisionRecall):
    default_name, part = "recall", 1


class InceptionScore(FeatureMetric):
    """Inception Score over `splits` chunks with the feature network's classifier (None without a head)."""

    lower_is_better = False

    def __init__(self, feature_net: FeatureNetwork, splits: int = 10, name: str = "is", label: str = "IS"):
        super().__init__(feature_net, name, label, splits=splits)
        self.splits = splits

    def compute(self, samples: Samples, reference: Reference) -> MetricValue | None:
        if self.feature_net.num_classes < 2:
            return None
        return MetricValue(inception_score(samples.features_and_logits(self.feature_net)[1], self.splits)[0])


class ClassAccuracy(FeatureMetric):
    """How often the feature network classifies a conditional sample as the class it was generated for (None for
    unconditional samples or a network without a head)."""

    lower_is_better = False

    def __init__(self, feature_net: FeatureNetwork, name: str = "class_accuracy", label: str = "class accuracy"):
        super().__init__(feature_net, name, label)

    def compute(self, samples: Samples, reference: Reference) -> MetricValue | None:
        if samples.labels is None or self.feature_net.num_classes < 2:
            return None
        logits = samples.features_and_logits(self.feature_net)[1]
        return MetricValue(float((logits.argmax(dim=1) == samples.labels).double().mean()))
