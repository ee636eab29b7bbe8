"""The typed results a comparison passes from training to scoring to the report: one row per
(objective, seed, sampler setting, trained or not), instead of string keys parsed back."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lit_diffusion.compare.json_files import write_json_atomic
from lit_diffusion.evaluation.metric import COMPANIONS
from lit_diffusion.evaluation.metric_registry import PRIMARY
from lit_diffusion.runs import CheckpointRecord, RunDirectory


@dataclass(frozen=True)
class Setting:
    """How samples are drawn: a sampler, optionally on another time grid than its default, at an asked NFE."""

    sampler: str
    grid: str | None
    nfe: int

    @classmethod
    def from_suite(cls, key: str, nfe: int) -> "Setting":
        """key: a suite's sampler key, "name" or "name:grid"."""
        sampler, _, grid = key.partition(":")
        return cls(sampler, grid or None, int(nfe))

    @property
    def sampler_key(self) -> str:
        """The suite's spelling, "name" or "name:grid" (the report's sampler column)."""
        return f"{self.sampler}:{self.grid}" if self.grid else self.sampler

    @property
    def label(self) -> str:
        return f"{self.sampler_key}@{self.nfe}"


@dataclass(frozen=True)
class MetricColumn:
    """A metric as the table shows it: its key, label, direction and fingerprint (evaluation.metric.Metric)."""

    name: str
    label: str
    lower_is_better: bool = True
    fingerprint: str = ""

    @classmethod
    def of(cls, metric) -> "MetricColumn":
        return cls(metric.name, metric.label, metric.lower_is_better, metric.fingerprint)

    @property
    def arrow(self) -> str:
        return "↓" if self.lower_is_better else "↑"


@dataclass(frozen=True)
class ScoreRow:
    objective: str
    seed: int
    setting: Setting
    untrained: bool  # the same model freshly initialised from the seed: the baseline
    metrics: dict  # metric name -> value, with companions NAME_std, NAME_low, NAME_high, ... (MetricValue.flat)
    nfe_used: int  # the sampler's exact network evaluations per sample (may differ from the asked NFE)
    protocol: dict = field(default_factory=dict, compare=False)  # the score's protocol card (compare/card.py)
    primary: str = PRIMARY  # the metric that ranks rows (the suite's first)

    @property
    def score(self) -> float:
        """The primary metric's value."""
        return self.metrics[self.primary]

    @property
    def interval(self) -> tuple[float, float] | None:
        """The bootstrap interval of the primary metric over the generated samples, when computed."""
        low, high = self.metrics.get(f"{self.primary}_low"), self.metrics.get(f"{self.primary}_high")
        return None if low is None or high is None else (low, high)

    def metric_names(self) -> list[str]:
        """The metrics of this row (their companions left out), in stored order."""
        companions = {f"{name}_{c}" for name in self.metrics for c in COMPANIONS}
        return [k for k in self.metrics if k not in companions]


@dataclass(frozen=True)
class ScoreTable:
    """Every score of a comparison: objective x seed x setting (trained, or the untrained baseline) x metric."""

    rows: list[ScoreRow]
    columns: list[MetricColumn]  # the suite's metrics, the primary first

    def value(self, objective: str, seed: int, setting: Setting, metric: str, untrained: bool = False):
        for row in self.rows:
            if (row.objective, row.seed, row.setting, row.untrained) == (objective, seed, setting, untrained):
                return row.metrics.get(metric)
        return None


@dataclass(frozen=True)
class TrainRecord:
    """What a finished training cost, kept as RUN/train.json."""

    seconds: float  # time in fit, summed over resumes
    images_seen: int
    parameters: int  # of the backbone
    images_per_second: float
    flops_per_image: float = 0.0  # measured training FLOPs of one step / its images (0: not measured)
    flops: float = 0.0  # training FLOPs of the run: flops_per_image x images seen (all ranks)
    steps: int = 0  # optimiser steps
    pretraining_images: int = 0  # of the above, spent by the run this one was tuned from (compare/tuning.py)

    @classmethod
    def from_checkpoint(cls, info: CheckpointRecord, flops_per_image: float = 0.0, pretraining=None) -> "TrainRecord":
        """The run's own cost, plus its pre-training's (a compare.tuning.Pretraining) where it was tuned; FLOPs
        per image are then the average over both stages."""
        if pretraining is None or not pretraining.images_seen:
            return cls(info.train_seconds, info.images_seen, info.backbone_parameters,
                       info.images_seen / max(info.train_seconds, 1e-9), flops_per_image,
                       flops_per_image * info.images_seen, info.global_step)
        images = info.images_seen + pretraining.images_seen
        seconds = info.train_seconds + pretraining.seconds
        flops = flops_per_image * info.images_seen + pretraining.flops
        return cls(seconds, images, info.backbone_parameters, images / max(seconds, 1e-9), flops / images, flops,
                   info.global_step + pretraining.steps, pretraining.images_seen)

    def write(self, run: RunDirectory) -> None:
        write_json_atomic(asdict(self), run.train_record)
