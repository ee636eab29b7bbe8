"""The 2-D robustness suite: the objectives that matter for few-step generation (flow matching, rectified flow,
DDPM, consistency training, MeanFlow, sCM, ECT), each with its class defaults, over several toy distributions
(data/toy.py) x budgets x seeds, trained by compare/toy2d.py's entries in the plain loop (training/plain_loop.py).
Each is scored at its default sampler and at NFE 1, 2, 4 by sliced Wasserstein-1 and -2 to fresh data, beside
the finite-sample floor (the distance between two fresh data sets of the same size). Rows are appended to a JSON
file as they finish, so an interrupted suite resumes where it stopped."""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from lit_diffusion.compare.json_files import write_json_atomic
from lit_diffusion.compare.toy2d import ToyConfig, ToyRun, distance_to_data, generate, run_entry
from lit_diffusion.compare.toy2d_suite import ToyEntry, ToyNet
from lit_diffusion.data.toy import sample_toy
from lit_diffusion.evaluation.cache import atomic_save
from lit_diffusion.objectives import OBJECTIVES

NFES = (1, 2, 4)
FEW_STEP = ("consistency_training", "mean_flow", "continuous_consistency", "consistency_tuning")
MANY_STEP = ("flow_matching", "rectified_flow", "ddpm")


def evals_of(objective: str) -> tuple[tuple[str, int], ...]:
    """The objective's default sampler at its default NFE, then at NFE 1, 2, 4."""
    cls = OBJECTIVES[objective]
    nfes = [cls.default_nfe] + [n for n in NFES if n != cls.default_nfe]
    return tuple((cls.default_sampler, n) for n in nfes)


def _entry(name: str, net: ToyNet = ToyNet(), **kwargs) -> ToyEntry:
    return ToyEntry(name, name, evals_of(name), net=net, **kwargs)


# each objective with its class defaults; the networks as the objectives' docs ask (second time input for
# MeanFlow, t embedded at scale 1 for the JVP objectives); ECT starts from the flow-matching run (its steps on top)
ROBUST_SUITE: tuple[ToyEntry, ...] = (
    _entry("flow_matching"),  # rectified flow at its defaults is the same computation (same SW to 3 digits): left out
    _entry("ddpm"),
    _entry("consistency_training"),
    _entry("mean_flow", ToyNet(second_time=True, time_scale=1.0)),
    _entry("continuous_consistency", ToyNet(time_scale=1.0)),
    _entry("consistency_tuning", options=lambda run: {"base": run.objectives["flow_matching"]},
           tune_from="flow_matching", baseline="consistency_tuning (init: flow_matching)"),
)


def floor(cfg: ToyConfig, p: int, seed: int = 123) -> float:
    """SW_p between two fresh data sets of the suite's size: what a perfect model would score."""
    x = sample_toy(cfg.dataset, cfg.eval_samples, generator=torch.Generator().manual_seed(seed + 1000))
    return distance_to_data(x, cfg, seed, p)


def run_cell(cfg: ToyConfig, suite=ROBUST_SUITE, log=print, samples: dict | None = None) -> list[dict]:
    """Train and score every entry on one (dataset, budget, seed); rows {dataset, steps, seed, objective,
    sampler, nfe, sw1, sw2, seconds}. `samples`, when given, receives each entry's default-sampler samples."""
    state, rows = ToyRun(cfg, log=lambda line: None), []
    for entry in suite:
        start = time.perf_counter()
        run_entry(state, entry)
        seconds = time.perf_counter() - start
        objective, net = state.objectives[entry.name], state.nets[entry.name]
        for sampler, nfe in entry.evals:
            x = generate(objective, net, cfg, sampler, nfe)
            if samples is not None and (sampler, nfe) == entry.evals[0]:
                samples[entry.name] = x[:1000].clone()
            rows.append({"dataset": cfg.dataset, "steps": cfg.steps, "seed": cfg.seed, "objective": entry.name,
                         "sampler": sampler, "nfe": nfe, "sw1": distance_to_data(x, cfg, p=1),
                         "sw2": distance_to_data(x, cfg, p=2), "seconds": round(seconds, 1)})
        row = rows[-len(entry.evals)]
        log(f"{cfg.dataset:<16} {cfg.steps:>6} seed {cfg.seed}  {entry.name:<24} "
            + "  ".join(f"{r['sampler']}@{r['nfe']} {r['sw1']:.3f}" for r in rows[-len(entry.evals):])
            + f"  (SW1; {row['seconds']:.0f} s)")
    return rows


def setup_of(cfg: ToyConfig) -> dict:
    """What every cell of a results folder shares (the network, optimiser and scoring); per-cell keys excluded."""
    return {"width": cfg.width, "depth": cfg.depth, "lr": cfg.lr, "batch_size": cfg.batch_size,
            "eval_samples": cfg.eval_samples}


def check_setup(out: Path, cfg: ToyConfig) -> None:
    """out/setup.json records the setup the folder's cells were trained with; resuming with another would mix
    two setups in one table, so it is refused."""
    path, setup = out / "setup.json", setup_of(cfg)
    if not path.exists():
        if (out / "results.json").exists():  # a folder from before setup.json: the defaults it was run with
            write_json_atomic(setup_of(ToyConfig()), path)
        else:
            write_json_atomic(setup, path)
    found = json.loads(path.read_text())
    if found != setup:
        changed = ", ".join(f"{k} {found.get(k)} -> {v}" for k, v in setup.items() if found.get(k) != v)
        raise ValueError(f"{out} holds cells trained with another setup ({changed}); give another --out, or the "
                         f"setup of {path}")


def run_suite(datasets, budgets, seeds, out: Path, cfg: ToyConfig = ToyConfig(indm=False), suite=ROBUST_SUITE,
              log=print, figure_cell: tuple[int, int] | None = None) -> list[dict]:
    """Every (dataset, budget, seed) cell not yet in out/results.json; returns all rows. The default-sampler
    samples of the cells at figure_cell = (budget, seed) are saved to out/samples.pt for the figure."""
    out.mkdir(parents=True, exist_ok=True)
    check_setup(out, cfg)
    path, sample_path = out / "results.json", out / "samples.pt"
    rows = json.loads(path.read_text()) if path.exists() else []
    bank = torch.load(sample_path) if sample_path.exists() else {}
    done = {(r["dataset"], r["steps"], r["seed"]) for r in rows if r["objective"] != "floor"}
    for dataset in datasets:
        if not any(r["objective"] == "floor" and r["dataset"] == dataset for r in rows):
            rows.append({"dataset": dataset, "objective": "floor", "sw1": floor(replace(cfg, dataset=dataset), 1),
                         "sw2": floor(replace(cfg, dataset=dataset), 2)})
        for steps in budgets:
            for seed in seeds:
                if (dataset, steps, seed) in done:
                    continue
                samples = {} if figure_cell == (steps, seed) else None
                rows += run_cell(replace(cfg, dataset=dataset, steps=steps, seed=seed), suite, log, samples)
                if samples:
                    bank[dataset] = samples
                    atomic_save(bank, sample_path)  # whole or not at all: a kill mid-write keeps the cells done
                write_json_atomic(rows, path)
    write_json_atomic(rows, path)
    return rows


def _spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {statistics.stdev(values):.3f}"


def table(rows: list[dict], metric: str = "sw1") -> str:
    """Markdown: one line per (dataset, budget, objective, sampler@NFE), mean ± standard deviation over seeds
    (and the number of seeds), with the floor per dataset."""
    floors = {r["dataset"]: r for r in rows if r.get("objective") == "floor"}
    groups: dict = {}
    for r in rows:
        if r.get("objective") != "floor":
            groups.setdefault((r["dataset"], r["steps"], r["objective"], r["sampler"], r["nfe"]), []).append(r[metric])
    lines = [f"| dataset | steps | objective | sampler@NFE | {metric.upper()} (seeds) | floor |",
             "|---|---|---|---|---|---|"]
    for (dataset, steps, objective, sampler, nfe), values in groups.items():
        lines.append(f"| {dataset} | {steps} | {objective} | {sampler}@{nfe} | {_spread(values)} ({len(values)}) | "
                     f"{floors[dataset][metric]:.3f} |" if dataset in floors else "")
    return "\n".join(lines)


def wide_table(rows: list[dict], steps: int, metric: str = "sw1") -> str:
    """Markdown at one budget: a line per objective x sampler@NFE, a column per dataset (mean over seeds), the
    floor first."""
    floors = {r["dataset"]: r[metric] for r in rows if r.get("objective") == "floor"}
    cells: dict = {}
    for r in rows:
        if r.get("objective") != "floor" and r["steps"] == steps:
            row = cells.setdefault((r["objective"], f"{r['sampler']}@{r['nfe']}"), {})
            row.setdefault(r["dataset"], []).append(r[metric])
    datasets = list(dict.fromkeys(d for per in cells.values() for d in per))
    lines = [f"| {metric.upper()}, {steps} steps | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets),
             "| floor (two data sets) | " + " | ".join(f"{floors.get(d, float('nan')):.3f}" for d in datasets) + " |"]
    for (objective, label), per in cells.items():
        lines.append(f"| {objective} {label} | " + " | ".join(
            f"{statistics.fmean(per[d]):.3f}" if d in per else "-" for d in datasets) + " |")
    return "\n".join(lines)


def ratios(rows: list[dict], metric: str = "sw1") -> dict:
    """{(dataset, steps): {few-step objective: its 1-step metric / flow matching's best over its evals}}, means
    over seeds."""
    mean: dict = {}
    for r in rows:
        if r.get("objective") != "floor":
            mean.setdefault((r["dataset"], r["steps"], r["objective"], r["nfe"]), []).append(r[metric])
    mean = {k: statistics.fmean(v) for k, v in mean.items()}
    out: dict = {}
    for (dataset, steps, objective, nfe), value in mean.items():
        if objective not in MANY_STEP and nfe == 1:
            best = min(v for (d, s, o, _), v in mean.items() if (d, s, o) == (dataset, steps, "flow_matching"))
            out.setdefault((dataset, steps), {})[objective] = value / best
    return out


def ratio_table(rows: list[dict], metric: str = "sw1") -> str:
    found = ratios(rows, metric)
    names = list(dict.fromkeys(o for per in found.values() for o in per))
    lines = ["| dataset | steps | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for (dataset, steps), per in sorted(found.items()):
        lines.append(f"| {dataset} | {steps} | " + " | ".join(f"{per[o]:.2f}x" if o in per else "-" for o in names)
                     + " |")
    return "\n".join(lines)


def figure(bank: dict, path: Path) -> None:
    """Samples per objective (rows) x dataset (columns), each at its default sampler."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(bank)
    objectives = ["data"] + [o for o in bank[datasets[0]]]
    fig, axes = plt.subplots(len(objectives), len(datasets), figsize=(1.6 * len(datasets), 1.6 * len(objectives)),
                             squeeze=False)
    for j, dataset in enumerate(datasets):
        for i, objective in enumerate(objectives):
            x = sample_toy(dataset, 1000, generator=torch.Generator().manual_seed(0)) if objective == "data" \
                else bank[dataset][objective]
            ax = axes[i, j]
            ax.scatter(x[:, 0], x[:, 1], s=0.5, alpha=0.5)
            ax.set_xlim(-2, 2), ax.set_ylim(-2, 2), ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(dataset, fontsize=7)
            if j == 0:
                ax.set_ylabel(objective.replace("_", " "), fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
