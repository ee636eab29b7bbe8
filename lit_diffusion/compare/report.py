"""The comparison report: `report.md` (objective x sampler x NFE -> FD, KID, accuracy, mean +- std over
seeds; training throughput, wall time, parameters), PNG plots (quality vs NFE, loss vs images seen,
throughput) and one sample grid per objective; the same tables and plots go to W&B when
WANDB_PROJECT is set."""
from __future__ import annotations

import csv
import os
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lit_diffusion.training.preview import image_grid, save_png  # noqa: E402


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _fmt(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {std:.3f}"


def _losses(run_dir: Path) -> list[tuple[float, float]]:
    points = []
    for path in sorted((run_dir / "csv").glob("version_*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                if row.get("train/loss") and row.get("train/images_seen"):
                    points.append((float(row["train/images_seen"]), float(row["train/loss"])))
    return sorted(points)


def write_report(suite, trained: dict, evaluated: dict, feature_net, reference) -> Path:
    out = Path(suite.out)
    rows, best = [], {}
    for entry in suite.objectives:
        keys = [k for k in evaluated[(entry.name, suite.seeds[0])] if k != "untrained"]
        for key in keys:
            per_seed = [evaluated[(entry.name, s)][key] for s in suite.seeds]
            fd = [m["fd"] for m in per_seed]
            rows.append((entry.name, key.split("@")[0], per_seed[0]["nfe"], fd, [m["kid"] for m in per_seed],
                         [m["class_accuracy"] for m in per_seed if "class_accuracy" in m]))
            if entry.name not in best or statistics.fmean(fd) < best[entry.name][1]:
                best[entry.name] = (key, statistics.fmean(fd))
    lines = [f"# Comparison: {suite.name}", "",
             f"Suite `{suite.source}`; budget {suite.max_images:,} images per run; seeds {suite.seeds}; "
             f"{suite.num_samples} samples per evaluation from one shared noise bank; features: "
             f"{getattr(feature_net, 'name', type(feature_net).__name__)} (reference: {int(reference.get('num', 0)):,} images).",
             "", "| objective | sampler | NFE | FD ↓ | KID ↓ | class accuracy |", "|---|---|---|---|---|---|"]
    for name, sampler, nfe, fd, kid, acc in rows:
        lines.append(f"| {name} | {sampler} | {nfe} | {_fmt(fd)} | {_fmt(kid)} | {_fmt(acc) if acc else '–'} |")
    lines += ["", "| objective | best (sampler@NFE) | FD | untrained network, same sampler | training images/s | "
              "wall time (s) | parameters |", "|---|---|---|---|---|---|---|"]
    for entry in suite.objectives:
        t = [trained[(entry.name, s)] for s in suite.seeds]
        untrained = [evaluated[(entry.name, s)]["untrained"] for s in suite.seeds]
        lines.append(f"| {entry.name} | {best[entry.name][0]} | {best[entry.name][1]:.3f} | "
                     f"{_fmt([u['fd'] for u in untrained])} ({untrained[0]['key']}) | "
                     f"{_fmt([x['images_per_second'] for x in t])} | {_fmt([x['seconds'] for x in t])} | {t[0]['parameters']:,} |")
    # winner per NFE: the lowest mean FD among all objective/sampler pairs evaluated at that NFE
    by_nfe: dict[int, tuple[str, float]] = {}
    for name, sampler, nfe, fd, _, _ in rows:
        if nfe not in by_nfe or statistics.fmean(fd) < by_nfe[nfe][1]:
            by_nfe[nfe] = (f"{name} ({sampler})", statistics.fmean(fd))
    lines += ["", "| NFE | winner (lowest FD) | FD |", "|---|---|---|"]
    lines += [f"| {n} | {w} | {f:.3f} |" for n, (w, f) in sorted(by_nfe.items())] + [""]
    lines += ["| objective | config | overrides |", "|---|---|---|"]
    lines += [f"| {e.name} | `{Path(e.config).name}` | {' '.join(f'`{o}`' for o in e.overrides) or '–'} |"
              for e in suite.objectives]
    lines += ["", "![quality vs NFE](quality_vs_nfe.png)", "![loss vs images](loss_vs_images.png)",
              "![throughput](throughput.png)", ""]
    lines += ["![samples of every objective at its best setting](samples.png)", ""]
    lines += [f"![{e.name}, {best[e.name][0]}](samples_{e.name}.png)" for e in suite.objectives]

    # colour = objective, marker and line style = sampler; the untrained networks as a grey band
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]
    for i, entry in enumerate(suite.objectives):
        for j, sampler in enumerate(entry.samplers):
            pts = sorted((nfe, statistics.fmean(fd)) for n, s, nfe, fd, _, _ in rows if n == entry.name and s == sampler)
            marker, line = styles[j % len(styles)]
            ax.plot(*zip(*pts), marker=marker, linestyle=line, color=f"C{i}", label=f"{entry.name} / {sampler}")
    untrained = [evaluated[(e.name, s)]["untrained"]["fd"] for e in suite.objectives for s in suite.seeds]
    ax.axhspan(min(untrained) * 0.97, max(untrained) * 1.03, color="0.8", label="untrained networks")
    nfes = sorted({row[2] for row in rows})
    ax.set(xscale="log", yscale="log", xlabel="NFE (network evaluations per sample)",
           ylabel="Fréchet distance (lower is better)", title=f"{suite.name}: quality vs NFE")
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(out / "quality_vs_nfe.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for entry in suite.objectives:
        pts = _losses(suite.run_dir(entry.name, suite.seeds[0]))
        if pts:
            ax.plot(*zip(*pts), label=entry.name)
    ax.set(xlabel="images seen", ylabel="training loss (own scale per objective)", yscale="log", title="Loss vs images seen")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "loss_vs_images.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 3))
    names = [e.name for e in suite.objectives]
    ax.bar(names, [statistics.fmean(trained[(n, s)]["images_per_second"] for s in suite.seeds) for n in names])
    ax.set(ylabel="training images/s", title="Throughput")
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=120)
    plt.close(fig)

    for entry in suite.objectives:  # the grid of each objective's best sampler@NFE, first seed
        grid_path = suite.run_dir(entry.name, suite.seeds[0]) / "samples" / f"{best[entry.name][0]}.pt"
        if grid_path.is_file():
            save_png(image_grid(torch.load(grid_path)), out / f"samples_{entry.name}.png")
    _samples_overview(suite, best, out)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    _to_wandb(suite, lines, out)
    return report


def _samples_overview(suite, best: dict, out: Path) -> None:
    """One figure: each objective's sample grid (first seed, best sampler@NFE) side by side, titled."""
    panels = [(e.name, out / f"samples_{e.name}.png") for e in suite.objectives]
    panels = [(name, path) for name, path in panels if path.is_file()]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (name, path) in zip(axes[0], panels):
        ax.imshow(Image.open(path), cmap="gray", interpolation="nearest")
        key, fd = best[name]
        ax.set_title(f"{name}\n{key}, FD {fd:.1f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "samples.png", dpi=120)
    plt.close(fig)


def _to_wandb(suite, lines, out: Path) -> None:
    project = os.environ.get("WANDB_PROJECT")
    if not project:
        return
    import wandb

    run = wandb.init(project=project, name=f"compare-{suite.name}", job_type="compare", dir=str(out))
    run.log({"report": wandb.Html("<pre>" + "\n".join(lines) + "</pre>")} |
            {p.stem: wandb.Image(str(p)) for p in out.glob("*.png")})
    run.finish()
