"""The comparison's figures: quality vs NFE, quality vs training FLOPs and wall time, loss vs images seen,
throughput, and sample grids."""
from __future__ import annotations

import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from lit_diffusion.compare.aggregate import Summary  # noqa: E402
from lit_diffusion.generation import image_grid, save_png, to_uint8  # noqa: E402
from lit_diffusion.runs import MetricsLog, RunDirectory  # noqa: E402

LINE_STYLES = [("o", "-"), ("s", "--"), ("^", ":"), ("D", "-.")]


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def quality_vs_nfe(summary: Summary, samplers: dict[str, list[str]], title: str, path: Path) -> None:
    """Colour = objective, marker and line style = sampler, error bars = each point's interval (the bootstrap
    interval, its union over seeds) where it was computed; the untrained networks as a grey band.
    samplers: objective -> its sampler keys, in suite order."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, keys) in enumerate(samplers.items()):
        for j, key in enumerate(keys):
            rows = sorted((r for r in summary.rows if r.objective == name and r.setting.sampler_key == key),
                          key=lambda r: r.nfe)
            nfe, mean = [r.nfe for r in rows], [r.mean_score for r in rows]
            # a bootstrap interval of FD need not contain the estimate (its resamples are biased): clamp at 0
            below = [max(0.0, m - r.interval[0]) if r.interval else 0.0 for m, r in zip(mean, rows)]
            above = [max(0.0, r.interval[1] - m) if r.interval else 0.0 for m, r in zip(mean, rows)]
            marker, line = LINE_STYLES[j % len(LINE_STYLES)]
            ax.errorbar(nfe, mean, yerr=[below, above], marker=marker, linestyle=line, color=f"C{i % 10}",
                        capsize=2, label=f"{name} / {key}")
    untrained = [r.score for rows in summary.untrained.values() for r in rows]
    ax.axhspan(min(untrained) * 0.97, max(untrained) * 1.03, color="0.8", label="untrained networks")
    nfes = sorted({r.nfe for r in summary.rows})
    ax.set(xscale="log", yscale="log", xlabel="NFE (network evaluations per sample)",
           ylabel=_axis_label(summary.primary), title=f"{title}: quality vs NFE")
    ax.set_xticks(nfes, [str(n) for n in nfes])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def _axis_label(metric) -> str:
    return f"{metric.label} ({'lower' if metric.lower_is_better else 'higher'} is better)"


def quality_vs_compute(points, x: str, path: Path, metric) -> None:
    """`metric` (a MetricColumn, the suite's first) along training against `x` ("flops": training FLOPs, "seconds": wall time in fit), one line per
    objective (mean over seeds at each checkpoint step)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, name in enumerate(dict.fromkeys(p.objective for p in points)):
        steps: dict[int, list] = {}
        for p in points:
            if p.objective == name:
                steps.setdefault(p.step, []).append(p)
        pts = sorted((statistics.fmean(getattr(q, x) for q in ps), statistics.fmean(q.score for q in ps))
                     for ps in steps.values())
        ax.plot(*zip(*pts), marker="o", color=f"C{i}", label=f"{name} ({points[0].num_samples} samples)")
    label = {"flops": "training FLOPs", "seconds": "wall time in fit (s)"}[x]
    ax.set(xlabel=label, ylabel=_axis_label(metric), yscale="log",
           title=f"Quality vs {'compute' if x == 'flops' else 'wall time'}")
    ax.legend(fontsize=7)
    _save(fig, path)


def loss_vs_images(runs: dict[str, RunDirectory], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, run in runs.items():
        pts = MetricsLog(run).series("train/images_seen", "train/loss")
        if pts:
            ax.plot(*zip(*pts), label=name)
    ax.set(xlabel="images seen", ylabel="training loss (own scale per objective)", yscale="log", title="Loss vs images seen")
    ax.legend(fontsize=7)
    _save(fig, path)


def throughput(images_per_second: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(list(images_per_second), [statistics.fmean(v) for v in images_per_second.values()])
    ax.set(ylabel="training images/s", title="Throughput")
    _save(fig, path)


def sample_grid(samples: Path, path: Path) -> bool:
    """The saved samples (B, C, H, W) in [-1, 1] as an 8-column PNG grid; False if there are none."""
    if not samples.is_file():
        return False
    save_png(image_grid(to_uint8(torch.load(samples)), columns=8), path)
    return True


def samples_overview(panels: list[tuple[str, Path]], path: Path) -> None:
    """One figure: the given sample grids (title, PNG) side by side."""
    panels = [(title, png) for title, png in panels if png.is_file()]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 3.0), squeeze=False)
    for ax, (title, png) in zip(axes[0], panels):
        ax.imshow(Image.open(png), cmap="gray", interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    _save(fig, path)
