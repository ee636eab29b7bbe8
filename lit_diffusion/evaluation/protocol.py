"""The protocol card: everything needed to reproduce one score, printed and stored with it.

A FID that cannot be reproduced is usually a FID whose protocol was not written down (which network
and weights, which reference images and how many, how many samples, how they were resized and
generated). ``ProtocolCard`` holds those fields; ``from_evaluation`` fills the evaluator and
reference part from the feature network and the reference statistics (reference.py), the caller
the generation part. ``as_dict()`` goes into eval.json and W&B, ``markdown()`` into report.md.
"""
from __future__ import annotations

import dataclasses
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from .feature_network import FeatureNetwork
from .reference import check_reference, stats_sha256

_MISSING = "—"


@dataclass(frozen=True)
class ProtocolCard:
    """The protocol of one score."""

    evaluator: str
    """Feature network name (e.g. inception-v3-tf-fid)."""
    weights_sha256: str
    """sha256 of the feature network's weights."""
    resize: str
    """How images reach the network's input size."""
    reference_dataset: str
    """Fingerprint of the reference dataset (its dataset.json)."""
    reference_split: str
    """Name of the reference split (its folder)."""
    reference_count: int
    """Real images in the reference statistics."""
    reference_stats_sha256: str
    """sha256 of the reference mean and covariance."""
    num_generated: int
    """Generated (evaluated) images the score is computed from."""
    sampler: str | None = None
    grid: str | None = None
    """Time grid / schedule of the sampler."""
    nfe: int | None = None
    """Network evaluations per sample."""
    guidance: float | None = None
    """Classifier-free guidance scale (None: unguided)."""
    ema: str | None = None
    """Which weights were sampled: an EMA profile (e.g. "sigma_rel=0.05") or "raw"."""
    x0_threshold: str | None = None
    """x0 clipping ("clip") or dynamic thresholding ("dynamic") of the predictions while sampling (None: none)."""
    seeds: tuple[int, ...] = ()
    command: str = field(default_factory=lambda: shlex.join(sys.argv))
    """The exact command that produced the score (default: this process's command line)."""

    def __post_init__(self):
        if self.reference_count < 1 or self.num_generated < 1:
            raise ValueError(f"ProtocolCard: reference_count and num_generated must be >= 1, got "
                             f"{self.reference_count} and {self.num_generated}")
        if self.nfe is not None and self.nfe < 1:
            raise ValueError(f"ProtocolCard: nfe must be >= 1 or None, got {self.nfe}")
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @classmethod
    def from_evaluation(cls, feature_net: FeatureNetwork, reference: dict, *, num_generated: int,
                        seeds: Sequence[int] = (), command: str | None = None, **generation: Any) -> "ProtocolCard":
        """Evaluator and reference fields from ``feature_net`` and ``reference`` (from ``reference_stats``; checked
        to belong to ``feature_net``); ``generation``: sampler, grid, nfe, guidance, ema, x0_threshold."""
        check_reference(reference, feature_net)
        for key in ("dataset_fingerprint", "num", "mu", "sigma"):
            if key not in reference:
                raise ValueError(f"ProtocolCard.from_evaluation: reference lacks {key!r} (make it with reference_stats)")
        extra = {} if command is None else {"command": command}
        return cls(evaluator=feature_net.name, weights_sha256=feature_net.weights_sha256, resize=feature_net.resize,
                   reference_dataset=reference["dataset_fingerprint"], reference_split=reference.get("split", "?"),
                   reference_count=int(reference["num"]),
                   reference_stats_sha256=reference.get("stats_sha256") or stats_sha256(reference["mu"],
                                                                                        reference["sigma"]),
                   num_generated=num_generated, seeds=tuple(seeds), **generation, **extra)

    def with_run(self, **fields: Any) -> "ProtocolCard":
        """A copy with some fields replaced (e.g. the sampler and NFE of one row)."""
        return dataclasses.replace(self, **fields)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        return d

    def markdown(self) -> str:
        """A two-column Markdown table (hashes shortened to 16 hex digits; as_dict keeps them whole)."""
        rows = [("evaluator", self.evaluator), ("weights sha256", self.weights_sha256[:16]),
                ("resize", self.resize),
                ("reference", f"split {self.reference_split}, {self.reference_count} images, dataset "
                              f"{self.reference_dataset[:16]}"),
                ("reference statistics sha256", self.reference_stats_sha256[:16]),
                ("generated samples", self.num_generated), ("sampler", self.sampler), ("grid", self.grid),
                ("NFE", self.nfe), ("guidance", self.guidance), ("EMA", self.ema), ("x0 threshold", self.x0_threshold),
                ("seeds", ", ".join(map(str, self.seeds)) or None), ("command", f"`{self.command}`")]
        lines = ["| protocol | |", "|---|---|"]
        for name, value in rows:
            text = _MISSING if value is None else str(value).replace("|", "\\|")
            lines.append(f"| {name} | {text} |")
        return "\n".join(lines)
