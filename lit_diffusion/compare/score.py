"""Scoring a comparison's runs: each trained model at its samplers x NFEs, and its untrained twin at the
trained model's best setting, all from one shared noise bank. Scores are cached in RUN/eval.json per
(setting, number of samples), each entry marked with the checkpoint it was computed from: a run trained further
(a raised budget) is scored again instead of reporting the old model's numbers; the first 64 samples of each go to RUN/samples/ for the report's grids."""
from __future__ import annotations

import functools
import json

import torch

from lit_diffusion.compare.card import protocol_card
from lit_diffusion.compare.noise_bank import NoiseBank
from lit_diffusion.compare.results import ScoreRow, Setting
from lit_diffusion.compare.suite import ObjectiveEntry, Suite
from lit_diffusion.generation.latents import LatentCodec, to_images
from lit_diffusion.runs import RunDirectory, read_record

BANK_SEED = 20_251  # the evaluation noise is the same for every objective, sampler and seed
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where evaluation samples and extracts features
GRID_SAMPLES = 64  # samples kept per setting for the report's grids


CHECKPOINT_KEY = "checkpoint"  # in each cache entry: the identity of the checkpoint that was scored


class ScoreCache:
    """RUN/eval.json: {"[untrained/]SAMPLER@NFE/NUM_SAMPLES": metrics, the NFE used and the checkpoint}."""

    def __init__(self, run: RunDirectory, num_samples: int, checkpoint: str | None = None):
        self.run, self.num_samples = run, num_samples
        self.checkpoint = checkpoint if checkpoint is not None else _checkpoint_identity(run)
        entries = json.loads(run.eval_cache.read_text()) if run.eval_cache.is_file() else {}
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
        self.run.eval_cache.write_text(json.dumps(self.entries, indent=1))


def _checkpoint_identity(run: RunDirectory) -> str | None:
    return read_record(run.last_checkpoint).identity if run.last_checkpoint.is_file() else None


def sample_and_score(module, suite: Suite, setting: Setting, feature_net, reference, num_samples: int | None = None,
                     bootstrap: int = 0) -> tuple[dict, torch.Tensor]:
    """Metrics (and "nfe": the NFE the sampler used) of `num_samples` (default the suite's) samples of the
    module's EMA network from the shared noise bank, and the samples. With `bootstrap` replicates, also the
    bootstrap interval of FD over the generated samples ("fd_low", "fd_high", "fd_level")."""
    from lit_diffusion.evaluation.metrics import evaluate_samples

    classes = module.sample_classes
    bank = NoiseBank(module.sample_shape, num_samples or suite.num_samples, seed=BANK_SEED, num_classes=classes)
    samples, labels, used = [], [], setting.nfe
    device = next(module.parameters()).device
    codec = LatentCodec(module.latent) if getattr(module, "latent", None) else None  # latent models: decode
    for batch in bank.generate(module.objective, module.ema.shadow, suite.batch_size, device,
                               sampler=setting.sampler, nfe=setting.nfe, grid=setting.grid, **module.sample_options):
        samples.append(to_images(batch.x0, getattr(module, "latent", None), codec).clamp(-1, 1).cpu())  # FD on pixels
        labels.append(batch.labels)
        used = batch.nfe
    x = torch.cat(samples)
    metrics = evaluate_samples(x, feature_net, reference, labels=torch.cat(labels) if classes else None)
    metrics = {k: None if v is None else float(v) for k, v in metrics.items()}
    if bootstrap:
        from lit_diffusion.compare.intervals import fd_interval

        metrics |= fd_interval(x, feature_net, reference, bootstrap)
    return metrics | {"nfe": used}, x


def score_run(suite: Suite, entry: ObjectiveEntry, seed: int, feature_net, reference, log=print) -> list[ScoreRow]:
    """One row per sampler x NFE of the entry, then the untrained row at the trained model's best setting."""
    from lit_diffusion.training.loading import load_module

    run = suite.run(entry.name, seed)
    cache = ScoreCache(run, suite.num_samples)

    def score(setting: Setting, untrained: bool, make_module) -> ScoreRow:
        scores = cache.get(setting, untrained)
        # entries written before intervals and protocol cards existed are scored again
        bootstrap = 0 if untrained else suite.bootstrap  # the untrained baseline never competes for a winner
        if scores is None or "protocol" not in scores or (bootstrap and "fd_low" not in scores):
            module = make_module()
            scores, x = sample_and_score(module, suite, setting, feature_net, reference, bootstrap=bootstrap)
            scores["protocol"] = protocol_card(suite, feature_net, reference, setting, module, suite.num_samples,
                                               untrained)
            cache.put(setting, untrained, scores, x)
            log(f"[{entry.name} seed {seed}] {cache.name(setting, untrained)}: FD {scores['fd']:.3f}")
        metrics = {k: v for k, v in scores.items() if k not in ("nfe", CHECKPOINT_KEY, "protocol")}
        return ScoreRow(entry.name, seed, setting, untrained, metrics, int(scores["nfe"]), scores["protocol"])

    trained = functools.cache(lambda: load_module(run.last_checkpoint).to(DEVICE))  # loaded once, only if needed
    rows = [score(Setting.from_suite(key, nfe), False, trained) for key, nfes in entry.samplers.items() for nfe in nfes]
    best = min(rows, key=lambda row: row.fd)
    untrained = lambda: load_module(run.last_checkpoint, untrained_seed=seed).to(DEVICE)  # noqa: E731
    return rows + [score(best.setting, True, untrained)]
