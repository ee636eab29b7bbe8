"""Run a comparison suite: build the shards if missing, measure each objective's training FLOPs per step, train
every objective x seed on the shared budget (images, FLOPs or time; skipping finished runs, resuming unfinished
ones), score each with the suite's metrics at its samplers x NFEs on one shared noise bank (with bootstrap intervals and protocol cards),
along training (quality vs compute) and at a sweep of post-hoc EMA lengths, and write the report."""
from __future__ import annotations

import time
from pathlib import Path

from lit_diffusion.compare.aggregate import summarise
from lit_diffusion.compare.compute import resolve_budgets
from lit_diffusion.compare.curve import score_curve, write_curve
from lit_diffusion.compare.ema_sweep import sweep_run
from lit_diffusion.compare.preflight import check_samplers
from lit_diffusion.compare.report import write_report
from lit_diffusion.compare.results import MetricColumn, ScoreTable
from lit_diffusion.compare.score import DEVICE, score_run
from lit_diffusion.compare.suite import Suite
from lit_diffusion.compare.train import train_all
from lit_diffusion.compare.tuning import pretraining


def ensure_shards(suite: Suite) -> None:
    """Build the suite's shards from its `build:` list (`lit-diffusion data build` arguments) when missing."""
    if (Path(suite.shards) / "dataset.json").is_file():
        return
    if not suite.build:
        raise FileNotFoundError(f"{suite.source}: shards {suite.shards} not found and no 'build' given")
    # the suite's `build:` list is `lit-diffusion data build` syntax: the same source functions, the same parser
    from lit_diffusion.data.build import SOURCES
    from lit_diffusion.typed_cli import parse

    source, *rest = suite.build
    if source not in SOURCES:
        raise RuntimeError(f"{suite.source}: 'build' {suite.build} is not valid `lit-diffusion data build` syntax: "
                           f"unknown source {source!r} (one of {sorted(SOURCES)})")
    try:
        arguments = parse(SOURCES[source], [*rest, "--out", suite.shards, "--no-progress"],
                          f"lit-diffusion data build {source}")
    except SystemExit:  # the parser already printed what is wrong with the list
        raise RuntimeError(f"{suite.source}: 'build' {suite.build} is not valid `lit-diffusion data build` "
                           "syntax") from None
    SOURCES[source](**arguments)


def feature_network(suite: Suite, out: Path):
    """The evaluation's feature network: the published Inception for RGB datasets where it is installed, the
    project's classifier otherwise (evaluation.features.default_feature_network)."""
    from lit_diffusion.evaluation import features

    choose = getattr(features, "default_feature_network", None)
    if choose is not None:
        return choose(suite.shards, cache_dir=str(out / "cache"), device=DEVICE)
    return features.load_or_train_classifier(suite.shards, cache_dir=str(out / "cache"), device=DEVICE)


def run_suite(suite: Suite, log=print) -> Path:
    """Measure each objective's training FLOPs per step (and under a FLOP budget its image budget), train,
    score with the suite's metrics (final table with intervals, quality-vs-compute curve, EMA sweep) and report;
    returns report.md."""
    from lit_diffusion.evaluation.metric import Reference
    from lit_diffusion.evaluation.metric_registry import make_metrics, metric_names

    out = Path(suite.out)
    out.mkdir(parents=True, exist_ok=True)
    names = metric_names(getattr(suite, "metrics", None))  # unknown names fail before any training
    check_samplers(suite)  # so does a sampler the objective cannot run
    ensure_shards(suite)
    started = time.perf_counter()
    suite, costs = resolve_budgets(suite, log)
    records = train_all(suite, log, costs)
    trained_at = time.perf_counter()
    log("[evaluation] feature networks and reference statistics (cached after the first time)")
    metrics = make_metrics(names, feature_network(suite, out), DEVICE)
    reference = Reference(suite.shards, cache_dir=str(out / "cache"))
    table = ScoreTable([row for e in suite.objectives for s in suite.seeds
                        for row in score_run(suite, e, s, metrics, reference, log)],
                       [MetricColumn.of(m) for m in metrics])
    per_image = {name: cost.flops_per_image for name, cost in costs.items()}
    curve = [p for e in suite.objectives for s in suite.seeds
             for p in score_curve(suite, e, s, per_image[e.name], metrics[0], reference, log,
                                  pretraining(suite, e, s, per_image))]
    write_curve(curve, out / "quality_vs_compute.json")
    sweep = [p for e in suite.objectives for s in suite.seeds for p in sweep_run(suite, e, s, metrics[0], reference, log)]
    summary = summarise([e.name for e in suite.objectives], suite.seeds, table.rows, table.columns)
    net = metrics[0].feature_net
    report = write_report(suite, records, summary, net, reference.stats(net), curve, sweep, table.rows)
    done = time.perf_counter()
    log(f"[done] this start took {(done - started) / 60:.1f} min: training {(trained_at - started) / 60:.1f} min "
        f"(runs trained earlier are not counted), evaluation and report {(done - trained_at) / 60:.1f} min")
    return report
