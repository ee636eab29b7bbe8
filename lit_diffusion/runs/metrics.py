"""The one reader of a run's logged CSV metrics (Lightning's CSVLogger: one metrics.csv per start, rows
with empty cells for keys not logged at that step)."""
from __future__ import annotations

import csv
from pathlib import Path

from lit_diffusion.runs.layout import RunDirectory


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class MetricsLog:
    """The CSV metrics of one run, read fresh on every call (a training may still be writing them)."""

    def __init__(self, run: RunDirectory | str | Path):
        self.run = run if isinstance(run, RunDirectory) else RunDirectory(run)

    def rows(self) -> list[dict[str, str]]:
        """Every row of every start, oldest first."""
        return [row for path in self.run.metrics_files() for row in _rows(path)]

    def latest_row(self) -> dict[str, str] | None:
        """The last row of the newest start (flushed every few dozen steps), or None before the first flush."""
        files = self.run.metrics_files()
        rows = _rows(files[-1]) if files else []
        return rows[-1] if rows else None

    def last(self, key: str) -> float | None:
        """The last logged value of `key` over all starts, or None if it was never logged."""
        values = [row[key] for row in self.rows() if row.get(key)]
        return float(values[-1]) if values else None

    def series(self, x_key: str, y_key: str) -> list[tuple[float, float]]:
        """(x, y) for every row that logged both keys, sorted by x."""
        return sorted((float(row[x_key]), float(row[y_key])) for row in self.rows()
                      if row.get(x_key) and row.get(y_key))


def drop_rows_after(run: RunDirectory | str | Path, global_step: int) -> int:
    """Remove the CSV rows of steps a resume from a checkpoint at `global_step` will train again (rows carry
    the step index, global_step - 1 for the last step before the checkpoint), so that every step is logged
    exactly once over restarts. Returns how many rows were removed. Files are rewritten atomically."""
    import os

    run = run if isinstance(run, RunDirectory) else RunDirectory(run)
    removed = 0
    for path in run.metrics_files():
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        keep = [r for r in rows if not r.get("step") or int(float(r["step"])) < global_step]
        if len(keep) == len(rows) or fields is None:
            continue
        removed += len(rows) - len(keep)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(keep)
        os.replace(tmp, path)
    return removed
