"""Per-step cost of `lit-diffusion fit` against a bare PyTorch loop doing the same work: same config
(model, objective, AdamW, EMA, gradient clipping, LR schedule, data stream), on the CPU by default.

    python benchmarks/lightning_vs_bare.py --steps 20,80 --sizes small --repeats 5 --threads 1

Each side runs N1 and N2 steps and its per-step time is the slope (t2 - t1) / (N2 - N1), so start-up
(imports, process group, data build, first-step FLOP count) cancels. Without order bias: one warm-up run per
side first (one-time costs of the process: imports, lazy initialisation, allocator growth), then `--repeats`
rounds in which the side that goes first alternates, and so does the run length that goes first. Prints per size
the median and the spread (min..max over the rounds) of each side's ms/step and of the ratio lightning / bare,
in wall time and in CPU time of this process (steadier on a shared machine), and the command that reproduces them
(goal on a GPU: <= 1.02). small = experiments/digits/dit.yaml's DiT (hidden 64, depth 2); medium = hidden 192,
depth 6, 6 heads."""
from __future__ import annotations

import argparse
import importlib
import itertools
import statistics
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


RUN_NUMBER = itertools.count()  # every Lightning run gets a fresh folder (a used one would resume)


def _timed(work) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of `work()`."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def lightning_seconds(shards: Path, size: str, steps: int, work: Path, device: str = "cpu") -> tuple[float, float]:
    from lit_diffusion.cli import main as cli_main

    args = ["fit", *(a for c in CONFIGS for a in ("-c", str(c))), *common(shards, size, device),
            "--trainer.max_steps", str(steps), "--trainer.enable_model_summary", "false",
            "--trainer.default_root_dir", str(work / f"pl-{size}-{steps}-{next(RUN_NUMBER)}")]

    def run():
        assert cli_main(args) == 0
    return _timed(run)


def _build(spec: dict):
    module, _, name = spec["class_path"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**(spec.get("init_args") or {}))


def bare_seconds(shards: Path, size: str, steps: int, device: str = "cpu") -> tuple[float, float]:
    """The same run without Lightning: the config parsed by the same parser, the objects built from it."""
    return _timed(lambda: _bare_run(shards, size, steps, device))


def _bare_run(shards: Path, size: str, steps: int, device: str) -> None:
    from lit_diffusion.data.datamodule import ShardDataModule
    from lit_diffusion.training.config import compose_fit_config
    from lit_diffusion.training.ema import EMA
    from lit_diffusion.training.schedule import LRSchedule

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


def _forever(loader):
    """Epoch after epoch, as Lightning's loop does (set_epoch reshuffles the stream)."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def rounds(shards: Path, size: str, n1: int, n2: int, work: Path, device: str, repeats: int) -> list[dict]:
    """Per round: {side: (wall ms/step, CPU ms/step)}, after one warm-up run per side. The first side alternates
    every round and the first run length every two rounds, so neither side nor length always pays for going first."""
    measure = {"bare": lambda n: bare_seconds(shards, size, n, device),
               "lightning": lambda n: lightning_seconds(shards, size, n, work, device)}
    for side in ("bare", "lightning"):  # warm-up, not counted
        measure[side](n1)
    out = []
    for i in range(repeats):
        sides = ("bare", "lightning") if i % 2 == 0 else ("lightning", "bare")
        lengths = (n1, n2) if (i // 2) % 2 == 0 else (n2, n1)
        times = {(side, n): measure[side](n) for n in lengths for side in sides}
        out.append({side: tuple(1e3 * (times[side, n2][k] - times[side, n1][k]) / (n2 - n1) for k in (0, 1))
                    for side in measure})
    return out


def summary(values: list[float], digits: int) -> str:
    """median [min..max]"""
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}..{max(values):.{digits}f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", default="20,80", help="N1,N2: the two run lengths of the slope")
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--repeats", type=int, default=5, help="measured rounds per size (after a warm-up)")
    parser.add_argument("--shards", type=Path, default=None, help="digits16 shards (built in a temp dir if absent)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    a = parser.parse_args(argv)
    n1, n2 = (int(s) for s in a.steps.split(","))
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"python benchmarks/lightning_vs_bare.py --steps {n1},{n2} --sizes {a.sizes} --repeats {a.repeats} "
          f"--device {a.device}" + (f" --threads {a.threads}" if a.threads else "") + f"  ({torch.get_num_threads()} "
          "threads); ms/step and ratio lightning / bare: median [min..max] over the rounds", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shards = a.shards or digits(work / "digits16")
        for size in a.sizes.split(","):
            measured = rounds(shards, size, n1, n2, work, a.device, a.repeats)
            for k, clock in enumerate(("wall", "CPU")):
                lit = [r["lightning"][k] for r in measured]
                bare = [r["bare"][k] for r in measured]
                ratio = [x / y for x, y in zip(lit, bare)]
                print(f"{size:7s} {clock:4s} lightning {summary(lit, 1)} ms/step  bare {summary(bare, 1)} ms/step  "
                      f"ratio {summary(ratio, 3)}", flush=True)
    return 0


def digits(out: Path) -> Path:
    from lit_diffusion.cli import main as cli_main

    assert cli_main(["data", "build", "digits", "--out", str(out), "--resolution", "16", "--no-progress",
                     "--workers", "0"]) == 0
    return out


if __name__ == "__main__":
    sys.exit(main())
