"""The metrics by name: what a suite's `evaluation.metrics` list names. Each entry builds its Metric from the
suite's feature network (the space FD, KID, IS, precision/recall and class accuracy are measured in) or from a
network of its own (FD_DINOv2), and what it needs from outside is checked before a comparison trains (PREFLIGHT).
A new metric is one entry here."""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .dinov2 import DINOv2Features, weights_from_environment
from .feature_network import FeatureNetwork
from .metric import Metric
from .sample_metrics import ClassAccuracy, FrechetDistance, InceptionScore, KernelDistance, Precision, Recall

MetricFactory = Callable[[FeatureNetwork, "torch.device | str | None"], Metric]
IS_SPLITS = 10  # Inception Score's chunks (Salimans et al. 2016)
PR_K = 3  # precision/recall's nearest neighbours (Kynkaanniemi et al. 2019)

METRICS: dict[str, MetricFactory] = {
    "fd": lambda net, device: FrechetDistance(net),
    "kid": lambda net, device: KernelDistance(net),
    "precision": lambda net, device: Precision(net, PR_K),
    "recall": lambda net, device: Recall(net, PR_K),
    "is": lambda net, device: InceptionScore(net, IS_SPLITS),
    "class_accuracy": lambda net, device: ClassAccuracy(net),
    # EDM2's second metric (Karras et al. 2024, sec. 5), in DINOv2 ViT-L/14's space; weights from a local file
    "fd_dinov2": lambda net, device: FrechetDistance(DINOv2Features.from_environment(device), "fd_dinov2",
                                                     "FD_DINOv2"),
}
PREFLIGHT: dict[str, Callable[[], object]] = {"fd_dinov2": weights_from_environment}  # raise before any training
# the fewest samples each metric can be computed from (and why), checked against a suite's sample counts before
# it trains; the others need 2 (a covariance, a pair of distances)
MIN_SAMPLES = {"is": (IS_SPLITS, f"the inception score cuts the samples into splits={IS_SPLITS} chunks"),
               "precision": (PR_K + 1, f"precision's k={PR_K} nearest neighbours need more than k samples"),
               "recall": (PR_K + 1, f"recall's k={PR_K} nearest neighbours need more than k samples")}
DEFAULT_METRICS = ("fd", "kid", "precision", "recall", "is", "class_accuracy")  # a suite without a list scores these
PRIMARY = DEFAULT_METRICS[0]  # the first metric of a list ranks rows and carries the interval


def metric_names(names: Sequence[str] | None) -> list[str]:
    """The checked list of metric names (None: the default set); the first ranks the comparison."""
    names = list(DEFAULT_METRICS if names is None else names)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"evaluation.metrics must be distinct names among {sorted(METRICS)}, got {names}")
    for name in names:  # what a metric needs from outside (weights files) is checked now, not after training
        PREFLIGHT.get(name, lambda: None)()
    return names


def min_samples(names: Sequence[str] | None) -> tuple[int, str]:
    """The fewest samples all the named metrics (None: the default set) can be computed from, and why."""
    needs = [MIN_SAMPLES.get(name, (2, f"{name} needs at least 2 samples")) for name in
             (DEFAULT_METRICS if names is None else names)]
    return max(needs, default=(2, "a metric needs at least 2 samples"))


def make_metrics(names: Sequence[str] | None, feature_net: FeatureNetwork,
                 device: torch.device | str | None = None) -> list[Metric]:
    """The named metrics (None: the default set), measured in `feature_net`'s space unless they bring their own."""
    return [METRICS[name](feature_net, device) for name in metric_names(names)]
