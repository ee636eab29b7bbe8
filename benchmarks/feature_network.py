"""The project's feature network on a real dataset: build the shards with the CLI, train (or load) the
classifier through the cache, and report its test accuracy, the time it took, and the Frechet
distances that show it measures what it should (train split vs test split: small; test split vs
uniform noise images: large), next to the trace of the feature covariance for scale.

    python benchmarks/feature_network.py --dataset mnist --data-dir ../shared/data --out runs/featnet \
        [--threads 1] [--max-train-reference 10000]

--dataset mnist reads DATA_DIR/mnist/*.gz; cifar10 reads DATA_DIR/cifar10/cifar10-jpg-{train,test}.tar.gz;
digits needs no files (a 20% validation split stands in for the test split). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import tarfile
import time
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli
from lit_diffusion.evaluation.features import ClassifierConfig, load_or_train_classifier
from lit_diffusion.evaluation.frechet import frechet_distance, gaussian_stats
from lit_diffusion.evaluation.metrics import extract
from lit_diffusion.evaluation.reference import reference_stats
from lit_diffusion.evaluation.shards import SplitReader


def build(dataset: str, data_dir: Path, out: Path) -> dict[str, Path]:
    splits = {"train": out / "train", "test": out / ("val" if dataset == "digits" else "test")}
    if all((p / "dataset.json").is_file() for p in splits.values()):
        return splits
    if dataset == "digits":
        cli(["data", "build", "digits", "--out", str(out), "--val-fraction", "0.2", "--no-progress"])
    elif dataset == "mnist":
        raw = out / "root" / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for gz in (data_dir / "mnist").glob("*.gz"):
            shutil.copy(gz, raw / gz.name)
        for split in ("train", "test"):
            cli(["data", "build", "mnist", str(out / "root"), "--split", split, "--out", str(splits[split]), "--no-progress"])
    else:
        for split in ("train", "test"):
            with tarfile.open(data_dir / "cifar10" / f"cifar10-jpg-{split}.tar.gz") as tar:
                tar.extractall(out / "jpg", filter="data")
            cli(["data", "build", "imagefolder", str(out / "jpg" / split), "--out", str(splits[split]), "--no-progress"])
    return splits


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["digits", "mnist", "cifar10"], default="mnist")
    p.add_argument("--data-dir", default=os.environ.get("LIT_DIFFUSION_SHARED_DATA", "../shared/data"))
    p.add_argument("--out", default="runs/feature-network")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--epochs", type=int, default=None, help="classifier epochs (default: the config's rule)")
    p.add_argument("--retrain", action="store_true", help="ignore a cached classifier")
    p.add_argument("--max-train-reference", type=int, default=10_000, help="train samples in the reference stats")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out) / args.dataset
    splits = build(args.dataset, Path(args.data_dir), out)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    net = load_or_train_classifier(splits["train"], splits["test"], out / "cache", ClassifierConfig(epochs=args.epochs),
                                   num_threads=args.threads, num_workers=0, retrain=args.retrain)
    total = time.perf_counter() - start
    ref = reference_stats(net, splits["train"], max_samples=args.max_train_reference, cache_dir=out / "cache", num_workers=0)
    x = torch.cat([b["x"] for _, b in SplitReader(splits["test"], num_workers=0)])
    f_test, _ = extract(net, x, 500)
    noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    f_noise, _ = extract(net, noise, 500)
    test = gaussian_stats(f_test)
    print(json.dumps({
        "dataset": args.dataset, "threads": args.threads, "loadavg_1min_before": round(load, 2),
        "test_accuracy": net.test_accuracy, "train_seconds": net.train_seconds,
        "load_or_train_seconds": round(total, 1), "fingerprint": net.fingerprint,
        "fd_train_vs_test": frechet_distance(ref["mu"], ref["sigma"], *test),
        "fd_test_vs_noise": frechet_distance(*test, *gaussian_stats(f_noise)),
        "trace_sigma_train": float(torch.trace(ref["sigma"])), "reference_samples": ref["num"], "test_samples": x.shape[0],
    }))


if __name__ == "__main__":
    main()
