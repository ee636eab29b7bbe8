"""Run a comparison suite: build the shards if missing, measure each objective's training FLOPs per step, train
every objective x seed on the shared budget (images, FLOPs or time; skipping finished runs, resuming unfinished
ones), score each with the suite's metrics at its samplers x NFEs on one shared noise bank (with bootstrap intervals and protocol cards),
along training (quality vs compute) and at a sweep of post-hoc EMA lengths, and write the report."""
from __future__ import annotations

import contextlib
from pathlib import Path

from lit_diffusion.compare.aggregate import summarise
from lit_diffusion.compare.compute import measure_teacher_steps, resolve_budgets
from lit_diffusion.compare.curve import write_curve
from lit_diffusion.compare.evaluate import evaluate_all, one_intra_op_thread
from lit_diffusion.compare.phases import PhaseClock
from lit_diffusion.compare.preflight import check_samplers
from lit_diffusion.compare.report import write_report
from lit_diffusion.compare.results import MetricColumn, ScoreTable
from lit_diffusion.compare.score import DEVICE
from lit_diffusion.compare.suite import Suite
from lit_diffusion.compare.train import record_all, train_all


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
    from lit_diffusion.evaluation.metric_registry import metric_names

    out = Path(suite.out)
    out.mkdir(parents=True, exist_ok=True)
    names = metric_names(getattr(suite, "metrics", None))  # unknown names fail before any training
    check_samplers(suite)  # so does a sampler the objective cannot run
    ensure_shards(suite)
    # on the CPU one intra-op thread per process and trainings and scorings side by side (train.local_slots): the
    # figures do not depend on the machine's cores or load, and a busy machine does not thrash
    with one_intra_op_thread() if DEVICE == "cpu" else contextlib.nullcontext():
        return _run(suite, out, names, log)


def _run(suite: Suite, out: Path, names: list[str], log) -> Path:
    from lit_diffusion.evaluation.metric import Reference
    from lit_diffusion.evaluation.metric_registry import make_metrics

    clock = PhaseClock()
    with clock.phase("FLOPs of a training step (each objective)"):
        suite, costs = resolve_budgets(suite, log)
    with clock.phase("training (side by side)"):
        train_all(suite, log, costs)
    with clock.phase("FLOPs of a distillation step (with its trained teacher)"):
        costs = measure_teacher_steps(suite, costs, log)
    records = record_all(suite, costs)
    with clock.phase("feature network and reference statistics"):
        log("[evaluation] feature networks and reference statistics (cached after the first time)")
        metrics = make_metrics(names, feature_network(suite, out), DEVICE)
        reference = Reference(suite.shards, cache_dir=str(out / "cache"))
        for metric in metrics:
            if getattr(metric, "feature_net", None) is not None:
                reference.stats(metric.feature_net)
    with clock.phase("scoring: table, quality vs compute, EMA sweep (side by side)"):
        per_image = {name: cost.flops_per_image for name, cost in costs.items()}
        rows, curve, sweep = evaluate_all(suite, metrics, reference, per_image, log)
    with clock.phase("report and plots"):
        table = ScoreTable(rows, [MetricColumn.of(m) for m in metrics])
        write_curve(curve, out / "quality_vs_compute.json")
        summary = summarise([e.name for e in suite.objectives], suite.seeds, table.rows, table.columns)
        net = metrics[0].feature_net
        report = write_report(suite, records, summary, net, reference.stats(net), curve, sweep, table.rows)
    log(clock.table())
    training = clock.phases[1][1]
    rest = sum(p[1] for p in clock.phases) - training
    log(f"[done] this start took {(training + rest) / 60:.1f} min: training {training / 60:.1f} min "
        f"(runs trained earlier are not counted), FLOP probe, evaluation and report {rest / 60:.1f} min")
    return report
