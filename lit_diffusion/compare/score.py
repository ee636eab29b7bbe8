"""Scoring a comparison's runs with the suite's metrics (evaluation.metric): each trained model at its samplers x
NFEs, and its untrained twin at the trained model's best setting, all from one shared noise bank. Scores are
cached in RUN/eval.json per (setting, number of samples), each entry marked with the checkpoint it was computed
from (a run trained further, e.g. a raised budget, is scored again instead of reporting the old model's numbers)
and each value with its metric's fingerprint (a new metric is computed alone; the others are kept); the first 64
samples of each go to RUN/samples/ for the report's grids."""
from __future__ import annotations

import functools
import threading

import torch

from lit_diffusion.compare.card import protocol_card
from lit_diffusion.compare.intervals import BOOTSTRAP_SEED, LEVEL
from lit_diffusion.compare.json_files import read_cache, write_json_atomic
from lit_diffusion.compare.noise_bank import NoiseBank
from lit_diffusion.compare.results import ScoreRow, Setting
from lit_diffusion.compare.suite import ObjectiveEntry, Suite
from lit_diffusion.evaluation.metric import MetricValue, Reference, Samples
from lit_diffusion.generation.latents import LatentCodec, to_images
from lit_diffusion.runs import RunDirectory, read_record

BANK_SEED = 20_251  # the evaluation noise is the same for every objective, sampler and seed
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where evaluation samples and extracts features
GRID_SAMPLES = 64  # samples kept per setting for the report's grids


STOP = threading.Event()  # set: evaluation workers stop at their next score (compare/evaluate.py)
MODEL_LOCK = threading.Lock()  # building a model draws its initial weights from the global RNG: one at a time


class EvaluationStopped(Exception):
    """An evaluation worker stopped because the comparison was interrupted or another worker failed."""


def load_for_scoring(checkpoint, **options):
    """training.loading.load_module, one build at a time (evaluation workers share the global RNG), unless the
    evaluation was stopped."""
    from lit_diffusion.training.loading import load_module

    if STOP.is_set():
        raise EvaluationStopped("evaluation stopped")
    with MODEL_LOCK:
        return load_module(checkpoint, **options)


CHECKPOINT_KEY = "checkpoint"  # in each cache entry: the identity of the checkpoint that was scored
FINGERPRINTS_KEY = "fingerprints"  # in each cache entry: metric name -> the fingerprint its value was computed with


class ScoreCache:
    """RUN/eval.json: {"[untrained/]SAMPLER@NFE/NUM_SAMPLES": metric values, their fingerprints, the NFE used,
    the protocol card and the checkpoint}."""

    def __init__(self, run: RunDirectory, num_samples: int, checkpoint: str | None = None):
        self.run, self.num_samples = run, num_samples
        self.checkpoint = checkpoint if checkpoint is not None else _checkpoint_identity(run)
        entries = read_cache(run.eval_cache)
        # scores of another checkpoint (or of unknown origin) are stale: dropped, so they are never reported
        self.entries = {k: v for k, v in entries.items() if v.get(CHECKPOINT_KEY) == self.checkpoint}

    @staticmethod
    def name(setting: Setting, untrained: bool) -> str:
        return ("untrained/" if untrained else "") + setting.label

    def get(self, setting: Setting, untrained: bool) -> dict | None:
        return self.entries.get(f"{self.name(setting, untrained)}/{self.num_samples}")

    def put(self, setting: Setting, untrained: bool, scores: dict, samples: torch.Tensor) -> None:
        name = self.name(setting, untrained)
        self.run.samples.mkdir(exist_ok=True)
        torch.save(samples[:GRID_SAMPLES].clone(), self.run.sample_file(name.replace("/", "-")))
        self.entries[f"{name}/{self.num_samples}"] = scores | {CHECKPOINT_KEY: self.checkpoint}
        write_json_atomic(self.entries, self.run.eval_cache)


def _checkpoint_identity(run: RunDirectory) -> str | None:
    return read_record(run.last_checkpoint).identity if run.last_checkpoint.is_file() else None


def score_samples(samples: Samples, metrics: list, reference: Reference, bootstrap: int = 0) -> dict:
    """The flat values of `metrics` (MetricValue.flat) and, under FINGERPRINTS_KEY, the fingerprint of each; with
    `bootstrap` replicates, the first metric also gets its bootstrap interval (where it has one)."""
    values, fingerprints = {}, {}
    for i, metric in enumerate(metrics):
        if i == 0 and bootstrap and hasattr(metric, "interval"):
            value = metric.interval(samples, reference, replicates=bootstrap, level=LEVEL, seed=BOOTSTRAP_SEED)
        else:
            value = metric.compute(samples, reference)
        fingerprints[metric.name] = metric.fingerprint
        values |= value.flat(metric.name) if value is not None else {}
    return values | {FINGERPRINTS_KEY: fingerprints}


def sample_and_score(module, suite: Suite, setting: Setting, metrics: list, reference: Reference,
                     num_samples: int | None = None, bootstrap: int = 0) -> tuple[dict, torch.Tensor]:
    """The `metrics` (score_samples; and "nfe": the NFE the sampler used) of `num_samples` (default the suite's)
    samples of the module's EMA network from the shared noise bank, and the samples."""
    if STOP.is_set():
        raise EvaluationStopped("evaluation stopped")
    classes = module.sample_classes
    bank = NoiseBank(module.sample_shape, num_samples or suite.num_samples, seed=BANK_SEED, num_classes=classes)
    samples, labels, used = [], [], setting.nfe
    device = next(module.parameters()).device
    codec = LatentCodec(module.latent) if getattr(module, "latent", None) else None  # latent models: decode
    for batch in bank.generate(module.objective, module.ema.shadow, suite.batch_size, device,
                               sampler=setting.sampler, nfe=setting.nfe, grid=setting.grid, **module.sample_options):
        samples.append(to_images(batch.x0, getattr(module, "latent", None), codec).clamp(-1, 1).cpu())  # scored on pixels
        labels.append(batch.labels)
        used = batch.nfe
    x = torch.cat(samples)
    scored = Samples(x, torch.cat(labels).cpu().to(torch.int64) if classes else None)
    return score_samples(scored, metrics, reference, bootstrap) | {"nfe": used}, x


def stale_metrics(entry: dict, metrics: list, bootstrap: int) -> list:
    """The metrics whose cached value is missing or of another fingerprint (entries written before fingerprints
    existed have none: every metric is scored again), and the first metric when its interval is asked but
    missing. A metric that does not apply (IS without a classifier head) is cached as its fingerprint alone."""
    known = entry.get(FINGERPRINTS_KEY, {})
    stale = [m for m in metrics if known.get(m.name) != m.fingerprint]
    first = metrics[0]
    if bootstrap and first not in stale and hasattr(first, "interval") and f"{first.name}_low" not in entry:
        stale.insert(0, first)
    return stale


def _kept(entry: dict, metrics: list) -> dict:
    """The entry's values of `metrics`, in their order."""
    return {k: entry[k] for m in metrics for k in MetricValue.keys(m.name) if k in entry}


def score_run(suite: Suite, entry: ObjectiveEntry, seed: int, metrics: list, reference: Reference,
              log=print) -> list[ScoreRow]:
    """One row per sampler x NFE of the entry, then the untrained row at the trained model's best setting (by the
    first metric). Only the metrics whose cached value is stale are computed."""
    run = suite.run(entry.name, seed)
    cache = ScoreCache(run, suite.num_samples)
    primary = metrics[0]

    def score(setting: Setting, untrained: bool, make_module) -> ScoreRow:
        scores = cache.get(setting, untrained) or {}
        bootstrap = 0 if untrained else suite.bootstrap  # the untrained baseline never competes for a winner
        stale = stale_metrics(scores, metrics, bootstrap)
        if stale or "protocol" not in scores:
            module = make_module()
            fresh, x = sample_and_score(module, suite, setting, stale, reference,
                                        bootstrap=bootstrap if stale and stale[0] is primary else 0)
            valid = [m for m in metrics if m not in stale]
            fingerprints = {m.name: m.fingerprint for m in valid} | fresh.pop(FINGERPRINTS_KEY)
            scores = _kept(scores, valid) | _kept(fresh, stale) | {"nfe": fresh["nfe"], FINGERPRINTS_KEY: fingerprints}
            scores["protocol"] = protocol_card(suite, metrics, reference, setting, module, suite.num_samples, untrained)
            cache.put(setting, untrained, scores, x)
            log(f"[{entry.name} seed {seed}] {cache.name(setting, untrained)}: {primary.label} "
                f"{scores[primary.name]:.3f}")
        return ScoreRow(entry.name, seed, setting, untrained, _kept(scores, metrics), int(scores["nfe"]),
                        scores["protocol"], primary.name)

    trained = functools.cache(lambda: load_for_scoring(run.last_checkpoint).to(DEVICE))  # loaded once, if needed
    rows = [score(Setting.from_suite(key, nfe), False, trained) for key, nfes in entry.samplers.items() for nfe in nfes]
    best = min(rows, key=lambda row: row.score if primary.lower_is_better else -row.score)
    untrained = lambda: load_for_scoring(run.last_checkpoint, untrained_seed=seed).to(DEVICE)  # noqa: E731
    return rows + [score(best.setting, True, untrained)]
