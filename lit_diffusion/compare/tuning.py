"""Runs that start from another run of the suite (`tune_from`: consistency tuning from the suite's flow-matching
run, Geng et al. 2024). The pre-training is the earlier run's checkpoint with the most images seen up to
`tune_from.images`; the tuned run trains for the rest of the suite's image budget, and its records and curve
points count both stages, so that it is compared at the same total images as every other run. Runs chain
(progressive distillation's rounds: pd2 tuned from pd4 tuned from ddpm): the pre-training is then the whole chain,
each stage charged at its own measured FLOPs per image, and `tune_from.images` counts the whole chain too."""
from __future__ import annotations

from dataclasses import dataclass

from lit_diffusion.compare.suite import ObjectiveEntry, Suite, SuiteError
from lit_diffusion.runs import CheckpointRecord, read_record


@dataclass(frozen=True)
class Pretraining:
    """What the stage before this run cost (zero for a run from scratch)."""

    images_seen: int = 0
    seconds: float = 0.0
    flops: float = 0.0
    steps: int = 0
    checkpoint: str | None = None


def source_entry(suite: Suite, entry: ObjectiveEntry) -> ObjectiveEntry:
    """The earlier entry this one is tuned from (the suite checked that it exists and comes first)."""
    return next(e for e in suite.objectives if e.name == entry.tune_from.objective)


def pretraining_checkpoint(suite: Suite, entry: ObjectiveEntry, seed: int) -> CheckpointRecord:
    """The earlier run's checkpoint this run starts from: the most images seen up to `tune_from.images`, counting
    the earlier run's own pre-training when it was tuned too (its checkpoints count only its own images)."""
    source = entry.tune_from
    run = suite.run(source.objective, seed)
    before = pretraining(suite, source_entry(suite, entry), seed).images_seen
    infos = [read_record(p) for p in run.kept_checkpoints()]  # not a stop signal's: it falls anywhere
    fitting = [i for i in infos if 0 < i.images_seen and before + i.images_seen <= source.images]
    if not fitting:
        seen = sorted({before + i.images_seen for i in infos})
        raise SuiteError(f"{suite.source}: objectives {entry.name!r}: run {run.root} has no checkpoint with at most "
                         f"tune_from.images = {source.images:,} images (its checkpoints have seen {seen}); set "
                         "tune_from.images to one of those, or keep more checkpoints (evaluation.curve_points)")
    return max(fitting, key=lambda i: (i.images_seen, i.global_step))


def pretraining(suite: Suite, entry: ObjectiveEntry, seed: int, flops_per_image: dict[str, float] | None = None
                ) -> Pretraining:
    """The pre-training of this run: every stage before it (a chain of tuned runs, recursively), each stage's
    FLOPs from its own objective's measured FLOPs per image."""
    if entry.tune_from is None:
        return Pretraining()
    before = pretraining(suite, source_entry(suite, entry), seed, flops_per_image)
    info = pretraining_checkpoint(suite, entry, seed)
    per_image = (flops_per_image or {}).get(entry.tune_from.objective, 0.0)
    return Pretraining(before.images_seen + info.images_seen, before.seconds + info.train_seconds,
                       before.flops + per_image * info.images_seen, before.steps + info.global_step, str(info.path))


def own_images(suite: Suite, entry: ObjectiveEntry, seed: int) -> int:
    """The images this run trains on itself: the suite's budget less its pre-training's."""
    return suite.max_images_for(entry.name) - pretraining(suite, entry, seed).images_seen
