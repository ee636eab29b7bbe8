"""x0 clipping and dynamic thresholding at the quickstart's budget: which default each objective should sample with,
and why eps-prediction DDPM on linear betas ignores the class labels this early.

Trains DDPM with eps and v prediction on the linear and cosine schedules, and flow matching, each on the
quickstart's data, U-Net, budget (27,200 images = 425 steps of 64) and seed, through `lit-diffusion fit`; then
scores every model at two NFEs with no threshold, "clip" (Ho et al. 2020) and "dynamic" (Saharia et al. 2022):
FD and class accuracy in the quickstart classifier's feature space, 500 samples from the same noise.

  python benchmarks/x0_threshold_digits.py --work /tmp/x0-threshold
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli

REPO = Path(__file__).resolve().parents[1]
MODELS = {  # name -> (objective config, overrides, sampler)
    "DDPM eps, linear": ("ddpm.yaml", [], "ddim"),
    "DDPM eps, cosine": ("ddpm.yaml", ["--model.objective.init_args.schedule", "cosine"], "ddim"),
    "DDPM v, linear": ("ddpm_v.yaml", ["--model.objective.init_args.schedule", "linear"], "ddim"),
    "DDPM v, cosine": ("ddpm_v.yaml", [], "ddim"),
    "flow matching": ("flow_matching.yaml", [], "euler"),
}


def run(*argv: str) -> None:
    if cli(list(argv)) != 0:
        raise SystemExit(f"`lit-diffusion {' '.join(argv)}` failed")


def train(work: Path, shards: Path, name: str, config: str, overrides: list[str], images: int) -> Path:
    root = work / name.replace(" ", "").replace(",", "-")
    last = root / "checkpoints" / "last.ckpt"
    if not last.is_file():
        run("fit", "-c", str(REPO / "experiments/digits/unet.yaml"), "-c", str(REPO / "experiments/objectives" / config),
            "--data.train_shards", str(shards), "--data.num_workers", "0", "--trainer.default_root_dir", str(root),
            "--model.max_images", str(images), "--preview_every_n_steps", "0", *overrides)
    return last


@torch.no_grad()
def score(ckpt: Path, sampler: str, nfe: int, threshold: str | None, n: int, feature_net, reference) -> dict:
    from lit_diffusion.evaluation.metrics import evaluate_samples
    from lit_diffusion.generation import generate
    from lit_diffusion.training.loading import load_module

    module = load_module(ckpt)
    options = {} if threshold is None else {"x0_threshold": threshold, "data_range": (-1.0, 1.0)}
    xs, labels = [], []
    for batch in generate(module.objective, module.ema.shadow, module.sample_shape, n, seed=0, batch_size=250,
                          num_classes=module.sample_classes, sampler=sampler, nfe=nfe, **options):
        xs.append(batch.x0.clamp(-1, 1))
        labels.append(batch.labels)
    metrics = evaluate_samples(torch.cat(xs), feature_net, reference, labels=torch.cat(labels))
    return {"fd": float(metrics["fd"]), "class_accuracy": float(metrics["class_accuracy"])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("/tmp/x0-threshold"))
    p.add_argument("--images", type=int, default=27200, help="training images per model (the quickstart's)")
    p.add_argument("--nfe", type=int, nargs="+", default=[8, 32])
    p.add_argument("--num-samples", type=int, default=500)
    args = p.parse_args()
    from lit_diffusion.evaluation.features import default_feature_network
    from lit_diffusion.evaluation.reference import reference_stats

    shards = args.work / "digits16"
    if not (shards / "dataset.json").is_file():
        run("data", "build", "digits", "--resolution", "16", "--workers", "0", "--out", str(shards), "--no-progress")
    feature_net = default_feature_network(str(shards), cache_dir=str(args.work / "cache"))
    reference = reference_stats(feature_net, str(shards), cache_dir=str(args.work / "cache"), num_workers=0)
    rows = []
    for name, (config, overrides, sampler) in MODELS.items():
        ckpt = train(args.work, shards, name, config, overrides, args.images)
        for nfe in args.nfe:
            row = {"model": name, "setting": f"{sampler}@{nfe}"}
            for threshold in (None, "clip", "dynamic"):
                row[threshold or "none"] = score(ckpt, sampler, nfe, threshold, args.num_samples, feature_net, reference)
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nFD (class accuracy), {args.num_samples} samples, {args.images:,} training images per model")
    print("| model | setting | no threshold | clip | dynamic |\n|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r[k]['fd']:.1f} ({r[k]['class_accuracy']:.2f})" for k in ("none", "clip", "dynamic")]
        print(f"| {r['model']} | {r['setting']} | " + " | ".join(cells) + " |")
    (args.work / "results.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
