"""Loader throughput: ShardDataModule on CIFAR-10 shards vs torchvision ImageFolder + DataLoader.

Both loaders read the same 50,000 CIFAR-10 training JPEGs, make float32 batches in [-1, 1]
with a random horizontal flip, with the same batch size and number of worker processes, for
the same number of samples. Two ImageFolder baselines:

* ``imagefolder-pil``: the standard torchvision recipe (PIL loader, RandomHorizontalFlip,
  ToTensor, Normalize(0.5, 0.5));
* ``imagefolder-tvio``: ImageFolder with the *same decoder* as the DataModule
  (torchvision.io.decode_image) and the same flip and conversion, per sample.

and a plain ``wds.WebDataset`` pipeline on the same shards (``webdataset``): shardshuffle, split by
worker, a 1000-sample shuffle buffer, the same decoder, flip and conversion, batched in the workers
(``.batched``) as the DataModule does; it is not resumable, which the DataModule is.

The first run extracts the JPEG tarball and builds the shards into ``--cache-dir`` (reused
afterwards). Usage::

    python benchmarks/loader_throughput.py --workers 2
    python benchmarks/loader_throughput.py --data-dir /path/to/shared/data --samples 20000

``--data-dir`` defaults to $LIT_DIFFUSION_SHARED_DATA, else ``shared/data`` beside the repository.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    return Path(os.environ.get("LIT_DIFFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))


def prepare(data_dir: Path, cache: Path, workers: int) -> tuple[Path, Path]:
    """Extract the JPEG ImageFolder and build shards once; return (jpeg folder, shard folder)."""
    from lit_diffusion.data.imagefolder import ImageFolderSource
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options

    tarball = data_dir / "cifar10" / "cifar10-jpg-train.tar.gz"
    if not tarball.is_file():
        sys.exit(f"{tarball} not found: pass --data-dir (the folder holding cifar10/)")
    jpegs, shards = cache / "cifar10-jpg", cache / "cifar10-shards" / "train"
    if not (jpegs / "train" / "truck").is_dir():
        print(f"extracting {tarball} -> {jpegs}", flush=True)
        jpegs.mkdir(parents=True, exist_ok=True)
        if shutil.which("tar"):  # much faster than tarfile on 50,000 small files
            subprocess.run(["tar", "-xzf", str(tarball), "-C", str(jpegs)], check=True)
        else:
            with tarfile.open(tarball) as tar:
                tar.extractall(jpegs, filter="data")
    if not (shards / "dataset.json").is_file():
        print(f"building shards -> {shards}", flush=True)
        source = ImageFolderSource(jpegs / "train")
        build_dataset(source, BuildOptions(out=str(shards), workers=workers, overwrite=True, progress=False),
                      resolve_encode_options(source), command=["benchmarks/loader_throughput.py"])
    return jpegs / "train", shards


def _tvio_loader(path: str) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image

    with open(path, "rb") as f:
        data = f.read()
    return decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)


def _tvio_transform(x: torch.Tensor) -> torch.Tensor:
    if torch.rand(()) < 0.5:
        x = x.flip(-1)
    return x.to(torch.float32).div_(127.5).sub_(1.0)


def imagefolder_loader(root: Path, variant: str, batch_size: int, workers: int) -> DataLoader:
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    if variant == "pil":
        dataset = ImageFolder(str(root), transform=T.Compose([
            T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)]))
    else:
        dataset = ImageFolder(str(root), loader=_tvio_loader, transform=_tvio_transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                      persistent_workers=False)


def shard_loader(shards: Path, batch_size: int, workers: int):
    from lit_diffusion.data import ShardDataModule

    dm = ShardDataModule(str(shards), batch_size=batch_size, num_workers=workers, hflip=True,
                         shuffle_buffer=1000, seed=0)
    return dm.train_dataloader()


def _wds_sample(sample: dict) -> tuple[torch.Tensor, int]:
    from torchvision.io import ImageReadMode, decode_image

    x = decode_image(torch.frombuffer(bytearray(sample["jpg"]), dtype=torch.uint8), mode=ImageReadMode.UNCHANGED)
    return _tvio_transform(x), int(sample["cls"])


def webdataset_loader(shards: Path, batch_size: int, workers: int):
    """A plain webdataset pipeline over the same shards, with the DataModule's decoder and augmentation."""
    import webdataset as wds

    urls = sorted(str(p) for p in shards.glob("shard-*.tar"))
    dataset = (wds.WebDataset(urls, shardshuffle=len(urls), nodesplitter=wds.single_node_only, empty_check=False)
               .shuffle(1000).map(_wds_sample).batched(batch_size, partial=False))
    return wds.WebLoader(dataset, batch_size=None, num_workers=workers)


def measure(loader, samples: int) -> tuple[int, float]:
    """Samples and seconds to draw ``samples`` (iterator start, i.e. worker start-up, included)."""
    seen, start = 0, time.perf_counter()
    for batch in loader:
        x = batch["x"] if isinstance(batch, dict) else batch[0]
        assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        seen += x.shape[0]
        if seen >= samples:
            break
    return seen, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--cache-dir", type=Path, default=Path(os.environ.get(
        "LIT_DIFFUSION_BENCH_CACHE", Path.home() / ".cache" / "lit_diffusion" / "bench")))
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers (both loaders)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--samples", type=int, default=50_000, help="samples per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="rounds; the best of each is reported")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print("command: python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])]))
    jpegs, shards = prepare(args.data_dir, args.cache_dir, args.workers)
    makers = {
        "ShardDataModule": lambda: shard_loader(shards, args.batch_size, args.workers),
        "imagefolder-pil": lambda: imagefolder_loader(jpegs, "pil", args.batch_size, args.workers),
        "imagefolder-tvio": lambda: imagefolder_loader(jpegs, "tvio", args.batch_size, args.workers),
        "wds.WebDataset": lambda: webdataset_loader(shards, args.batch_size, args.workers),
    }
    best: dict[str, tuple[int, float]] = {}
    for r in range(args.repeats):
        for name, make in makers.items():  # interleaved rounds, so load drifts hit all alike
            n, secs = measure(make(), args.samples)
            print(f"  round {r + 1}: {name:<17} {n} samples in {secs:6.2f} s = {n / secs:8.0f} samples/s", flush=True)
            if name not in best or n / secs > best[name][0] / best[name][1]:
                best[name] = (n, secs)
    w = max(1, args.workers)
    print(f"\nCIFAR-10 train JPEGs, batch {args.batch_size}, {args.workers} workers, hflip, float32 [-1, 1]; "
          f"best of {args.repeats}; {os.cpu_count()} CPUs")
    print(f"| loader | samples | seconds | samples/s | samples/s per worker |")
    print(f"|---|---:|---:|---:|---:|")
    for name, (n, secs) in best.items():
        print(f"| {name} | {n} | {secs:.2f} | {n / secs:.0f} | {n / secs / w:.0f} |")
    rate = {k: n / s for k, (n, s) in best.items()}
    print(f"\nratio ShardDataModule / imagefolder-pil  = {rate['ShardDataModule'] / rate['imagefolder-pil']:.2f}x")
    print(f"ratio ShardDataModule / imagefolder-tvio = {rate['ShardDataModule'] / rate['imagefolder-tvio']:.2f}x")
    print(f"ratio ShardDataModule / wds.WebDataset   = {rate['ShardDataModule'] / rate['wds.WebDataset']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
