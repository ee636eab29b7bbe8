"""Evaluation: Frechet distance, KID, IS, precision/recall and class accuracy in a pluggable feature space
(features.py), reference statistics cached per (network, dataset), evaluation samples spread over ranks,
likelihood (bits/dim) through the probability-flow ODE, and the sliced Wasserstein distance for 2-D toys.
The published FID space offline: the TF FID Inception-v3 converted from the ``[fid]`` extra
(fid_inception.py); metrics are typed objects chosen by name (metric.py, sample_metrics.py,
metric_registry.py; FD_DINOv2 in dinov2.py); every score carries a protocol card (protocol.py) and a bootstrap interval (bootstrap.py)."""
from lit_diffusion.evaluation.bootstrap import FDInterval, bootstrap_fd, winner
from lit_diffusion.evaluation.features import (FeatureNetwork, FIDInceptionFeatures, InceptionFeatures,
                                               default_feature_network, load_or_train_classifier)
from lit_diffusion.evaluation.frechet import frechet_distance, gaussian_stats
from lit_diffusion.evaluation.generate import generate_samples
from lit_diffusion.evaluation.kid import kernel_inception_distance
from lit_diffusion.evaluation.likelihood import bits_per_dim, log_likelihood
from lit_diffusion.evaluation.metric import Metric, MetricValue, Reference, Samples
from lit_diffusion.evaluation.metric_registry import DEFAULT_METRICS, METRICS, make_metrics
from lit_diffusion.evaluation.metrics import evaluate_samples
from lit_diffusion.evaluation.precision_recall import precision_recall
from lit_diffusion.evaluation.protocol import ProtocolCard
from lit_diffusion.evaluation.reference import ReferenceMismatchError, check_reference, reference_stats
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein

__all__ = ["DEFAULT_METRICS", "METRICS", "Metric", "MetricValue", "Reference", "Samples", "make_metrics", "FDInterval", "FIDInceptionFeatures", "FeatureNetwork", "InceptionFeatures", "ProtocolCard",
           "ReferenceMismatchError", "bits_per_dim", "bootstrap_fd", "check_reference", "default_feature_network",
           "evaluate_samples", "frechet_distance", "gaussian_stats", "generate_samples", "kernel_inception_distance",
           "load_or_train_classifier", "log_likelihood", "precision_recall", "reference_stats", "sliced_wasserstein",
           "winner"]
