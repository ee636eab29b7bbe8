"""The comparison suite: which objectives (each with its samplers and NFE lists) to train on one shared
backbone, dataset, seed set and budget. Read from YAML and checked before anything runs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lit_diffusion.launch.options import JobOptions
from lit_diffusion.runs import RunDirectory
from lit_diffusion.samplers import SAMPLERS
from lit_diffusion.samplers.grids import GRIDS

KNOWN_KEYS = {"name", "out", "base_config", "shards", "build", "objectives", "overrides", "budget", "seeds",
              "evaluation", "launcher", "slurm"}

ENTRY_KEYS = {"name", "config", "samplers", "overrides", "tune_from"}


class SuiteError(ValueError):
    """A suite file that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class TuneFrom:
    """Start this entry from the checkpoint of an earlier entry of the suite (same seed) that has seen at most
    `images` training images, and train it for the rest of the budget: pre-training and tuning together spend
    the same images as every other run (ECT, Geng et al. 2024: consistency tuning of a trained diffusion or
    flow model; the pre-training counts in its compute)."""

    objective: str
    images: int


@dataclass
class ObjectiveEntry:
    name: str  # a label for the report, e.g. "ddpm"
    config: str  # an objective YAML composed on top of the base config
    samplers: dict[str, list[int]]  # "sampler" or "sampler:grid" (e.g. "heun:uniform") -> NFEs to evaluate
    overrides: list[str] = field(default_factory=list)  # extra CLI overrides for this objective
    tune_from: TuneFrom | None = None  # start from another entry's checkpoint (consistency tuning)

    def __post_init__(self):
        for key, nfes in self.samplers.items():
            sampler, _, grid = str(key).partition(":")
            if sampler not in SAMPLERS:
                raise SuiteError(f"unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
            if grid and grid not in GRIDS:
                raise SuiteError(f"samplers.{key}: unknown time grid {grid!r}; known: {list(GRIDS)}")
            if not isinstance(nfes, list) or not nfes or not all(isinstance(n, int) and n >= 1 for n in nfes):
                raise SuiteError(f"samplers.{key} must be a list of NFEs >= 1, got {nfes!r}")


@dataclass
class Suite:
    name: str
    out: str
    base_config: str
    shards: str
    objectives: list[ObjectiveEntry]
    build: list[str] | None = None  # `lit-diffusion data build` arguments when the shards are missing
    overrides: list[str] = field(default_factory=list)
    max_images: int = 64_000  # images per run (under a FLOP budget: each objective's, in objective_images)
    max_flops: float | None = None  # training FLOPs per run (all ranks), turned into images per objective
    max_time: str | None = None  # Lightning's "DD:HH:MM:SS" wall-clock limit per run
    max_time_seconds: float = 0.0  # the same in seconds (0: none)
    seeds: list[int] = field(default_factory=lambda: [0])
    num_samples: int = 1000
    batch_size: int = 250
    launcher: str = "local"  # "slurm": the trainings run as one SLURM job array, evaluation runs here
    slurm: JobOptions = field(default_factory=JobOptions)  # resources of each array task
    max_parallel: int | None = None  # at most this many array tasks at once
    curve_points: int = 3  # quality vs compute: checkpoints scored along each run (0: none)
    curve_samples: int = 200  # samples per quality-vs-compute point (cheaper than num_samples, and said so)
    bootstrap: int = 200  # bootstrap resamples of the FD interval (0: none)
    ema_sweep: list[float] = field(default_factory=list)  # post-hoc EMA sigma_rel values scored (needs snapshots)
    source: str = ""  # the file it was read from
    objective_images: dict[str, int] = field(default_factory=dict)  # set from measured FLOPs under max_flops

    def __post_init__(self):
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise SuiteError(f"objective names must be unique, got {names}")
        if self.launcher not in ("local", "slurm"):
            raise SuiteError(f"launcher must be 'local' or 'slurm', got {self.launcher!r}")
        if self.max_time is not None:
            self.max_time = str(self.max_time)
            self.max_time_seconds = _seconds(self.max_time)
        for i, entry in enumerate(self.objectives):
            if entry.tune_from is not None:
                self._check_tune_from(entry, names[:i])
        if self.max_images < 1 or self.num_samples < 2 or not self.seeds:
            raise SuiteError("need budget.max_images >= 1, evaluation.num_samples >= 2 and at least one seed")
        if self.max_flops is not None and (isinstance(self.max_flops, bool) or not isinstance(self.max_flops, (int, float))
                                           or not self.max_flops > 0):
            raise SuiteError(f"budget.max_flops must be a positive number (e.g. 2.0e13), got {self.max_flops!r}")
        if self.curve_points < 0 or self.curve_samples < 2 or self.bootstrap < 0:
            raise SuiteError("need evaluation.curve_points >= 0, evaluation.curve_samples >= 2 and "
                             "evaluation.bootstrap >= 0")
        if not all(isinstance(s, (int, float)) and 0 < s < 1 for s in self.ema_sweep):
            raise SuiteError(f"evaluation.ema_sweep must be a list of sigma_rel values in (0, 1), got {self.ema_sweep!r}")

    def _check_tune_from(self, entry: ObjectiveEntry, earlier: list[str]) -> None:
        source = entry.tune_from
        if source.objective not in earlier:
            raise SuiteError(f"objectives {entry.name!r}: tune_from.objective {source.objective!r} must name an entry "
                             f"listed before it (it trains first); earlier entries: {earlier}")
        if not 0 < source.images < self.max_images:
            raise SuiteError(f"objectives {entry.name!r}: tune_from.images must be between 0 and budget.max_images "
                             f"({self.max_images:,}) so that tuning has images left, got {source.images:,}")
        if self.max_flops is not None:
            raise SuiteError(f"objectives {entry.name!r}: tune_from needs budget.max_images (pre-training and tuning "
                             "share one image budget); a FLOP budget is not supported with it yet")

    def max_images_for(self, objective: str) -> int:
        """The image budget of this objective's runs: the suite's, or under a FLOP budget its own."""
        if self.max_flops and objective not in self.objective_images:
            raise SuiteError(f"budget.max_flops: {objective!r} has no image budget yet (compute.resolve_budgets "
                             "measures it)")
        return self.objective_images.get(objective, self.max_images)

    @property
    def budget_text(self) -> str:
        """The budget in words, for logs and the report."""
        parts = [f"{self.max_flops:.3g} training FLOPs" if self.max_flops else f"{self.max_images:,} images"]
        return " or ".join(parts + ([f"{self.max_time} wall-clock"] if self.max_time else [])) + " per run"

    def run_dir(self, objective: str, seed: int) -> Path:
        return Path(self.out) / "runs" / f"{objective}-seed{seed}"

    def run(self, objective: str, seed: int) -> RunDirectory:
        return RunDirectory(self.run_dir(objective, seed))


def _seconds(max_time: str) -> float:
    parts = max_time.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise SuiteError(f"budget.max_time must be 'DD:HH:MM:SS' (Lightning's format), got {max_time!r}")
    days, hours, minutes, seconds = (int(p) for p in parts)
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def _read(path: Path) -> dict:
    if not path.is_file():
        raise SuiteError("suite file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SuiteError("the suite must be a mapping")
    unknown = sorted(set(raw) - KNOWN_KEYS)
    if unknown:
        raise SuiteError(f"unknown keys {unknown}; known: {sorted(KNOWN_KEYS)}")
    return raw


def _need(raw: dict, key: str, kind: type):
    if key not in raw:
        raise SuiteError(f"missing key {key!r}")
    if not isinstance(raw[key], kind):
        raise SuiteError(f"{key!r} must be {kind.__name__}, got {type(raw[key]).__name__}")
    return raw[key]


def _objective(i: int, entry, resolve) -> ObjectiveEntry:
    try:
        if not isinstance(entry, dict) or not {"name", "config", "samplers"} <= set(entry):
            raise SuiteError("needs 'name', 'config' and 'samplers'")
        unknown = sorted(set(entry) - ENTRY_KEYS)
        if unknown:
            raise SuiteError(f"unknown keys {unknown}; known: {sorted(ENTRY_KEYS)}")
        return ObjectiveEntry(entry["name"], resolve(entry["config"]), dict(entry["samplers"]),
                              list(entry.get("overrides", [])), _tune_from(entry.get("tune_from")))
    except SuiteError as error:
        raise SuiteError(f"objectives[{i}]: {error}") from None


def _tune_from(raw) -> TuneFrom | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"objective", "images"} or not isinstance(raw["objective"], str) \
            or isinstance(raw["images"], bool) or not isinstance(raw["images"], int):
        raise SuiteError(f"tune_from must be {{objective: NAME, images: N}} (an earlier entry and the images its "
                         f"checkpoint may have seen), got {raw!r}")
    return TuneFrom(raw["objective"], raw["images"])


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    try:
        return _suite(path, _read(path))
    except SuiteError as error:  # every message names the file first
        raise SuiteError(f"{path}: {error}") from None


def _suite(path: Path, raw: dict) -> Suite:
    resolve = lambda p: str(p if Path(p).is_absolute() or Path(p).exists() else (path.parent / p))  # noqa: E731
    objectives = [_objective(i, entry, resolve) for i, entry in enumerate(_need(raw, "objectives", list))]
    name, out, base_config, shards = (_need(raw, key, str) for key in ("name", "out", "base_config", "shards"))
    budget, evaluation = raw.get("budget", {}) or {}, raw.get("evaluation", {}) or {}
    unknown = sorted(set(budget) - {"max_images", "max_flops", "max_time"})
    if unknown:
        raise SuiteError(f"unknown budget keys {unknown}; known: ['max_flops', 'max_images', 'max_time']")
    if "max_flops" in budget and "max_images" in budget:
        raise SuiteError("give budget.max_images or budget.max_flops, not both (max_time may go with either)")
    max_flops = budget.get("max_flops")
    if isinstance(max_flops, str):  # YAML reads 2e13 (no dot) as a string
        try:
            max_flops = float(max_flops)
        except ValueError:
            raise SuiteError(f"budget.max_flops must be a number, e.g. 2.0e13, got {max_flops!r}") from None
    slurm, max_parallel = _slurm_options(raw.get("slurm"), name)
    return Suite(name=name, out=out, base_config=resolve(base_config), shards=shards, objectives=objectives,
                 build=raw.get("build"), overrides=[str(o) for o in raw.get("overrides", [])],
                 max_images=_integer(budget, "max_images", 64_000, "budget."), max_flops=max_flops,
                 max_time=budget.get("max_time"),
                 seeds=_seeds(raw.get("seeds", [0])), num_samples=_integer(evaluation, "num_samples", 1000, "evaluation."),
                 batch_size=_integer(evaluation, "batch_size", 250, "evaluation."), launcher=raw.get("launcher", "local"),
                 slurm=slurm, max_parallel=max_parallel, source=str(path),
                 curve_points=_integer(evaluation, "curve_points", 3, "evaluation."),
                 curve_samples=_integer(evaluation, "curve_samples", 200, "evaluation."),
                 bootstrap=_integer(evaluation, "bootstrap", 200, "evaluation."),
                 ema_sweep=list(evaluation.get("ema_sweep") or []))


def _integer(section: dict, key: str, default: int, where: str) -> int:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SuiteError(f"{where}{key} must be an integer, got {value!r}")
    return value


def _seeds(value) -> list[int]:
    # a string would be iterated character by character ('12' -> seeds 1 and 2)
    if not isinstance(value, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        raise SuiteError(f"seeds must be a list of integers, e.g. [0, 1, 2], got {value!r}")
    return list(value)


def _slurm_options(raw, suite_name) -> tuple[JobOptions, int | None]:
    """The `slurm:` mapping: JobOptions fields (nodes, gpus_per_node, cpus_per_task, time, partition, ...)
    and max_parallel."""
    if raw is not None and not isinstance(raw, dict):
        raise SuiteError("'slurm' must be a mapping of job options")
    raw = dict(raw or {})
    max_parallel = raw.pop("max_parallel", None)
    if max_parallel is not None and (not isinstance(max_parallel, int) or max_parallel < 1):
        raise SuiteError(f"slurm.max_parallel must be an integer >= 1, got {max_parallel!r}")
    unknown = sorted(set(raw) - set(JobOptions.__dataclass_fields__))
    if unknown:
        known = sorted(set(JobOptions.__dataclass_fields__) | {"max_parallel"})
        raise SuiteError(f"unknown slurm options {unknown}; known: {known}")
    raw.setdefault("job_name", f"compare-{suite_name}")
    try:
        return JobOptions(**raw), max_parallel
    except (ValueError, TypeError) as error:
        raise SuiteError(f"slurm: {error}") from None
