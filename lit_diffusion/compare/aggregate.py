"""From score rows to the comparison's table: objective x sampler x NFE with every seed's scores (shown as
mean +- std), each objective's best setting and untrained baseline, and the winner at each NFE."""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from lit_diffusion.compare.results import ScoreRow, Setting


@dataclass(frozen=True)
class TableRow:
    objective: str
    setting: Setting
    nfe: int  # the NFE the sampler used (first seed)
    fd: list[float]  # one per seed
    kid: list[float]
    accuracy: list[float]  # empty for unconditional models

    @property
    def mean_fd(self) -> float:
        return statistics.fmean(self.fd)


@dataclass(frozen=True)
class Summary:
    rows: list[TableRow]
    best: dict[str, TableRow]  # objective -> its lowest mean FD (the first of equals)
    untrained: dict[str, list[ScoreRow]]  # objective -> its untrained rows, one per seed
    winners: dict[int, TableRow]  # NFE used -> the lowest mean FD among all objectives and samplers


def _table_row(objective: str, setting: Setting, per_seed: list[ScoreRow]) -> TableRow:
    return TableRow(objective, setting, per_seed[0].nfe_used, [r.metrics["fd"] for r in per_seed],
                    [r.metrics["kid"] for r in per_seed],
                    [r.metrics["class_accuracy"] for r in per_seed if "class_accuracy" in r.metrics])


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
    return Summary(rows, _lowest(rows, lambda r: r.objective), untrained, _lowest(rows, lambda r: r.nfe))


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(values: list[float]) -> str:
    """"mean" for one seed, "mean ± std" for several."""
    mean, std = mean_std(values)
    return f"{mean:.3f}" if len(values) == 1 else f"{mean:.3f} ± {std:.3f}"
