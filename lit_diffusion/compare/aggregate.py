"""From score rows to the comparison's table: objective x sampler x NFE with every seed's value of every metric
(shown as mean +- std) and the primary metric's intervals, each objective's best setting and untrained baseline,
and at each NFE the winner, declared only where its interval separates from every other objective's best
(otherwise a tie). Rows are ranked by the primary metric (the suite's first), in its direction."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from lit_diffusion.compare.intervals import row_interval, separated
from lit_diffusion.compare.results import MetricColumn, ScoreRow, Setting


@dataclass(frozen=True)
class TableRow:
    objective: str
    setting: Setting
    nfe: int  # the NFE the sampler used (first seed)
    values: dict[str, list[float]]  # metric name -> one value per seed (metrics every seed has)
    primary: str  # the metric that ranks rows
    interval: tuple[float, float] | None = None  # its bootstrap interval, the union over seeds (None: not computed)
    lower_is_better: bool = True  # the primary metric's direction

    @property
    def score(self) -> list[float]:
        """The primary metric, one value per seed."""
        return self.values[self.primary]

    @property
    def mean_score(self) -> float:
        return statistics.fmean(self.score)

    @property
    def rank(self) -> float:
        """Smaller is better, whichever the primary metric's direction."""
        return self.mean_score if self.lower_is_better else -self.mean_score

    @property
    def ranked_interval(self) -> tuple[float, float] | None:
        """The interval on the rank's scale (negated and swapped when higher is better)."""
        if self.interval is None or self.lower_is_better:
            return self.interval
        return -self.interval[1], -self.interval[0]


@dataclass(frozen=True)
class Summary:
    rows: list[TableRow]
    best: dict[str, TableRow]  # objective -> its best mean primary metric (the first of equals)
    untrained: dict[str, list[ScoreRow]]  # objective -> its untrained rows, one per seed
    winners: dict[int, TableRow]  # NFE used -> the best mean primary metric among all objectives and samplers
    ties: dict[int, list[TableRow]] = None  # NFE -> other objectives' best rows whose intervals overlap the best's
    columns: list[MetricColumn] = None  # the metrics of the table, the primary first

    @property
    def primary(self) -> MetricColumn:
        return self.columns[0]

    def verdict(self, nfe: int) -> str:
        """"OBJECTIVE (sampler)" where the best row's interval separates from every other objective's best at
        this NFE, else "tie: A, B, ..." (every objective whose interval overlaps the lowest's)."""
        best, tied = self.winners[nfe], (self.ties or {}).get(nfe, [])
        if not tied:
            alone = not any(r.nfe == nfe and r.objective != best.objective for r in self.rows)
            return f"{best.objective} ({best.setting.sampler_key})" + (", the only objective at this NFE" if alone else "")
        return "tie: " + ", ".join(f"{r.objective} ({r.setting.sampler_key})" for r in [best, *tied])


def _table_row(objective: str, setting: Setting, per_seed: list[ScoreRow], columns: list[MetricColumn]) -> TableRow:
    values = {c.name: [r.metrics[c.name] for r in per_seed] for c in columns
              if all(r.metrics.get(c.name) is not None for r in per_seed)}
    return TableRow(objective, setting, per_seed[0].nfe_used, values, columns[0].name,
                    row_interval([r.interval for r in per_seed]), columns[0].lower_is_better)


def _best(rows: list[TableRow], group) -> dict:
    """group(row) -> the row of best mean primary metric in each group; the first of equals wins."""
    found: dict = {}
    for row in rows:
        key = group(row)
        if key not in found or row.rank < found[key].rank:
            found[key] = row
    return found


def _columns(scores: list[ScoreRow]) -> list[MetricColumn]:
    """Without the suite's metrics: those of the first row, its primary first, named by their keys."""
    names = scores[0].metric_names() if scores else []
    primary = scores[0].primary if scores else None
    return [MetricColumn(n, n) for n in sorted(names, key=lambda n: n != primary)]


def summarise(objectives: list[str], seeds: list[int], scores: list[ScoreRow],
              columns: list[MetricColumn] | None = None) -> Summary:
    columns = list(columns) if columns else _columns(scores)
    trained = {(r.objective, r.seed, r.setting): r for r in scores if not r.untrained}
    rows = []
    for name in objectives:
        settings = [r.setting for r in scores if r.objective == name and r.seed == seeds[0] and not r.untrained]
        rows += [_table_row(name, s, [trained[(name, seed, s)] for seed in seeds], columns) for s in settings]
    untrained = {name: [r for seed in seeds for r in scores if r.untrained and (r.objective, r.seed) == (name, seed)]
                 for name in objectives}
    winners = _best(rows, lambda r: r.nfe)
    return Summary(rows, _best(rows, lambda r: r.objective), untrained, winners, _ties(rows, winners), columns)


def _ties(rows: list[TableRow], winners: dict[int, TableRow]) -> dict[int, list[TableRow]]:
    """NFE -> the best row of every other objective at that NFE whose interval is not separated from the
    winner's (rows without intervals are never separated: no winner is declared without uncertainty)."""
    ties = {}
    for nfe, best in winners.items():
        others = _best([r for r in rows if r.nfe == nfe and r.objective != best.objective], lambda r: r.objective)
        ties[nfe] = [r for r in others.values() if not separated(best.ranked_interval, r.ranked_interval)]
    return ties


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    """"mean" for one seed, "mean ± std" for several."""
    mean, std = mean_std(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {std:.3f}"
