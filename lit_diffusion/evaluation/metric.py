"""The metric contract of the evaluation: a ``Metric`` is a typed object with a ``name`` (its key in score tables
and caches), a ``label`` for people, whether lower is better, a ``fingerprint`` (everything that decides its
value: the metric, its parameters and its feature network's weights) and ``compute(samples, reference)``; a
metric with an uncertainty also has ``interval``. Implementations: sample_metrics.py; the registry by name:
metric_registry.py.

``Samples`` holds generated images (and the classes they were generated for) and extracts each feature network's
features once, however many metrics read them. ``Reference`` holds the real split they are compared with and its
statistics in each feature network's space, computed once and cached under the network's fingerprint
(reference.py)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from .feature_network import FeatureNetwork, extract

COMPANIONS = ("std", "low", "high", "level", "replicates")  # flat keys beside a value: NAME_std, NAME_low, ...


@dataclass(frozen=True)
class MetricValue:
    """One metric's value, with its spread over subsets (KID) and its bootstrap interval, where computed."""

    value: float
    std: float | None = None
    interval: tuple[float, float] | None = None
    level: float | None = None  # the interval's confidence level
    replicates: int | None = None  # bootstrap resamples behind the interval

    def flat(self, name: str) -> dict[str, float]:
        """{NAME: value, NAME_std, NAME_low, NAME_high, NAME_level, NAME_replicates} (only the fields computed):
        the spelling of eval.json and of score rows."""
        out = {name: float(self.value)}
        if self.std is not None:
            out[f"{name}_std"] = float(self.std)
        if self.interval is not None:
            out |= {f"{name}_low": float(self.interval[0]), f"{name}_high": float(self.interval[1]),
                    f"{name}_level": float(self.level), f"{name}_replicates": int(self.replicates)}
        return out

    @staticmethod
    def keys(name: str) -> tuple[str, ...]:
        """Every flat key a value of metric ``name`` may have."""
        return (name, *(f"{name}_{c}" for c in COMPANIONS))


@runtime_checkable
class Metric(Protocol):
    name: str  # key in score tables and caches, e.g. "fd"
    label: str  # for people, e.g. "FD"
    lower_is_better: bool
    feature_net: FeatureNetwork  # the space it is measured in (its protocol card's evaluator)

    @property
    def fingerprint(self) -> str:
        """Identifies the value: metric, version, parameters and the feature network's fingerprint."""

    def compute(self, samples: "Samples", reference: "Reference") -> MetricValue | None:
        """The value over all samples; None where the metric does not apply (e.g. IS without a classifier head)."""


@runtime_checkable
class IntervalMetric(Metric, Protocol):
    def interval(self, samples: "Samples", reference: "Reference", *, replicates: int, level: float,
                 seed: int) -> MetricValue:
        """The value with its percentile bootstrap interval over the generated samples."""


class Samples:
    """Generated images (N, C, H, W) in [-1, 1] and, for conditional models, the classes (N,) they were generated
    for. Features are extracted once per feature network (by fingerprint); ``memo`` shares other intermediate
    results between metrics (precision and recall come from one k-NN pass)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, *, batch_size: int = 250):
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self._features: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._memo: dict[Any, Any] = {}

    def provide(self, net: FeatureNetwork, features: torch.Tensor, logits: torch.Tensor) -> "Samples":
        """Features extracted elsewhere (e.g. gathered from every rank)."""
        self._features[net.fingerprint] = (features, logits)
        return self

    def features_and_logits(self, net: FeatureNetwork) -> tuple[torch.Tensor, torch.Tensor]:
        """(features (N, F), logits (N, K)), float32 on the CPU."""
        if net.fingerprint not in self._features:
            self._features[net.fingerprint] = extract(net, self.images, self.batch_size)
        return self._features[net.fingerprint]

    def features(self, net: FeatureNetwork) -> torch.Tensor:
        return self.features_and_logits(net)[0]

    def memo(self, key, compute: Callable[[], Any]) -> Any:
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Reference:
    """The real split generated samples are compared with: its statistics in each feature network's space
    (reference_stats: computed once, cached under the network's fingerprint), or statistics given directly."""

    def __init__(self, shards: str | os.PathLike | None = None, cache_dir: str | os.PathLike | None = None):
        self.shards, self.cache_dir = shards, cache_dir
        self._stats: dict[str, dict] = {}

    @classmethod
    def of(cls, net: FeatureNetwork, stats: dict) -> "Reference":
        """A reference known only through ``net``'s statistics (from reference_stats)."""
        return cls().provide(net, stats)

    def provide(self, net: FeatureNetwork, stats: dict) -> "Reference":
        self._stats[net.fingerprint] = stats
        return self

    def stats(self, net: FeatureNetwork) -> dict:
        if net.fingerprint not in self._stats:
            if self.shards is None:
                raise ValueError(f"Reference: no statistics for feature network {net.name} ({net.fingerprint}) "
                                 "and no shards to compute them from")
            from .reference import reference_stats

            self._stats[net.fingerprint] = reference_stats(net, self.shards, cache_dir=self.cache_dir)
        return self._stats[net.fingerprint]
