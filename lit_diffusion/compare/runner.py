"""Run a comparison suite: train every objective x seed on the shared budget (skipping finished runs,
resuming unfinished ones), evaluate each at its samplers x NFEs on one shared noise bank, and write the
report. `lit-diffusion compare -c SUITE.yaml`."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from lit_diffusion.compare.noise_bank import NoiseBank
from lit_diffusion.compare.report import write_report
from lit_diffusion.compare.suite import Suite, load_suite

BANK_SEED = 20_251  # the evaluation noise is the same for every objective, sampler and seed


def _cli(args: list[str]) -> int:
    from lit_diffusion.cli import main as cli_main  # the same entry points a user types

    return cli_main(args)


def finished(suite: Suite, run_dir: Path) -> bool:
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file() or not (run_dir / "train.json").is_file():
        return False
    return torch.load(ckpt, map_location="cpu", weights_only=False).get("images_seen", 0) >= suite.max_images


def train(suite: Suite, entry, seed: int, log=print) -> dict:
    run_dir = suite.run_dir(entry.name, seed)
    if finished(suite, run_dir):
        log(f"[{entry.name} seed {seed}] finished earlier: not trained again")
        return json.loads((run_dir / "train.json").read_text())
    resume = (run_dir / "checkpoints").is_dir()
    ckpt_path = run_dir / "checkpoints" / "last.ckpt"
    images_before = torch.load(ckpt_path, map_location="cpu", weights_only=False).get("images_seen", 0) if ckpt_path.is_file() else 0
    args = ["fit", "-c", suite.base_config, "-c", entry.config, "--data.train_shards", suite.shards,
            "--trainer.default_root_dir", str(run_dir), "--model.max_images", str(suite.max_images),
            "--seed_everything", str(seed), "--model.seed", str(seed), "--preview_every_n_steps", "0",
            *suite.overrides, *entry.overrides]
    if suite.max_time:
        args += ["--trainer.max_time", suite.max_time]
    if resume:
        args += ["--ckpt_path", "last"]
    log(f"[{entry.name} seed {seed}] training{' (resuming)' if resume else ''}: lit-diffusion {' '.join(args)}")
    start = time.perf_counter()
    if _cli(args) != 0:
        raise RuntimeError(f"training {entry.name} (seed {seed}) failed; see {run_dir}")
    seconds = time.perf_counter() - start
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    params = sum(v.numel() for k, v in ckpt["state_dict"].items() if k.startswith("backbone."))
    # throughput of what this call trained (a resumed run's earlier part was timed by a process that died)
    info = {"seconds": seconds, "images_seen": int(ckpt["images_seen"]), "parameters": params,
            "images_per_second": (ckpt["images_seen"] - images_before) / max(seconds, 1e-9), "resumed": resume}
    (run_dir / "train.json").write_text(json.dumps(info, indent=1))
    return info


def evaluate(suite: Suite, entry, seed: int, feature_net, reference, log=print) -> dict:
    """{f"{sampler}@{nfe}": metrics}, cached in RUN/eval.json per (sampler, nfe, num_samples)."""
    from lit_diffusion.evaluation.metrics import evaluate_samples
    from lit_diffusion.training.loading import load_module

    run_dir = suite.run_dir(entry.name, seed)
    cache_path = run_dir / "eval.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    module = load_module(run_dir / "checkpoints" / "last.ckpt")
    classes = getattr(module.backbone, "num_classes", 0) if module.conditional else 0
    bank = NoiseBank(module.sample_shape, suite.num_samples, seed=BANK_SEED, num_classes=classes)
    results = {}
    for sampler, nfes in entry.samplers.items():
        for nfe in nfes:
            key = f"{sampler}@{nfe}"
            if f"{key}/{suite.num_samples}" in cache:
                results[key] = cache[f"{key}/{suite.num_samples}"]
                continue
            samples, labels, used = [], [], nfe
            for _, noise, label in bank.batches(suite.batch_size):
                out = module.objective.sample_with_info(module.ema.shadow, noise, sampler=sampler, nfe=nfe, cond=label,
                                                        generator=torch.Generator().manual_seed(BANK_SEED))
                samples.append(out.x0.clamp(-1, 1))
                labels.append(label)
                used = out.nfe
            x = torch.cat(samples)
            metrics = evaluate_samples(x, feature_net, reference, labels=torch.cat(labels) if classes else None)
            metrics = {k: float(v) for k, v in metrics.items()} | {"nfe": used}
            results[key] = cache[f"{key}/{suite.num_samples}"] = metrics
            cache_path.write_text(json.dumps(cache, indent=1))
            log(f"[{entry.name} seed {seed}] {key}: FD {metrics['fd']:.3f}")
        grid_path = run_dir / "grid.pt"
        if not grid_path.exists():
            torch.save(x[:64], grid_path)
    return results


def run_suite(suite: Suite, log=print) -> Path:
    from lit_diffusion.evaluation.features import load_or_train_classifier
    from lit_diffusion.evaluation.reference import reference_stats

    out = Path(suite.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (Path(suite.shards) / "dataset.json").is_file():
        if not suite.build:
            raise FileNotFoundError(f"{suite.source}: shards {suite.shards} not found and no 'build' given")
        if _cli(["data", "build", *suite.build, "--out", suite.shards, "--no-progress"]) != 0:
            raise RuntimeError(f"building {suite.shards} failed")
    trained = {(e.name, s): train(suite, e, s, log) for e in suite.objectives for s in suite.seeds}
    feature_net = load_or_train_classifier(suite.shards, cache_dir=str(out / "cache"))
    reference = reference_stats(feature_net, suite.shards, cache_dir=str(out / "cache"))
    evaluated = {(e.name, s): evaluate(suite, e, s, feature_net, reference, log) for e in suite.objectives for s in suite.seeds}
    return write_report(suite, trained, evaluated, feature_net, reference)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lit-diffusion compare", description=__doc__)
    p.add_argument("-c", "--config", required=True, help="suite YAML, e.g. experiments/compare/quickstart.yaml")
    args = p.parse_args(argv)
    report = run_suite(load_suite(args.config))
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
