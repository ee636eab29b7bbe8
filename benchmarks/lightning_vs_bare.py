"""Per-step cost of `lit-diffusion fit` against a bare PyTorch loop doing the same work: same config
(model, objective, AdamW, EMA, gradient clipping, LR schedule, data stream), on the CPU by default.

    python benchmarks/lightning_vs_bare.py --steps 20,80 --sizes small,medium

Each side runs twice (N1 and N2 steps) and the per-step time is the slope (t2 - t1) / (N2 - N1), so start-up
(imports, process group, data build, first-step FLOP count) cancels. Prints one line per size and the ratio
lightning / bare (goal on a GPU: <= 1.02). small = experiments/digits/dit.yaml's DiT (hidden 64, depth 2);
medium = hidden 192, depth 6, 6 heads."""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "experiments/digits/dit.yaml", ROOT / "experiments/objectives/flow_matching.yaml"]
SIZES = {"small": [], "medium": ["--model.backbone.init_args.hidden_size", "192", "--model.backbone.init_args.depth", "6",
                                 "--model.backbone.init_args.num_heads", "6"]}


def common(shards: Path, size: str, device: str) -> list[str]:
    return ["--data.train_shards", str(shards), "--data.num_workers", "0", "--trainer.accelerator", device,
            "--preview_every_n_steps", "0", "--checkpoint_every_n_steps", "1000000", "--model.max_images", "100000000",
            *SIZES[size]]


def lightning_seconds(shards: Path, size: str, steps: int, work: Path, device: str = "cpu") -> float:
    from lit_diffusion.cli import main as cli_main

    args = ["fit", *(a for c in CONFIGS for a in ("-c", str(c))), *common(shards, size, device),
            "--trainer.max_steps", str(steps), "--trainer.default_root_dir", str(work / f"pl-{size}-{steps}"),
            "--trainer.enable_model_summary", "false"]
    start = time.perf_counter()
    assert cli_main(args) == 0
    return time.perf_counter() - start


def _build(spec: dict):
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(spec.get("init_args") or {}))


def bare_seconds(shards: Path, size: str, steps: int, device: str = "cpu") -> float:
    """The same run without Lightning: the config parsed by the same parser, the objects built from it."""
    from lit_diffusion.data.datamodule import ShardDataModule
    from lit_diffusion.training.config import compose_fit_config
    from lit_diffusion.training.ema import EMA
    from lit_diffusion.training.schedule import LRSchedule

    start = time.perf_counter()
    config = compose_fit_config(CONFIGS, common(shards, size, device))
    torch.manual_seed(config["seed_everything"])
    m, data_args = config["model"], dict(config["data"])
    backbone, objective = _build(m["backbone"]).to(device), _build(m["objective"])
    ema = EMA(backbone, decay=m["ema_decay"], sigma_rel=m["ema_sigma_rel"])
    optimizer = torch.optim.AdamW(backbone.parameters(), lr=m["lr"], betas=m["betas"], weight_decay=m["weight_decay"],
                                  fused=device == "cuda" or None)  # as DiffusionModule.configure_optimizers
    schedule = _build(m["schedule"]) if m.get("schedule") else LRSchedule()
    data = ShardDataModule(**data_args)
    data.setup("fit")
    generator = torch.Generator(device=device).manual_seed(m["seed"] * 1_000_003)
    clip, images, max_images = config["trainer"]["gradient_clip_val"], 0, m["max_images"]
    loader = _forever(data.train_dataloader())
    for _ in range(steps):
        batch = {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in next(loader).items()}
        for group in optimizer.param_groups:
            group["lr"] = m["lr"] * schedule.factor(images, max_images)
        loss = objective.loss(backbone, batch["x"], batch.get("label"), generator=generator).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(backbone.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(backbone)
        images += batch["x"].shape[0]
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _forever(loader):
    """Epoch after epoch, as Lightning's loop does (set_epoch reshuffles the stream)."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def slope(measure, n1: int, n2: int) -> float:
    return (measure(n2) - measure(n1)) / (n2 - n1)


def compare(shards: Path, size: str, n1: int, n2: int, work: Path, device: str = "cpu") -> tuple[float, float]:
    """(lightning, bare) seconds per step."""
    bare = slope(lambda n: bare_seconds(shards, size, n, device), n1, n2)
    lit = slope(lambda n: lightning_seconds(shards, size, n, work, device), n1, n2)
    return lit, bare


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="20,80", help="N1,N2: the two run lengths of the slope")
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--shards", type=Path, default=None, help="digits16 shards (built in a temp dir if absent)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    a = parser.parse_args(argv)
    n1, n2 = (int(s) for s in a.steps.split(","))
    if a.threads:
        torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shards = a.shards or digits(work / "digits16")
        results = {}
        for size in a.sizes.split(","):
            lit, bare = results[size] = compare(shards, size, n1, n2, work, a.device)
            print(f"{size:7s} lightning {1e3 * lit:7.2f} ms/step  bare {1e3 * bare:7.2f} ms/step  "
                  f"ratio {lit / bare:.3f}  (+{1e3 * (lit - bare):.2f} ms/step)", flush=True)
    return 0


def digits(out: Path) -> Path:
    from lit_diffusion.cli import main as cli_main

    assert cli_main(["data", "build", "digits", "--out", str(out), "--resolution", "16", "--no-progress",
                     "--workers", "0"]) == 0
    return out


if __name__ == "__main__":
    sys.exit(main())
