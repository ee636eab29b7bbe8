"""The comparison suite: which objectives (each with its samplers and NFE lists) to train on one shared
backbone, dataset, seed set and budget. Read from YAML and checked before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lit_diffusion.launch.options import JobOptions
from lit_diffusion.samplers import SAMPLERS
from lit_diffusion.samplers.grids import GRIDS


class SuiteError(ValueError):
    """A suite file that cannot run; the message names the file and the key."""


@dataclass
class ObjectiveEntry:
    name: str  # a label for the report, e.g. "ddpm"
    config: str  # an objective YAML composed on top of the base config
    samplers: dict[str, list[int]]  # "sampler" or "sampler:grid" (e.g. "heun:uniform") -> NFEs to evaluate
    overrides: list[str] = field(default_factory=list)  # extra CLI overrides for this objective


@dataclass
class Suite:
    name: str
    out: str
    base_config: str
    shards: str
    objectives: list[ObjectiveEntry]
    build: list[str] | None = None  # `lit-diffusion data build` arguments when the shards are missing
    overrides: list[str] = field(default_factory=list)
    max_images: int = 64_000
    max_time: str | None = None  # Lightning's "DD:HH:MM:SS" wall-clock limit per run
    max_time_seconds: float = 0.0  # the same in seconds (0: none)
    seeds: list[int] = field(default_factory=lambda: [0])
    num_samples: int = 1000
    batch_size: int = 250
    launcher: str = "local"  # "slurm": the trainings run as one SLURM job array, evaluation runs here
    slurm: JobOptions = field(default_factory=JobOptions)  # resources of each array task
    max_parallel: int | None = None  # at most this many array tasks at once
    source: str = ""  # the file it was read from

    def run_dir(self, objective: str, seed: int) -> Path:
        return Path(self.out) / "runs" / f"{objective}-seed{seed}"


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"{path}: suite file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: the suite must be a mapping")

    def need(key, kind):
        if key not in raw:
            raise SuiteError(f"{path}: missing key {key!r}")
        if not isinstance(raw[key], kind):
            raise SuiteError(f"{path}: {key!r} must be {kind.__name__}, got {type(raw[key]).__name__}")
        return raw[key]

    known = {"name", "out", "base_config", "shards", "build", "objectives", "overrides", "budget", "seeds",
             "evaluation", "launcher", "slurm"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SuiteError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    base = path.parent
    resolve = lambda p: str(p if Path(p).is_absolute() or Path(p).exists() else (base / p))  # noqa: E731
    objectives = []
    for i, entry in enumerate(need("objectives", list)):
        where = f"{path}: objectives[{i}]"
        if not isinstance(entry, dict) or not {"name", "config", "samplers"} <= set(entry):
            raise SuiteError(f"{where}: needs 'name', 'config' and 'samplers'")
        for key, nfes in entry["samplers"].items():
            sampler, _, grid = str(key).partition(":")
            if sampler not in SAMPLERS:
                raise SuiteError(f"{where}: unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
            if grid and grid not in GRIDS:
                raise SuiteError(f"{where}: samplers.{key}: unknown time grid {grid!r}; known: {list(GRIDS)}")
            if not isinstance(nfes, list) or not nfes or not all(isinstance(n, int) and n >= 1 for n in nfes):
                raise SuiteError(f"{where}: samplers.{key} must be a list of NFEs >= 1, got {nfes!r}")
        objectives.append(ObjectiveEntry(entry["name"], resolve(entry["config"]), dict(entry["samplers"]),
                                         list(entry.get("overrides", []))))
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise SuiteError(f"{path}: objective names must be unique, got {names}")
    budget = raw.get("budget", {}) or {}
    evaluation = raw.get("evaluation", {}) or {}
    suite = Suite(name=need("name", str), out=need("out", str), base_config=resolve(need("base_config", str)),
                  shards=need("shards", str), objectives=objectives, build=raw.get("build"),
                  overrides=[str(o) for o in raw.get("overrides", [])],
                  max_images=int(budget.get("max_images", 64_000)), max_time=budget.get("max_time"),
                  seeds=[int(s) for s in raw.get("seeds", [0])], num_samples=int(evaluation.get("num_samples", 1000)),
                  batch_size=int(evaluation.get("batch_size", 250)), launcher=raw.get("launcher", "local"),
                  source=str(path))
    if suite.launcher not in ("local", "slurm"):
        raise SuiteError(f"{path}: launcher must be 'local' or 'slurm', got {suite.launcher!r}")
    suite.slurm, suite.max_parallel = _slurm_options(path, raw.get("slurm"), suite.name)
    if suite.max_time is not None:
        parts = str(suite.max_time).split(":")
        if len(parts) != 4 or not all(p.isdigit() for p in parts):
            raise SuiteError(f"{path}: budget.max_time must be 'DD:HH:MM:SS' (Lightning's format), got {suite.max_time!r}")
        days, hours, minutes, seconds = (int(p) for p in parts)
        suite.max_time = str(suite.max_time)
        suite.max_time_seconds = float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if suite.max_images < 1 or suite.num_samples < 2 or not suite.seeds:
        raise SuiteError(f"{path}: need budget.max_images >= 1, evaluation.num_samples >= 2 and at least one seed")
    return suite


def _slurm_options(path: Path, raw, suite_name: str) -> tuple[JobOptions, int | None]:
    """The `slurm:` mapping: JobOptions fields (nodes, gpus_per_node, cpus_per_task, time, partition, ...)
    and max_parallel."""
    raw = dict(raw or {})
    if not isinstance(raw, dict):
        raise SuiteError(f"{path}: 'slurm' must be a mapping of job options")
    max_parallel = raw.pop("max_parallel", None)
    if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
        raise SuiteError(f"{path}: slurm.max_parallel must be an integer >= 1, got {max_parallel!r}")
    known = set(JobOptions.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SuiteError(f"{path}: unknown slurm options {unknown}; known: {sorted(known | {'max_parallel'})}")
    raw.setdefault("job_name", f"compare-{suite_name}")
    try:
        return JobOptions(**raw), max_parallel
    except (ValueError, TypeError) as error:
        raise SuiteError(f"{path}: slurm: {error}") from None
