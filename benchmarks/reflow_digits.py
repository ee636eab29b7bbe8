"""Reflow on the embedded digits, through the real CLI: train a rectified flow, write reflow pairs from it,
train the 2-rectified flow from the parent's weights on them, then compare 1-step (and few-step) samples
of both to held-out data with the sliced Wasserstein distance in pixel space, and save the sample grids.

    python benchmarks/reflow_digits.py --out runs/reflow-digits [--images 192000]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lit_diffusion.cli import main as cli
from lit_diffusion.evaluation.sliced_wasserstein import sliced_wasserstein

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def fit(root: Path, shards: Path, images: int, *extra: str) -> None:
    assert cli(["fit", "-c", str(EXPERIMENTS / "digits/unet.yaml"), "-c", str(EXPERIMENTS / "objectives/rectified_flow.yaml"),
                "--data.train_shards", str(shards), "--data.num_workers", "0", "--model.conditional", "false",
                "--model.max_images", str(images), "--trainer.default_root_dir", str(root), "--preview_every_n_steps", "0",
                *extra]) == 0


def samples(ckpt: Path, out: Path, nfe: int, num: int) -> np.ndarray:
    assert cli(["sample", "--ckpt", str(ckpt), "--sampler", "euler", "--nfe", str(nfe), "--num", str(num),
                "--out", str(out), "--device", "cpu"]) == 0
    return np.load(out / "samples.npz")["images"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/reflow-digits")
    p.add_argument("--images", type=int, default=192_000, help="training images for each of the two flows")
    p.add_argument("--pairs", type=int, default=8192)
    p.add_argument("--num", type=int, default=1000, help="samples per evaluation")
    args = p.parse_args()
    out = Path(args.out)
    start = time.perf_counter()
    shards = out / "digits16"
    if not (shards / "dataset.json").is_file():
        assert cli(["data", "build", "digits", "--out", str(shards), "--resolution", "16", "--no-progress", "--workers", "0"]) == 0
    fit(out / "rf1", shards, args.images)
    parent = out / "rf1/checkpoints/last.ckpt"
    assert cli(["reflow", "--ckpt", str(parent), "--num", str(args.pairs), "--out", str(out / "pairs"), "--sampler", "heun",
                "--nfe", "33", "--device", "cpu", "--overwrite"]) == 0
    fit(out / "rf2", out / "pairs", args.images, "--model.init_from", str(parent))
    # held-out reference: the digits themselves, decoded from the shards through the DataModule
    from lit_diffusion.data.datamodule import ShardDataModule
    dm = ShardDataModule(str(shards), batch_size=args.num, num_workers=0, seed=99)
    reference = next(iter(dm.train_dataloader()))["x"].flatten(1)
    rows = []
    grids = []
    for name in ("rf1", "rf2"):
        for nfe in (1, 2, 4):
            imgs = samples(out / name / "checkpoints/last.ckpt", out / f"samples-{name}-nfe{nfe}", nfe, args.num)
            x = torch.from_numpy(imgs).float().permute(0, 3, 1, 2).flatten(1) / 127.5 - 1
            sw = sliced_wasserstein(x[: reference.shape[0]], reference[: x.shape[0]], generator=torch.Generator().manual_seed(0))
            rows.append((name, nfe, sw))
            if nfe == 1:
                grids.append(np.array(Image.open(out / f"samples-{name}-nfe1" / "grid.png")))
    side = np.concatenate([grids[0], np.full((grids[0].shape[0], 8) + grids[0].shape[2:], 255, np.uint8), grids[1]], axis=1)
    Image.fromarray(side[..., 0] if side.ndim == 3 and side.shape[-1] == 1 else side.squeeze()).save(out / "one_step_rf1_vs_rf2.png")
    print(f"\ncommand: python benchmarks/reflow_digits.py --out {args.out} --images {args.images}")
    print("| model | NFE (Euler) | sliced W2 to data (pixels, lower is better) |\n|---|---|---|")
    for name, nfe, sw in rows:
        print(f"| {'1-rectified' if name == 'rf1' else '2-rectified'} | {nfe} | {sw:.4f} |")
    print(f"grids: {out / 'one_step_rf1_vs_rf2.png'} (left: 1-rectified, right: 2-rectified, 1 step); "
          f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
