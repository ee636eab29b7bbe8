"""The comparison report: `report.md` (objective x sampler x NFE -> FD, KID, accuracy, mean +- std over
seeds; training throughput, wall time, parameters), PNG plots (quality vs NFE, loss vs images seen,
throughput) and one sample grid per objective; the same tables and plots go to W&B when
WANDB_PROJECT is set."""
from __future__ import annotations

import os
from pathlib import Path

from lit_diffusion.compare import plots
from lit_diffusion.compare.aggregate import Summary, fmt
from lit_diffusion.compare.results import TrainRecord


def _markdown(suite, summary: Summary, records: dict[tuple[str, int], TrainRecord], feature_net, reference) -> list[str]:
    lines = [f"# Comparison: {suite.name}", "",
             f"Suite `{suite.source}`; budget {suite.max_images:,} images per run; seeds {suite.seeds}; "
             f"{suite.num_samples} samples per evaluation from one shared noise bank; features: "
             f"{getattr(feature_net, 'name', type(feature_net).__name__)} (reference: {int(reference.get('num', 0)):,} images).",
             "", "| objective | sampler | NFE | FD ↓ | KID ↓ | class accuracy |", "|---|---|---|---|---|---|"]
    for r in summary.rows:
        lines.append(f"| {r.objective} | {r.setting.sampler_key} | {r.nfe} | {fmt(r.fd)} | {fmt(r.kid)} | "
                     f"{fmt(r.accuracy) if r.accuracy else '–'} |")
    lines += ["", "| objective | best (sampler@NFE) | FD | untrained network, same sampler | training images/s | "
              "wall time (s) | parameters |", "|---|---|---|---|---|---|---|"]
    for entry in suite.objectives:
        t = [records[(entry.name, s)] for s in suite.seeds]
        best, untrained = summary.best[entry.name], summary.untrained[entry.name]
        lines.append(f"| {entry.name} | {best.setting.label} | {best.mean_fd:.3f} | "
                     f"{fmt([u.fd for u in untrained])} ({untrained[0].setting.label}) | "
                     f"{fmt([x.images_per_second for x in t])} | {fmt([x.seconds for x in t])} | {t[0].parameters:,} |")
    lines += ["", "| NFE | winner (lowest FD) | FD |", "|---|---|---|"]
    lines += [f"| {n} | {w.objective} ({w.setting.sampler_key}) | {w.mean_fd:.3f} |" for n, w in sorted(summary.winners.items())]
    lines += ["", "| objective | config | overrides |", "|---|---|---|"]
    lines += [f"| {e.name} | `{Path(e.config).name}` | {' '.join(f'`{o}`' for o in e.overrides) or '–'} |"
              for e in suite.objectives]
    lines += ["", "![quality vs NFE](quality_vs_nfe.png)", "![loss vs images](loss_vs_images.png)",
              "![throughput](throughput.png)", ""]
    lines += ["![samples of every objective at its best setting](samples.png)", ""]
    lines += [f"![{e.name}, {summary.best[e.name].setting.label}](samples_{e.name}.png)" for e in suite.objectives]
    return lines


def _figures(suite, summary: Summary, records: dict[tuple[str, int], TrainRecord], out: Path) -> None:
    names, first = [e.name for e in suite.objectives], suite.seeds[0]
    plots.quality_vs_nfe(summary, {e.name: list(e.samplers) for e in suite.objectives}, suite.name,
                         out / "quality_vs_nfe.png")
    plots.loss_vs_images({n: suite.run(n, first) for n in names}, out / "loss_vs_images.png")
    plots.throughput({n: [records[(n, s)].images_per_second for s in suite.seeds] for n in names}, out / "throughput.png")
    for name in names:  # the grid of each objective's best setting, first seed
        plots.sample_grid(suite.run(name, first).sample_file(summary.best[name].setting.label), out / f"samples_{name}.png")
    plots.samples_overview([(f"{n}\n{summary.best[n].setting.label}, FD {summary.best[n].mean_fd:.1f}",
                             out / f"samples_{n}.png") for n in names], out / "samples.png")


def write_report(suite, records: dict[tuple[str, int], TrainRecord], summary: Summary, feature_net, reference) -> Path:
    out = Path(suite.out)
    lines = _markdown(suite, summary, records, feature_net, reference)
    _figures(suite, summary, records, out)
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    _to_wandb(suite, lines, out)
    return report


def _to_wandb(suite, lines, out: Path) -> None:
    project = os.environ.get("WANDB_PROJECT")
    if not project:
        return
    import wandb

    run = wandb.init(project=project, name=f"compare-{suite.name}", job_type="compare", dir=str(out))
    run.log({"report": wandb.Html("<pre>" + "\n".join(lines) + "</pre>")} |
            {p.stem: wandb.Image(str(p)) for p in out.glob("*.png")})
    run.finish()
