"""Quality vs compute: the suite's first metric at a few checkpoints along each run (the numbered checkpoints the compare keeps, and
the last), scored at the objective's default setting (its first sampler at that sampler's largest NFE) with a
cheaper sample count than the final table (`evaluation.curve_samples`, stated as such in the report), against
the training FLOPs (measured FLOPs per image x images seen) and the wall time in fit at each checkpoint.
Scores are cached in RUN/curve.json by checkpoint content and metric fingerprint."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from lit_diffusion.compare.json_files import read_cache, write_json_atomic
from lit_diffusion.compare.results import Setting
from lit_diffusion.compare.suite import ObjectiveEntry, Suite
from lit_diffusion.compare.tuning import Pretraining
from lit_diffusion.runs import read_record
from lit_diffusion.runs.layout import kept_checkpoints


@dataclass(frozen=True)
class CurvePoint:
    objective: str
    seed: int
    step: int
    images_seen: int
    seconds: float  # wall time in fit up to this checkpoint
    flops: float  # training FLOPs up to this checkpoint (0: not measured)
    score: float  # the value of `metric`
    num_samples: int
    setting: str  # sampler@NFE
    metric: str = ""  # the metric's name (the suite's first)


def default_setting(entry: ObjectiveEntry) -> Setting:
    """The objective's default setting for the curve: its first sampler at that sampler's largest NFE."""
    key, nfes = next(iter(entry.samplers.items()))
    return Setting.from_suite(key, max(nfes))


def curve_checkpoints(checkpoints: Path, points: int) -> list:
    """Up to `points` infos of the run's kept checkpoints (runs.layout.kept_checkpoints: not a stop signal's),
    evenly spread over its steps and always ending at the furthest one (one per step: last.ckpt and a numbered
    file of the same step count once)."""
    by_step = {}
    for path in kept_checkpoints(checkpoints):
        info = read_record(path)
        if info.global_step > 0:
            by_step.setdefault(info.global_step, info)
    steps = sorted(by_step)
    if points < 1 or not steps:
        return []
    if len(steps) > points:  # evenly spaced picks, the last one included
        steps = [steps[round(i * (len(steps) - 1) / (points - 1))] for i in range(points)] if points > 1 else steps[-1:]
    return [by_step[s] for s in dict.fromkeys(steps)]


def score_curve(suite: Suite, entry: ObjectiveEntry, seed: int, flops_per_image: float, metric, reference,
                log=print, start: Pretraining = Pretraining()) -> list[CurvePoint]:
    """`metric` at the run's kept checkpoints; `start`: a tuned run's pre-training, added to each point's compute."""
    from lit_diffusion.compare.score import DEVICE, load_for_scoring, sample_and_score

    run = suite.run(entry.name, seed)
    cache_file = run.root / "curve.json"
    cache = read_cache(cache_file)
    setting, points = default_setting(entry), []
    for info in curve_checkpoints(run.checkpoints, suite.curve_points):
        key = f"{info.identity}/{setting.label}/{suite.curve_samples}/{metric.fingerprint}"
        if key not in cache:
            module = load_for_scoring(info.path).to(DEVICE)
            scores, _ = sample_and_score(module, suite, setting, [metric], reference, num_samples=suite.curve_samples)
            cache[key] = {"score": scores[metric.name], "step": info.global_step}
            write_json_atomic(cache, cache_file)
            log(f"[{entry.name} seed {seed}] step {info.global_step}, {setting.label}, {suite.curve_samples} samples: "
                f"{metric.label} {scores[metric.name]:.3f}")
        points.append(CurvePoint(entry.name, seed, start.steps + info.global_step, start.images_seen + info.images_seen,
                                 start.seconds + info.train_seconds, start.flops + flops_per_image * info.images_seen,
                                 cache[key]["score"], suite.curve_samples, setting.label, metric.name))
    return points


def write_curve(points: list[CurvePoint], path: Path) -> None:
    write_json_atomic([asdict(p) for p in points], path)
