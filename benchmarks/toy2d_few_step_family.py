"""The newer few-step families on the 2-D data, with intervals over seeds: shortcut models, progressive distillation
(rounds 8 -> 4 -> 2 -> 1 from the DDPM run) and PFGM++ against MeanFlow, sCM and rectified flow, each at 1, 2 and 4
steps. The entries are compare/toy2d_suite.py's (the head-to-head's networks and options), run by the robustness
suite's machinery (compare/toy2d_robustness.py: plain loop, SW1 and SW2 to fresh data beside the finite-sample
floor, results.json resumed cell by cell). Writes OUT/table.md (mean ± std over seeds) and a figure of SW1 against
NFE with ± one standard deviation.

    python benchmarks/toy2d_few_step_family.py [--datasets eight_gaussians two_moons] [--seeds 0 1 2]
        [--steps 1500] [--out runs/toy2d_family] [--figure docs/toy2d_few_step_family.png]
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import torch

from lit_diffusion.compare import toy2d_robustness as robustness
from lit_diffusion.compare.toy2d import ToyConfig
from lit_diffusion.compare.toy2d_suite import TOY_SUITE

NFES = (1, 2, 4)
# entry of the head-to-head -> its sampler at 1, 2 and 4 steps (the DDPM run is progressive distillation's
# teacher; the distillation rounds are scored at their own steps only)
SAMPLER = {"rectified_flow": "euler", "mean_flow": "mean_flow", "continuous_consistency": "consistency",
           "shortcut": "shortcut", "pfgmpp": "euler", "ddpm": "ddim"}
LABELS = {"rectified_flow": "rectified flow", "mean_flow": "MeanFlow", "continuous_consistency": "sCM",
          "shortcut": "shortcut", "pfgmpp": "PFGM++ (D 128)", "ddpm": "DDPM (v, cosine), DDIM"}
ROUNDS = ("progressive_distillation (4)", "progressive_distillation (2)", "progressive_distillation (1)")


def family_suite():
    by_name = {e.name: e for e in TOY_SUITE}
    entries = [replace(by_name[n], evals=tuple((s, k) for k in NFES), baseline=None) for n, s in SAMPLER.items()]
    return tuple(entries + [by_name[n] for n in ROUNDS])  # each round also scores its teacher (not kept)


def curves(rows: list[dict]) -> dict:
    """{dataset: {label: [(nfe, mean, std)]}}, SW1 over seeds; the distillation rounds joined into one curve."""
    found: dict = {}
    for r in rows:
        if r["objective"] == "floor":
            continue
        label = "progressive distillation" if r["objective"] in ROUNDS else LABELS.get(r["objective"], r["objective"])
        found.setdefault(r["dataset"], {}).setdefault(label, {}).setdefault(r["nfe"], []).append(r["sw1"])
    return {d: {label: [(n, statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0)
                        for n, v in sorted(per.items()) if n in NFES] for label, per in labels.items()}
            for d, labels in found.items()}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = {r["dataset"]: r["sw1"] for r in rows if r["objective"] == "floor"}
    found = curves(rows)
    fig, axes = plt.subplots(1, len(found), figsize=(4.6 * len(found), 3.6), squeeze=False)
    for ax, (dataset, labels) in zip(axes[0], found.items()):
        for label, points in labels.items():
            n, mean, std = zip(*points)
            ax.errorbar(n, mean, yerr=std, marker="o", capsize=3, label=label)
        ax.axhline(floors[dataset], color="grey", ls="--", lw=1, label="floor (two data sets)")
        ax.set(xscale="log", yscale="log", xticks=NFES, xlabel="steps (NFE)", ylabel="SW1 to fresh data", title=dataset)
        ax.minorticks_off()
        ax.set_xticklabels([str(n) for n in NFES])
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["eight_gaussians", "two_moons"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--out", type=Path, default=Path("runs/toy2d_family"))
    parser.add_argument("--figure", type=Path, default=Path("docs/toy2d_few_step_family.png"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # a 2-D MLP gains nothing from threads
    rows = robustness.run_suite(args.datasets, [args.steps], args.seeds, args.out, ToyConfig(indm=False),
                                suite=family_suite())
    text = robustness.wide_table(rows, args.steps) + "\n\n" + robustness.table(rows, "sw1")
    (args.out / "table.md").write_text(text + "\n")
    plot(rows, args.figure)
    print(text)
    print(f"figure: {args.figure}\n(python benchmarks/toy2d_few_step_family.py --datasets {' '.join(args.datasets)} "
          f"--seeds {' '.join(map(str, args.seeds))} --steps {args.steps})")


if __name__ == "__main__":
    main()
