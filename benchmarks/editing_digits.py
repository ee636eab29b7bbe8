"""Editing on the embedded digits, through the real CLI, with the quickstart's flow-matching model (the README's
`lit-diffusion compare -c experiments/compare/quickstart.yaml` trains it and builds the shards): inpaint the top
half of eight digits (RePaint) and SDEdit coarse 4x4-block versions of them at three t0, and put inputs and outputs
in one figure (docs/editing.md). The model is class-conditional: each input carries its digit's label (inputs.npz).

    python benchmarks/editing_digits.py [--ckpt runs/compare/quickstart/runs/flow_matching-seed0/checkpoints/last.ckpt]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lit_diffusion.cli import main as cli

T0S = (0.3, 0.5, 0.7)


def digits(shards: Path, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits (N, 16, 16) uint8 and their labels, read from the shards through the DataModule."""
    from lit_diffusion.data.datamodule import ShardDataModule

    batch = next(iter(ShardDataModule(str(shards), batch_size=count, num_workers=0, seed=seed).train_dataloader()))
    return ((batch["x"][:, 0].numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8), batch["label"].numpy()


def edited(folder: Path) -> np.ndarray:
    return np.load(folder / "samples.npz")["images"][..., 0]


def figure(rows: list[tuple[str, np.ndarray]], path: Path, scale: int = 4, gap: int = 2, label_width: int = 150) -> None:
    n, h, w = rows[0][1].shape
    cell = h * scale + gap
    canvas = Image.new("L", (label_width + n * (w * scale + gap), len(rows) * cell + gap), 255)
    draw = ImageDraw.Draw(canvas)
    for r, (name, images) in enumerate(rows):
        draw.text((4, gap + r * cell + h * scale // 2 - 6), name, fill=0)
        for c, image in enumerate(images):
            tile = Image.fromarray(image).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (label_width + c * (w * scale + gap), gap + r * cell))
    canvas.save(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", default="runs/compare/quickstart/runs/flow_matching-seed0/checkpoints/last.ckpt")
    p.add_argument("--shards", default="data/shards/digits16", help="the digits the inputs come from")
    p.add_argument("--out", default="runs/editing-digits")
    p.add_argument("--figure", default="docs/editing_digits.png")
    args = p.parse_args()
    out, start, ckpt = Path(args.out), time.perf_counter(), Path(args.ckpt)
    out.mkdir(parents=True, exist_ok=True)
    originals, labels = digits(Path(args.shards), 8, seed=7)
    np.savez(out / "inputs.npz", images=originals[..., None], labels=labels)
    top = np.zeros((16, 16), dtype=np.uint8)
    top[:8] = 255  # white: the model paints the top half
    Image.fromarray(top).save(out / "top_half.png")
    blocks = originals.reshape(8, 4, 4, 4, 4).mean(axis=(2, 4)).round().astype(np.uint8).repeat(4, 1).repeat(4, 2)
    np.savez(out / "guides.npz", images=blocks[..., None], labels=labels)
    common = ["--ckpt", str(ckpt), "--device", "cpu", "--sampler", "euler"]
    assert cli(["sample", *common, "--edit", "inpaint", "--input", str(out / "inputs.npz"), "--mask",
                str(out / "top_half.png"), "--nfe", "20", "--jump", "5", "--resample", "5",
                "--out", str(out / "inpaint")]) == 0
    for t0 in T0S:
        assert cli(["sample", *common, "--edit", "sdedit", "--input", str(out / "guides.npz"), "--t0", str(t0), "--nfe",
                    "16", "--out", str(out / f"sdedit-{t0}")]) == 0
    painted = edited(out / "inpaint")
    assert np.array_equal(painted[:, 8:], originals[:, 8:]), "the kept half changed"
    masked = originals.copy()
    masked[:, :8] = 128
    rows = [("digits", originals), ("top half masked", masked), ("inpainted (RePaint)", painted),
            ("SDEdit guide (4x4)", blocks)] + [(f"SDEdit t0 = {t0}", edited(out / f"sdedit-{t0}")) for t0 in T0S]
    figure(rows, Path(args.figure))
    print(f"command: python benchmarks/editing_digits.py --ckpt {args.ckpt} --shards {args.shards}")
    print(f"figure: {args.figure}; total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
