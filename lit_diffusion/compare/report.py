"""The comparison report: `report.md` (objective x sampler x NFE -> every metric of the suite, mean +- std over
seeds, the first metric with its bootstrap interval; the winner per NFE only where intervals separate, else a tie; each run's
training FLOPs and wall time; quality vs training FLOPs and wall time; the post-hoc EMA sweep; the protocol
card), PNG plots and one sample grid per objective; the same tables, plots and cards go to W&B when
WANDB_PROJECT is set."""
from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

from lit_diffusion.compare import plots
from lit_diffusion.compare.aggregate import Summary, fmt, mean_std
from lit_diffusion.compare.card import card_markdown, shared_and_varying
from lit_diffusion.compare.intervals import LEVEL
from lit_diffusion.compare.results import TrainRecord

TUNED_NOTE = (" A tuned run (`tune_from`) counts the images, FLOPs and time of the checkpoint it started from: its "
              "two stages together spend the same images as every other run.")
CARD_ROW_FIELDS = ("sampler", "grid", "nfe", "num_generated", "ema", "guidance")  # shown per row when they vary


def _interval(row) -> str:
    return "–" if row.interval is None else f"[{row.interval[0]:.3f}, {row.interval[1]:.3f}]"


def _scores_table(summary: Summary, cards: dict) -> list[str]:
    """One column per metric that some row has (the first with its interval beside it), then the card fields
    that vary."""
    varying = [k for k in cards["varying"] if k not in CARD_ROW_FIELDS]  # sampler/NFE/EMA are columns already
    primary = summary.primary
    columns = [c for c in summary.columns if c is primary or any(c.name in r.values for r in summary.rows)]
    head = "| objective | sampler | NFE |" + "".join(
        f" {c.label} {c.arrow} |" + (f" {c.label} {int(100 * LEVEL)}% interval |" if c is primary else "")
        for c in columns)
    lines = [head + "".join(f" {k} |" for k in varying), "|---" * (4 + len(columns) + len(varying)) + "|"]
    for r in summary.rows:
        card = cards["rows"].get((r.objective, r.setting), {})
        cells = "".join(f" {fmt(r.values[c.name]) if c.name in r.values else '–'} |"
                        + (f" {_interval(r)} |" if c is primary else "") for c in columns)
        lines.append(f"| {r.objective} | {r.setting.sampler_key} | {r.nfe} |{cells}"
                     + "".join(f" {card.get(k, '–')} |" for k in varying))
    return lines


def _compute_table(suite, records: dict[tuple[str, int], TrainRecord]) -> list[str]:
    lines = ["| objective | training FLOPs per image | training FLOPs per run | wall time in fit (s) | images seen | "
             "optimiser steps | training images/s |", "|---|---|---|---|---|---|---|"]
    for entry in suite.objectives:
        t = [records[(entry.name, s)] for s in suite.seeds]
        per_image = f"{t[0].flops_per_image / 1e6:.2f} MFLOP" if t[0].flops_per_image else "not measured"
        total = fmt([x.flops / 1e12 for x in t]) + " TFLOP" if t[0].flops else "–"
        lines.append(f"| {entry.name} | {per_image} | {total} | {fmt([x.seconds for x in t])} | "
                     f"{_counts([x.images_seen for x in t])}{_stages(entry, t)} | {_counts([x.steps for x in t])} | "
                     f"{fmt([x.images_per_second for x in t])} |")
    return lines


def _stages(entry, records: list[TrainRecord]) -> str:
    """For a tuned run: how its images split between the run it started from and its own training."""
    if entry.tune_from is None:
        return ""
    pre = _counts([r.pretraining_images for r in records])
    own = _counts([r.images_seen - r.pretraining_images for r in records])
    return f" ({pre} in {entry.tune_from.objective}'s run + {own} tuning)"


def _counts(values: list[int]) -> str:
    """Whole numbers: one value when the seeds agree, else each seed's."""
    return f"{values[0]:,}" if len(set(values)) == 1 else " / ".join(f"{v:,}" for v in values)


def _curve_table(curve, metric) -> list[str]:
    if not curve:
        return []
    lines = [f"| objective | seed | setting | step | images seen | training TFLOP | wall time (s) | {metric.label} "
             f"{metric.arrow} |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p.objective} | {p.seed} | {p.setting} | {p.step} | {p.images_seen:,} | {p.flops / 1e12:.4f} | "
              f"{p.seconds:.1f} | {p.score:.3f} |" for p in curve]
    return lines


def _sweep_table(sweep, metric) -> list[str]:
    if not sweep:
        return []
    lines = [f"| objective | setting | sigma_rel | {metric.label} {metric.arrow} (mean over seeds) | profile residual |",
             "|---|---|---|---|---|"]
    sign = 1 if metric.lower_is_better else -1
    best = {}
    for name in dict.fromkeys(p.objective for p in sweep):
        rows = {}
        for p in sweep:
            if p.objective == name:
                rows.setdefault(p.sigma_rel, []).append(p)
        means = {s: sign * statistics.fmean(q.score for q in ps) for s, ps in rows.items()}
        best[name] = min(means, key=means.get)
        for s, ps in rows.items():
            mark = " **best**" if s == best[name] else ""
            lines.append(f"| {name} | {ps[0].setting} | {s:g}{mark} | {fmt([q.score for q in ps])} | "
                         f"{max(q.residual for q in ps):.2e} |")
    return lines


def collect_cards(summary: Summary, scores_cards: list[tuple]) -> dict:
    """The shared card, the varying field names, and each table row's card (first seed's)."""
    rows = {}
    for objective, setting, card in scores_cards:
        rows.setdefault((objective, setting), card)
    shared, varying = shared_and_varying([c for _, _, c in scores_cards])
    return {"shared": shared, "varying": varying, "rows": rows}


def _markdown(suite, summary: Summary, records, feature_net, reference, cards: dict, curve, sweep) -> list[str]:
    m = summary.primary
    best_word = "lowest" if m.lower_is_better else "highest"
    lines = [f"# Comparison: {suite.name}", "",
             f"Suite `{suite.source}`; budget {suite.budget_text}; seeds {suite.seeds}; "
             f"{suite.num_samples} samples per evaluation from one shared noise bank; features: "
             f"{getattr(feature_net, 'name', type(feature_net).__name__)} (reference: {int(reference.get('num', 0)):,} images). "
             f"Metrics: {', '.join(c.label for c in summary.columns)}; rows are ranked by {m.label}. "
             f"Each value is the mean ± std over seeds; {m.label}'s interval is the {int(100 * LEVEL)}% bootstrap "
             "interval over the "
             f"generated samples ({suite.bootstrap} resamples; over several seeds the union of the seeds' intervals).",
             "", *_scores_table(summary, cards), ""]
    lines += [f"| objective | best (sampler@NFE) | {m.label} | untrained network (a tuned run: its start checkpoint), "
              "same sampler |", "|---|---|---|---|"]
    for entry in suite.objectives:
        best, untrained = summary.best[entry.name], summary.untrained[entry.name]
        start = f", {entry.tune_from.objective}'s checkpoint before tuning" if entry.tune_from else ""
        lines.append(f"| {entry.name} | {best.setting.label} | {best.mean_score:.3f} | "
                     f"{fmt([u.score for u in untrained])} ({untrained[0].setting.label}{start}) |")
    lines += ["", f"Winner per NFE: declared only where the {best_word} {m.label}'s interval separates from every other "
              "objective's best interval at that NFE; otherwise a tie of every objective whose interval overlaps it.",
              "", f"| NFE | winner or tie | {best_word} {m.label} | its interval |", "|---|---|---|---|"]
    lines += [f"| {n} | {summary.verdict(n)} | {w.mean_score:.3f} | {_interval(w)} |"
              for n, w in sorted(summary.winners.items())]
    lines += ["", "## Compute", "", f"Training FLOPs are measured on each objective's real training step (every "
              "forward, backward and JVP pass of its loss, a teacher's forwards included; torch.utils.flop_counter) "
              "x images seen; wall time is time in fit, summed over resumes." + TUNED_NOTE * any(e.tune_from for e in suite.objectives),
              "", *_compute_table(suite, records), ""]
    if curve:
        lines += ["## Quality vs compute", "", f"{m.label} along training at each objective's default setting (its first "
                  f"sampler at that sampler's largest NFE), from **{suite.curve_samples} samples** per point (cheaper "
                  f"than the {suite.num_samples} of the table above, so not comparable to it in absolute value).", "",
                  f"![{m.label} vs training FLOPs]({m.name}_vs_flops.png) ![{m.label} vs wall time]({m.name}_vs_time.png)",
                  "", *_curve_table(curve, m), ""]
    if sweep:
        lines += ["## Post-hoc EMA length sweep", "", "Each run's EMA reconstructed from its snapshots (EDM2 sec. 3) at "
                  "each sigma_rel, scored at the default setting; the best per objective is marked.", "",
                  *_sweep_table(sweep, m), ""]
    lines += ["## Protocol", "", "Shared by every score of this report (fields that differ are columns of the table "
              "above or listed below):", "", *card_markdown(cards["shared"]), ""]
    if cards["varying"]:
        lines += [f"Fields that differ between scores: {', '.join(cards['varying'])}.", ""]
    lines += ["| objective | config | overrides |", "|---|---|---|"]
    lines += [f"| {e.name} | `{Path(e.config).name}` | {' '.join(f'`{o}`' for o in e.overrides) or '–'} |"
              for e in suite.objectives]
    lines += ["", "![quality vs NFE](quality_vs_nfe.png)", "![loss vs images](loss_vs_images.png)",
              "![throughput](throughput.png)", ""]
    lines += ["![samples of every objective at its best setting](samples.png)", ""]
    lines += [f"![{e.name}, {summary.best[e.name].setting.label}](samples_{e.name}.png)" for e in suite.objectives]
    return lines


def _figures(suite, summary: Summary, records: dict[tuple[str, int], TrainRecord], out: Path, curve) -> None:
    names, first = [e.name for e in suite.objectives], suite.seeds[0]
    plots.quality_vs_nfe(summary, {e.name: list(e.samplers) for e in suite.objectives}, suite.name,
                         out / "quality_vs_nfe.png")
    m = summary.primary
    if curve:
        plots.quality_vs_compute(curve, "flops", out / f"{m.name}_vs_flops.png", m)
        plots.quality_vs_compute(curve, "seconds", out / f"{m.name}_vs_time.png", m)
    plots.loss_vs_images({n: suite.run(n, first) for n in names}, out / "loss_vs_images.png")
    plots.throughput({n: [records[(n, s)].images_per_second for s in suite.seeds] for n in names}, out / "throughput.png")
    for name in names:  # the grid of each objective's best setting, first seed
        plots.sample_grid(suite.run(name, first).sample_file(summary.best[name].setting.label), out / f"samples_{name}.png")
    plots.samples_overview([(f"{n}\n{summary.best[n].setting.label}, {m.label} {summary.best[n].mean_score:.1f}",
                             out / f"samples_{n}.png") for n in names], out / "samples.png")


def write_report(suite, records: dict[tuple[str, int], TrainRecord], summary: Summary, feature_net, reference,
                 curve=(), sweep=(), scores=()) -> Path:
    out = Path(suite.out)
    cards = collect_cards(summary, [(r.objective, r.setting, r.protocol) for r in scores if not r.untrained and r.protocol])
    lines = _markdown(suite, summary, records, feature_net, reference, cards, list(curve), list(sweep))
    _figures(suite, summary, records, out, list(curve))
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    _to_wandb(suite, lines, out, cards, records, summary)
    return report


def _to_wandb(suite, lines, out: Path, cards: dict, records, summary: Summary | None = None) -> None:
    project = os.environ.get("WANDB_PROJECT")
    if not project:
        return
    import wandb

    run = wandb.init(project=project, name=f"compare-{suite.name}", job_type="compare", dir=str(out),
                     config={"protocol": cards["shared"], "budget": suite.budget_text})
    table = wandb.Table(columns=["objective", "seed", "training_flops", "wall_seconds", "images_seen"],
                        data=[[o, s, r.flops, r.seconds, r.images_seen] for (o, s), r in records.items()])
    scores = _wandb_scores(wandb, cards, summary)
    run.log({"report": wandb.Html("<pre>" + "\n".join(lines) + "</pre>"), "compute": table, "scores": scores} |
            {p.stem: wandb.Image(str(p)) for p in out.glob("*.png")})
    run.summary["protocol_varying_fields"] = cards["varying"]
    run.finish()


def _wandb_scores(wandb, cards: dict, summary: Summary | None):
    """The table row by row: each metric's mean and std over seeds (None where a row lacks it), the first
    metric's interval, the row's card."""
    columns = summary.columns if summary else []
    names = [f"{c.name}_{part}" for c in columns for part in ("mean", "std")]
    if columns:
        names += [f"{columns[0].name}_low", f"{columns[0].name}_high"]
    data = []
    for r in (summary.rows if summary else []):
        values = [v for c in columns for v in (mean_std(r.values[c.name]) if c.name in r.values else (None, None))]
        data.append([r.objective, r.setting.sampler_key, r.nfe, *values, *(r.interval or (None, None)),
                     json.dumps(cards["rows"].get((r.objective, r.setting), {}))])
    return wandb.Table(columns=["objective", "sampler", "nfe", *names, "protocol"], data=data)
