"""The EMA-length sweep of a comparison (issue 12 item 6; Karras et al. 2024, EDM2 sec. 3): each run's EMA
reconstructed post hoc from its snapshots (training.posthoc_ema) at every sigma_rel of `evaluation.ema_sweep`,
scored at the objective's default setting (curve.default_setting) with the final table's sample count. Runs
without snapshots are skipped and said so. Scores (of the suite's first metric) are cached in RUN/ema_sweep.json
by checkpoint content and metric fingerprint."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from lit_diffusion.compare.curve import default_setting
from lit_diffusion.compare.json_files import read_cache, write_json_atomic
from lit_diffusion.compare.suite import ObjectiveEntry, Suite
from lit_diffusion.runs import read_record

SNAPSHOT_EVERY_FRACTION = 0.1  # the compare switches snapshots on: one every 10% of a run's steps


@dataclass(frozen=True)
class SweepPoint:
    objective: str
    seed: int
    sigma_rel: float
    setting: str
    score: float  # the value of the suite's first metric
    residual: float  # relative L2 error of the reconstructed profile (0: exact, EDM2 App. C.2)


def snapshot_callback(every_n_steps: int) -> dict:
    """The fit-config callback entry that stores EDM2's two default profiles every `every_n_steps` steps."""
    return {"class_path": "lit_diffusion.training.posthoc_ema.PostHocEMASnapshots",
            "init_args": {"sigma_rels": [0.05, 0.10], "every_n_steps": int(every_n_steps)}}


def sweep_run(suite: Suite, entry: ObjectiveEntry, seed: int, metric, reference, log=print) -> list[SweepPoint]:
    from lit_diffusion.compare.score import DEVICE, load_for_scoring, sample_and_score
    from lit_diffusion.training.posthoc_ema import load_posthoc_ema

    run = suite.run(entry.name, seed)
    snapshots = run.root / "ema_snapshots"
    if not suite.ema_sweep or not snapshots.is_dir() or not any(snapshots.iterdir()):
        if suite.ema_sweep:
            log(f"[{entry.name} seed {seed}] no post-hoc EMA snapshots in {snapshots}: EMA sweep skipped")
        return []
    identity = read_record(run.last_checkpoint).identity
    cache_file = run.root / "ema_sweep.json"
    cache = read_cache(cache_file)
    setting, points = default_setting(entry), []
    for sigma_rel in suite.ema_sweep:
        key = f"{identity}/{sigma_rel:g}/{setting.label}/{suite.num_samples}/{metric.fingerprint}"
        if key not in cache:
            module = load_for_scoring(run.last_checkpoint)
            live = {k: v.clone() for k, v in module.ema.shadow.state_dict().items()}
            info = load_posthoc_ema(module, run.root, sigma_rel=sigma_rel)
            score = table_score(suite, run, setting, metric, live, module.ema.shadow.state_dict())
            if score is None:
                scores, _ = sample_and_score(module.to(DEVICE), suite, setting, [metric], reference)
                score = scores[metric.name]
            cache[key] = {"score": score, "residual": float(getattr(info, "relative_residual", float("nan")))}
            write_json_atomic(cache, cache_file)
            log(f"[{entry.name} seed {seed}] post-hoc EMA sigma_rel {sigma_rel:g}, {setting.label}: "
                f"{metric.label} {score:.3f}")
        points.append(SweepPoint(entry.name, seed, float(sigma_rel), setting.label, cache[key]["score"],
                                 cache[key]["residual"]))
    return points


def table_score(suite: Suite, run, setting, metric, live: dict, reconstructed: dict) -> float | None:
    """The final table's score of `setting` when the reconstruction is the run's own EMA bit for bit (the sigma_rel
    it trained with, stored as a snapshot at its last step): the table already scored these very weights on the
    same noise, so it is not computed twice. None otherwise."""
    from lit_diffusion.compare.score import FINGERPRINTS_KEY, ScoreCache

    if live.keys() != reconstructed.keys() or not all(torch.equal(live[k], reconstructed[k].to(live[k].device))
                                                      for k in live):
        return None
    entry = ScoreCache(run, suite.num_samples).get(setting, untrained=False) or {}
    if entry.get(FINGERPRINTS_KEY, {}).get(metric.name) != metric.fingerprint or metric.name not in entry:
        return None
    return float(entry[metric.name])
