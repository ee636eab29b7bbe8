"""Run a comparison suite: train every objective x seed on the shared budget (skipping finished runs,
resuming unfinished ones), evaluate each at its samplers x NFEs on one shared noise bank, and write the
report. `lit-diffusion compare -c SUITE.yaml`."""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from lit_diffusion.compare.noise_bank import NoiseBank
from lit_diffusion.compare.report import write_report
from lit_diffusion.compare.suite import Suite, load_suite

BANK_SEED = 20_251  # the evaluation noise is the same for every objective, sampler and seed
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # where evaluation samples and extracts features


def _cli(args: list[str]) -> int:
    from lit_diffusion.cli import main as cli_main  # the same entry points a user types

    return cli_main(args)


def _read_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False, mmap=True)  # only a few fields are read


def finished(suite: Suite, run_dir: Path) -> bool:
    """A run is finished when its last checkpoint has seen the image budget or, under a wall-clock budget, has
    trained that long (Lightning's timer stops at the first step past it; 2% slack for its own start-up)."""
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        return False
    state = _read_checkpoint(ckpt)
    if suite.max_time_seconds and state.get("train_seconds", 0.0) >= 0.98 * suite.max_time_seconds:
        return True
    return state.get("images_seen", 0) >= suite.max_images


def fit_args(suite: Suite, entry, seed: int) -> list[str]:
    """The `lit-diffusion fit` arguments (without the subcommand) of one run of the suite."""
    args = ["-c", suite.base_config, "-c", entry.config, "--data.train_shards", suite.shards,
            "--trainer.default_root_dir", str(suite.run_dir(entry.name, seed)),
            "--model.max_images", str(suite.max_images), "--seed_everything", str(seed), "--model.seed", str(seed),
            "--preview_every_n_steps", "0", *suite.overrides, *entry.overrides]
    if suite.max_time:
        args += ["--trainer.max_time", suite.max_time]
    return args


def record_training(suite: Suite, entry, seed: int) -> dict:
    """train.json from the last checkpoint: wall time in fit (summed over resumes), images, parameters."""
    run_dir = suite.run_dir(entry.name, seed)
    ckpt = _read_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    seconds = float(ckpt.get("train_seconds", 0.0))
    params = sum(v.numel() for k, v in ckpt["state_dict"].items() if k.startswith("backbone."))
    info = {"seconds": seconds, "images_seen": int(ckpt["images_seen"]), "parameters": params,
            "images_per_second": ckpt["images_seen"] / max(seconds, 1e-9)}
    (run_dir / "train.json").write_text(json.dumps(info, indent=1))
    return info


def _progress(run_dir: Path, max_images: int) -> str | None:
    """"images seen of the budget, loss" from the newest CSV log of a run (flushed every few dozen steps)."""
    logs = sorted((run_dir / "csv").glob("version_*/metrics.csv"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return None
    lines = logs[-1].read_text().splitlines()
    if len(lines) < 2:
        return None
    row = dict(zip(lines[0].split(","), lines[-1].split(",")))
    if not row.get("train/images_seen") or not row.get("train/loss"):
        return None
    seen = int(float(row["train/images_seen"]))
    return f"{seen:,} / {max_images:,} images ({100 * seen / max_images:.0f}%), loss {float(row['train/loss']):.4f}"


def train_locally(suite: Suite, entry, seed: int, log=print, poll_seconds: float = 10.0) -> None:
    """One training in its own process (memory and threads start clean each time, as on a cluster); its output
    goes to RUN/train.log, and a progress line every `poll_seconds` here."""
    run_dir = suite.run_dir(entry.name, seed)
    resume = (run_dir / "checkpoints").is_dir()
    args = ["fit", *fit_args(suite, entry, seed)] + (["--ckpt_path", "last"] if resume else [])
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train.log"
    log(f"[{entry.name} seed {seed}] training{' (resuming)' if resume else ''} to {suite.max_images:,} images, "
        f"log {log_path}:\n  lit-diffusion {' '.join(args)}")
    # the child uses as many threads as this process (one per pytest-xdist worker, all cores otherwise)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads())))
    with open(log_path, "a") as out:
        child = subprocess.Popen([sys.executable, "-m", "lit_diffusion.cli", *args], stdout=out,
                                 stderr=subprocess.STDOUT, env=env)
        shown = None
        try:
            while True:
                try:
                    code = child.wait(timeout=poll_seconds)
                    break
                except subprocess.TimeoutExpired:
                    progress = _progress(run_dir, suite.max_images)
                    if progress and progress != shown:
                        log(f"[{entry.name} seed {seed}] {progress}")
                        shown = progress
        finally:
            if child.poll() is None:  # interrupted here: stop the child too (its last checkpoint stays)
                child.terminate()
                child.wait()
    if code != 0 or not finished(suite, run_dir):
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise RuntimeError(f"training {entry.name} (seed {seed}) failed with exit status {code}; the last lines of "
                           f"{log_path}:\n{tail}\nIts checkpoints stay in {run_dir}: run the suite again to resume it")


def train_all(suite: Suite, log=print) -> dict:
    """Train every unfinished run (locally in turn, or as one SLURM array) and return {(name, seed): info}."""
    runs = [(e, s) for e in suite.objectives for s in suite.seeds]
    if suite.launcher == "slurm":
        from lit_diffusion.compare import slurm_array

        job_id = slurm_array.earlier_array(suite)
        if job_id:
            log(f"[slurm] job array {job_id} from an earlier start is still running: waiting for it")
            slurm_array.wait_for_array(job_id, log)
    pending = []
    for entry, seed in runs:
        if finished(suite, suite.run_dir(entry.name, seed)):
            log(f"[{entry.name} seed {seed}] finished earlier: not trained again")
        else:
            pending.append((entry, seed))
    if pending and suite.launcher == "slurm":
        job_id = slurm_array.submit_array(suite, [(e, s, fit_args(suite, e, s)) for e, s in pending], log)
        slurm_array.wait_for_array(job_id, log)
        failed = [(e, s) for e, s in pending if not finished(suite, suite.run_dir(e.name, s))]
        if failed:
            where = "; ".join(f"{e.name} seed {s}: {slurm_array.task_log(suite, e.name, s)}" for e, s in failed)
            raise RuntimeError(f"job array {job_id}: {len(failed)} training(s) did not finish ({where}); run the "
                               "suite again to resubmit them (they resume from their last checkpoint)")
    else:
        for entry, seed in pending:
            train_locally(suite, entry, seed, log)
    return {(e.name, s): record_training(suite, e, s) for e, s in runs}


def _sample_and_score(module, suite: Suite, sampler: str, nfe: int, feature_net, reference) -> tuple[dict, torch.Tensor]:
    """sampler: a sampler name, or "name:grid" to sample on another time grid than the sampler's default."""
    from lit_diffusion.evaluation.metrics import evaluate_samples

    sampler, _, grid = sampler.partition(":")
    device = next(module.parameters()).device
    classes = getattr(module.backbone, "num_classes", 0) if module.conditional else 0
    bank = NoiseBank(module.sample_shape, suite.num_samples, seed=BANK_SEED, num_classes=classes)
    samples, labels, used = [], [], nfe
    for _, noise, label in bank.batches(suite.batch_size):
        out = module.objective.sample_with_info(module.ema.shadow, noise.to(device), sampler=sampler, nfe=nfe,
                                                cond=label.to(device), grid=grid or None,
                                                generator=torch.Generator(device).manual_seed(BANK_SEED))
        samples.append(out.x0.clamp(-1, 1).cpu())
        labels.append(label)
        used = out.nfe
    x = torch.cat(samples)
    metrics = evaluate_samples(x, feature_net, reference, labels=torch.cat(labels) if classes else None)
    return {k: float(v) for k, v in metrics.items()} | {"nfe": used}, x


def evaluate(suite: Suite, entry, seed: int, feature_net, reference, log=print) -> dict:
    """{"sampler@nfe": metrics} for every sampler and NFE of the entry, and "untrained": the same model
    freshly initialised, at the trained model's best sampler@NFE. Cached in RUN/eval.json per
    (key, num_samples); the samples of each key go to RUN/samples/KEY.pt (first 64, for the grids)."""
    from lit_diffusion.training.loading import load_module

    run_dir = suite.run_dir(entry.name, seed)
    cache_path = run_dir / "eval.json"
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    results = {}

    def cached(key: str, make_module):
        slot = f"{key}/{suite.num_samples}"
        if slot not in cache:
            sampler, nfe = key.removeprefix("untrained/").split("@")
            net = make_module()
            metrics, x = _sample_and_score(net, suite, sampler, int(nfe), feature_net, reference)
            (run_dir / "samples").mkdir(exist_ok=True)
            torch.save(x[:64].clone(), run_dir / "samples" / f"{key.replace('/', '-')}.pt")
            cache[slot] = metrics
            cache_path.write_text(json.dumps(cache, indent=1))
            log(f"[{entry.name} seed {seed}] {key}: FD {metrics['fd']:.3f}")
        return cache[slot]

    trained = functools.cache(lambda: load_module(checkpoint).to(DEVICE))  # loaded once, only if needed
    for sampler, nfes in entry.samplers.items():
        for nfe in nfes:
            results[f"{sampler}@{nfe}"] = cached(f"{sampler}@{nfe}", trained)
    best = min(results, key=lambda k: results[k]["fd"])
    results["untrained"] = cached(f"untrained/{best}", lambda: load_module(checkpoint, untrained_seed=seed).to(DEVICE))
    results["untrained"]["key"] = best
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
    started = time.perf_counter()
    trained = train_all(suite, log)
    trained_at = time.perf_counter()
    log("[evaluation] feature network and reference statistics (cached after the first time)")
    feature_net = load_or_train_classifier(suite.shards, cache_dir=str(out / "cache"), device=DEVICE)
    reference = reference_stats(feature_net, suite.shards, cache_dir=str(out / "cache"))
    evaluated = {(e.name, s): evaluate(suite, e, s, feature_net, reference, log) for e in suite.objectives for s in suite.seeds}
    report = write_report(suite, trained, evaluated, feature_net, reference)
    done = time.perf_counter()
    log(f"[done] this start took {(done - started) / 60:.1f} min: training {(trained_at - started) / 60:.1f} min "
        f"(runs trained earlier are not counted), evaluation and report {(done - trained_at) / 60:.1f} min")
    return report


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="lit-diffusion compare", description=__doc__)
    p.add_argument("-c", "--config", required=True, help="suite YAML, e.g. experiments/compare/quickstart.yaml")
    args = p.parse_args(argv)
    report = run_suite(load_suite(args.config))
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
