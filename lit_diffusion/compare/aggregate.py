"""From score rows to the comparison's table: objective x sampler x NFE with every seed's scores (shown as
mean +- std) and FD intervals, each objective's best setting and untrained baseline, and at each NFE the winner,
declared only where its FD interval separates from every other objective's best (otherwise a tie)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from lit_diffusion.compare.intervals import row_interval, separated
from lit_diffusion.compare.results import ScoreRow, Setting


@dataclass(frozen=True)
class TableRow:
    objective: str
    setting: Setting
    nfe: int  # the NFE the sampler used (first seed)
    fd: list[float]  # one per seed
    kid: list[float]
    accuracy: list[float]  # empty for unconditional models
    interval: tuple[float, float] | None = None  # FD bootstrap interval, the union over seeds (None: not computed)

    @property
    def mean_fd(self) -> float:
        return statistics.fmean(self.fd)


@dataclass(frozen=True)
class Summary:
    rows: list[TableRow]
    best: dict[str, TableRow]  # objective -> its lowest mean FD (the first of equals)
    untrained: dict[str, list[ScoreRow]]  # objective -> its untrained rows, one per seed
    winners: dict[int, TableRow]  # NFE used -> the lowest mean FD among all objectives and samplers
    ties: dict[int, list[TableRow]] = None  # NFE -> other objectives' best rows whose intervals overlap the lowest's

    def verdict(self, nfe: int) -> str:
        """"OBJECTIVE (sampler)" where the lowest FD's interval separates from every other objective's best at
        this NFE, else "tie: A, B, ..." (every objective whose interval overlaps the lowest's)."""
        best, tied = self.winners[nfe], (self.ties or {}).get(nfe, [])
        if not tied:
            alone = not any(r.nfe == nfe and r.objective != best.objective for r in self.rows)
            return f"{best.objective} ({best.setting.sampler_key})" + (", the only objective at this NFE" if alone else "")
        return "tie: " + ", ".join(f"{r.objective} ({r.setting.sampler_key})" for r in [best, *tied])


def _table_row(objective: str, setting: Setting, per_seed: list[ScoreRow]) -> TableRow:
    return TableRow(objective, setting, per_seed[0].nfe_used, [r.metrics["fd"] for r in per_seed],
                    [r.metrics["kid"] for r in per_seed],
                    [r.metrics["class_accuracy"] for r in per_seed if r.metrics.get("class_accuracy") is not None],
                    row_interval([r.interval for r in per_seed]))


def _lowest(rows: list[TableRow], group) -> dict:
    """group(row) -> the row of lowest mean FD in each group; the first of equals wins."""
    found: dict = {}
    for row in rows:
        key = group(row)
        if key not in found or row.mean_fd < found[key].mean_fd:
            found[key] = row
    return found


def summarise(objectives: list[str], seeds: list[int], scores: list[ScoreRow]) -> Summary:
    trained = {(r.objective, r.seed, r.setting): r for r in scores if not r.untrained}
    rows = []
    for name in objectives:
        settings = [r.setting for r in scores if r.objective == name and r.seed == seeds[0] and not r.untrained]
        rows += [_table_row(name, s, [trained[(name, seed, s)] for seed in seeds]) for s in settings]
    untrained = {name: [r for seed in seeds for r in scores if r.untrained and (r.objective, r.seed) == (name, seed)]
                 for name in objectives}
    winners = _lowest(rows, lambda r: r.nfe)
    return Summary(rows, _lowest(rows, lambda r: r.objective), untrained, winners, _ties(rows, winners))


def _ties(rows: list[TableRow], winners: dict[int, TableRow]) -> dict[int, list[TableRow]]:
    """NFE -> the best row of every other objective at that NFE whose FD interval is not separated from the
    lowest's (rows without intervals are never separated: no winner is declared without uncertainty)."""
    ties = {}
    for nfe, best in winners.items():
        others = _lowest([r for r in rows if r.nfe == nfe and r.objective != best.objective], lambda r: r.objective)
        ties[nfe] = [r for r in others.values() if not separated(best.interval, r.interval)]
    return ties


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    """"mean" for one seed, "mean ± std" for several."""
    mean, std = mean_std(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {std:.3f}"
