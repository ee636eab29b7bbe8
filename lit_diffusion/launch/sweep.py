"""Sweeps as job arrays: a grid of config overrides, one array task per point, and the manifest that maps
task ids to overrides (SWEEP_DIR/manifest.json)."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from lit_diffusion.data.dataset_json import write_json_atomic

MANIFEST = "manifest.json"


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """["model.lr=1e-3,3e-4", "data.batch_size=32,64"] -> {"model.lr": [...], "data.batch_size": [...]}."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip().removeprefix("--")
        if not sep or not key or not values:
            raise ValueError(f"--grid {item!r}: expected KEY=V1,V2,... (e.g. model.lr=1e-3,3e-4)")
        if key in grid:
            raise ValueError(f"--grid: key {key!r} given twice")
        points = [v.strip() for v in values.split(",")]
        if any(not v for v in points) or len(set(points)) != len(points):
            raise ValueError(f"--grid {item!r}: values must be non-empty and distinct")
        grid[key] = points
    if not grid:
        raise ValueError("--grid: give at least one KEY=V1,V2,...")
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """The Cartesian product, first key slowest; task i of the array runs point i."""
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def overrides_args(point: dict[str, str]) -> list[str]:
    return [a for key, value in point.items() for a in (f"--{key}", value)]


def array_spec(n: int, max_parallel: int | None) -> str:
    if max_parallel is not None and max_parallel < 1:
        raise ValueError(f"--max-parallel must be >= 1, got {max_parallel}")
    return f"0-{n - 1}" + (f"%{max_parallel}" if max_parallel else "")


def write_manifest(sweep_dir: Path, manifest: dict) -> Path:
    path = Path(sweep_dir) / MANIFEST
    write_json_atomic(manifest, path)
    return path


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no sweep manifest at {path} (give the sweep directory or its {MANIFEST})")
    return json.loads(path.read_text())
