"""`lit-diffusion toy2d [--dataset two_moons] [--steps N] [--seed S]`, and its robustness mode
`lit-diffusion toy2d --datasets a,b --budgets 1500,3000 --seeds 0,1,2 --out DIR [--figure PNG]`."""
from __future__ import annotations

from typing import Literal

from lit_diffusion.commands.parsing import run

Dataset = Literal["eight_gaussians", "ring_and_center", "checkerboard", "two_moons", "spirals", "student_t"]


def _names(text: str, option: str, known: tuple = ()) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if known and n not in known]
    if not names or unknown:
        choices = f" of {list(known)}" if known else ""
        raise ValueError(f"--{option}: give a comma-separated list{choices}, got {text!r}")
    return names


def _integers(text: str, option: str, least: int) -> list[int]:
    try:
        values = [int(n) for n in _names(text, option)]
    except ValueError:
        values = []
    if not values or min(values) < least:
        raise ValueError(f"--{option}: give comma-separated integers >= {least}, got {text!r}")
    return values


def toy2d(*, dataset: Dataset = "eight_gaussians", steps: int = 1500, seed: int = 0) -> int:
    """Head-to-head on a 2-D toy distribution: train DDPM, flow matching, rectified flow (and its reflow),
    consistency models (training, distillation, sCM, ECT), MeanFlow and INDM (against the same diffusion without
    its flow) with the same MLP, budget and seed, and report each one's sliced Wasserstein distance to fresh data
    at several NFEs (and INDM's exact NLL). The entries are the suite of compare/toy2d_suite.py (objectives of
    the registry), trained in the plain loop of training/plain_loop.py. Pure torch: a few minutes on a laptop CPU.
    With --datasets, the robustness suite instead (`lit-diffusion toy2d --datasets x --help`).

    Args:
        dataset: the 2-D distribution.
        steps: optimiser steps per objective.
        seed: seed of the networks, the data and the noise.
    """
    import torch

    from lit_diffusion.compare.toy2d import ToyConfig, run as run_toy

    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    torch.set_num_threads(1)  # a 2-D MLP is too small to gain from threads; they only contend
    print(f"toy 2-D head-to-head on {dataset}: {steps} steps per objective; "
          "sliced Wasserstein-2 to fresh data (lower is better), sampler@NFE")
    run_toy(ToyConfig(dataset=dataset, steps=steps, seed=seed))
    return 0


def robustness(*, datasets: str, budgets: str = "1500,3000,10000", seeds: str = "0,1,2",
               out: str = "runs/toy2d_robustness", figure: str | None = None, width: int = 128, depth: int = 2,
               lr: float = 3e-3, batch_size: int = 256) -> int:
    """The robustness suite (compare/toy2d_robustness.py): flow matching, DDPM, iCT, MeanFlow, sCM and ECT with
    their class defaults over datasets x budgets x seeds, SW1 and SW2 at each one's default sampler and NFE 1, 2,
    4, the finite-sample floor, a markdown table (mean ± std over seeds) and each few-step objective's 1-step SW1
    over flow matching's best.

    Args:
        datasets: comma-separated distributions (eight_gaussians, ring_and_center, checkerboard, two_moons,
            spirals, student_t).
        budgets: comma-separated optimiser steps per objective.
        seeds: comma-separated seeds.
        out: folder of results.json (resumed when it exists), table.md and samples.pt.
        figure: also write the samples (objective x dataset, first budget and seed) to this PNG.
        width: hidden width of every entry's MLP.
        depth: hidden layers of every entry's MLP.
        lr: Adam's learning rate (cosine decay over the run).
        batch_size: data points per optimiser step.
    """
    from dataclasses import replace
    from pathlib import Path

    import torch

    from lit_diffusion.compare import toy2d_robustness as suite
    from lit_diffusion.data.toy import TOY_DATASETS

    names, steps = _names(datasets, "datasets", TOY_DATASETS), _integers(budgets, "budgets", 1)
    seed_list = _integers(seeds, "seeds", 0)
    if min(width, depth, batch_size) < 1 or not lr > 0:
        raise ValueError(f"--width, --depth and --batch_size must be >= 1 and --lr > 0, got {width}, {depth}, "
                         f"{batch_size}, {lr}")
    cfg = replace(suite.ToyConfig(indm=False), width=width, depth=depth, lr=lr, batch_size=batch_size)
    torch.set_num_threads(1)
    print(f"toy 2-D robustness suite: {names} x {steps} steps x seeds {seed_list}; SW1 to fresh data, sampler@NFE")
    rows = suite.run_suite(names, steps, seed_list, Path(out), cfg, figure_cell=(steps[0], seed_list[0]))
    text = f"{suite.table(rows, 'sw1')}\n\n{suite.table(rows, 'sw2')}\n\n1-step SW1 / flow matching's best:\n\n" \
           f"{suite.ratio_table(rows)}\n"
    (Path(out) / "table.md").write_text(text)
    print(text)
    if figure is not None:
        suite.figure(torch.load(Path(out) / "samples.pt"), Path(figure))
        print(f"figure: {figure}")
    return 0


def main(argv: list[str]) -> int:
    command = robustness if any(a == "--datasets" or a.startswith("--datasets=") for a in argv) else toy2d
    return run(command, argv, "lit-diffusion toy2d", errors=(ValueError,), error_status=2)
