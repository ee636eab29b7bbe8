"""MNIST: latent DiT on the framework's autoencoder vs the pixel-space U-Net, at equal training time.

Everything runs through the `lit-diffusion` CLI as a user would: build shards, `fit` the autoencoder
(experiments/autoencoder/mnist.yaml), `data encode` the training set, then `fit` experiments/mnist/latent_dit.yaml
and experiments/mnist/unet.yaml with the same --trainer.max_time. Each model draws --num-samples class-balanced
samples (FlowMatching, Euler, --nfe steps; latents decoded to pixels) and is scored by FD in the feature space of
the project's MNIST classifier (the offline default of `evaluation.default_feature_network`) against the test set.
The autoencoder's reconstruction FD (test images -> posterior mean -> decoder) is the floor a latent model cannot
beat. Training images/s = images seen / train seconds (the autoencoder's own training and the encoding are
reported apart: they are paid once per dataset, not per diffusion model).

  python benchmarks/latent_vs_pixel_mnist.py --mnist /work/shared/data/mnist --work /tmp/latent-bench \
      --ae-seconds 600 --train-seconds 1200 --num-samples 5000 --nfe 32
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli

REPO = Path(__file__).resolve().parents[1]


def _hms(seconds: int) -> str:
    return f"00:{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run(*argv: str) -> None:
    status = cli(list(argv))
    if status != 0:
        raise SystemExit(f"`lit-diffusion {' '.join(argv)}` failed with status {status}")


def build(mnist: Path, work: Path, train_images: int | None) -> None:
    """Shards of the test split and of the first `train_images` training images (None: all 60,000)."""
    from lit_diffusion.data.sources import ArrayImageSource, mnist_source
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options

    if not (work / "mnist" / "test" / "dataset.json").is_file():
        run("data", "build", "mnist", str(mnist), "--split", "test", "--out", str(work / "mnist" / "test"),
            "--no-progress", "--overwrite")
    if not (work / "mnist" / "train" / "dataset.json").is_file():
        source = mnist_source(str(mnist), "train")
        n = train_images or len(source)
        subset = ArrayImageSource("mnist", source.images[:n], source.labels[:n], source.class_names, {"subset": n})
        build_dataset(subset, BuildOptions(out=str(work / "mnist" / "train"), overwrite=True, progress=False),
                      resolve_encode_options(subset), command=["benchmarks/latent_vs_pixel_mnist.py"])


def fit(config: str, root: Path, seconds: int, *extra: str) -> Path:
    run("fit", "-c", str(REPO / config), "--trainer.default_root_dir", str(root), "--trainer.max_time",
        _hms(seconds), "--data.num_workers", "1", "--preview_every_n_steps", "0", "--checkpoint_every_n_steps",
        "1000000", *extra)
    return root / "checkpoints" / "last.ckpt"


def test_images(work: Path, n: int) -> torch.Tensor:
    from lit_diffusion.data.ordered_reader import OrderedShardReader

    xs = []
    for batch in OrderedShardReader.from_spec(str(work / "mnist" / "test"), batch_size=500):
        xs.append(batch["x"])
        if sum(len(x) for x in xs) >= n:
            break
    return torch.cat(xs)[:n]


def score(x, feature_net, reference) -> float:
    from lit_diffusion.evaluation.metrics import evaluate_samples

    return float(evaluate_samples(x.clamp(-1, 1), feature_net, reference)["fd"])


def sample_model(ckpt: Path, n: int, nfe: int) -> tuple[torch.Tensor, float]:
    """(n decoded samples in [-1, 1], sampling images/s including decoding)."""
    from lit_diffusion.generation import generate
    from lit_diffusion.generation.latents import LatentCodec, to_images
    from lit_diffusion.training.loading import load_module

    module = load_module(ckpt)
    codec = LatentCodec(module.latent) if module.latent else None
    start, out = time.perf_counter(), []
    for batch in generate(module.objective, module.ema.shadow, module.sample_shape, n, seed=0, batch_size=250,
                          num_classes=module.sample_classes, nfe=nfe):
        out.append(to_images(batch.x0, module.latent, codec))
    return torch.cat(out), n / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist", type=Path, default=Path("/work/shared/data/mnist"))
    p.add_argument("--work", type=Path, default=Path("/tmp/latent-bench"))
    p.add_argument("--train-images", type=int, default=None, help="first N training images (default: all 60,000)")
    p.add_argument("--ae-seconds", type=int, default=600)
    p.add_argument("--train-seconds", type=int, default=1200, help="training time of each diffusion model")
    p.add_argument("--num-samples", type=int, default=5000)
    p.add_argument("--nfe", type=int, default=32)
    p.add_argument("--threads", type=int, default=1,
                   help="torch intra-op threads (1: on a shared CPU more threads spin-wait and run many times slower)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    build(args.mnist, work, args.train_images)
    train = str(work / "mnist" / "train")
    ae = fit("experiments/autoencoder/mnist.yaml", work / "autoencoder", args.ae_seconds, "--data.train_shards", train,
             "--model.init_args.max_images", "100000000")
    if not (work / "latents" / "dataset.json").is_file():
        start = time.perf_counter()
        run("data", "encode", train, "--autoencoder", str(ae), "--out", str(work / "latents"), "--no-progress",
            "--batch-size", "500")
        print(f"encoded the training images in {time.perf_counter() - start:.0f} s")
    models = {"latent DiT (framework AE)": fit("experiments/mnist/latent_dit.yaml", work / "latent-dit",
                                               args.train_seconds, "--data.train_shards", str(work / "latents"),
                                               "--model.max_images", "100000000"),
              "pixel U-Net": fit("experiments/mnist/unet.yaml", work / "pixel-unet", args.train_seconds,
                                 "--data.train_shards", train, "--model.max_images", "100000000")}
    from lit_diffusion.evaluation.features import default_feature_network
    from lit_diffusion.evaluation.reference import reference_stats
    from lit_diffusion.generation.latents import open_autoencoder

    cache = work / "cache"
    feature_net = default_feature_network(train, cache_dir=cache)
    reference = reference_stats(feature_net, str(work / "mnist" / "test"), cache_dir=cache, num_workers=0)
    rows = []
    for name, ckpt in models.items():
        info = torch.load(ckpt, map_location="cpu", weights_only=False)
        x, rate = sample_model(ckpt, args.num_samples, args.nfe)
        rows.append({"model": name, "fd": score(x, feature_net, reference), "train_images": info["images_seen"],
                     "train_seconds": info["train_seconds"], "train_images_per_s": info["images_seen"] / info["train_seconds"],
                     "sample_images_per_s": rate})
    autoencoder, _ = open_autoencoder(str(ae))
    real = test_images(work, args.num_samples)
    with torch.no_grad():
        recon = torch.cat([autoencoder.decode(autoencoder.encode(real[i:i + 500])[0]) for i in range(0, len(real), 500)])
    rows.append({"model": "autoencoder reconstructions (floor of the latent model)", "fd": score(recon, feature_net, reference)})
    print(f"\n| model | FD | train images | train s | train images/s | sampling images/s ({args.nfe} NFE) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['fd']:.2f}"] + ([f"{r['train_images']:,}", f"{r['train_seconds']:.0f}", f"{r['train_images_per_s']:.0f}",
                                       f"{r['sample_images_per_s']:.0f}"] if "train_images" in r else ["-"] * 4)
        print(f"| {r['model']} | " + " | ".join(cells) + " |")
    (work / "results.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                                  indent=1))


if __name__ == "__main__":
    main()
