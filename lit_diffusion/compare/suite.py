"""The comparison suite: which objectives (each with its samplers and NFE lists) to train on one shared
backbone, dataset, seed set and budget. These typed dataclasses are the schema of a suite YAML: jsonargparse
parses it as it parses `fit` configs (compare/schema.py), and each section checks itself in __post_init__
before anything runs. A suite is frozen: what is learnt later (each objective's image budget under a FLOP
budget) makes a new suite (compare/compute.py resolve_budgets)."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from lit_diffusion.compare.schema import SchemaError, parse_as
from lit_diffusion.launch.options import JobOptions
from lit_diffusion.runs import RunDirectory
from lit_diffusion.samplers import SAMPLERS
from lit_diffusion.samplers.grids import GRIDS

DEFAULT_MAX_IMAGES = 64_000  # images per run when the suite gives neither budget.max_images nor budget.max_flops
NOT_IN_FILE = ("source", "objective_images")  # fields of a Suite that are not keys of its file
UNKNOWN_KEYS_OF = {"slurm": "slurm options"}  # what the keys of a section are called in an unknown-key error
FORMS = {  # how these keys are written, for an error about their type (the rest are described by their type)
    "seeds": "a list of integers, e.g. [0, 1, 2]",
    "budget.max_flops": "a number, e.g. 2.0e13",
    "tune_from": "{objective: NAME, images: N} (an earlier entry and the images its checkpoint may have seen), and "
                 "teacher: true to distil from that checkpoint too",
    "overrides": 'a list of strings (quote numbers: "0")',
}


class SuiteError(ValueError):
    """A suite file that cannot run; the message names the file and the key."""


@dataclass(frozen=True)
class TuneFrom:
    """Start this entry from the checkpoint of an earlier entry of the suite (same seed) that has seen at most
    `images` training images, and train it for the rest of the budget: pre-training and tuning together spend
    the same images as every other run (ECT, Geng et al. 2024: consistency tuning of a trained diffusion or
    flow model; the pre-training counts in its compute). With `teacher: true` the same checkpoint is also the
    objective's teacher (`--model.objective.init_args.teacher_checkpoint`): a round of progressive distillation
    (Salimans & Ho 2022) starts from its teacher's weights. Rounds chain (pd2 tuned from pd4 tuned from ddpm):
    `images` counts the whole chain, as the tuned run's records and curve do."""

    objective: str
    images: int
    """the start checkpoint is the source run's kept checkpoint with the most images up to this many (counting
    the source's own pre-training, if it was tuned too)"""
    teacher: bool = False
    """also pass that checkpoint as the objective's teacher_checkpoint (progressive distillation)"""


@dataclass(frozen=True)
class ObjectiveEntry:
    """One entry of `objectives:`."""

    name: str
    """a label for the report, e.g. ddpm"""
    config: str
    """an objective YAML composed on top of the base config (relative to the suite file)"""
    samplers: dict[str, list[int]]
    """"sampler" or "sampler:grid" (e.g. "heun:uniform") -> the NFEs to evaluate"""
    overrides: list[str] = field(default_factory=list)
    """extra `fit` command-line overrides for this objective"""
    tune_from: TuneFrom | None = None
    """start from another entry's checkpoint (consistency tuning; with teacher: true, also distil from it)"""

    def __post_init__(self):
        for key, nfes in self.samplers.items():
            sampler, _, grid = str(key).partition(":")
            if sampler not in SAMPLERS:
                raise SuiteError(f"unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
            if grid and grid not in GRIDS:
                raise SuiteError(f"samplers.{key}: unknown time grid {grid!r}; known: {list(GRIDS)}")
            if not isinstance(nfes, list) or not nfes or not all(isinstance(n, int) and n >= 1 for n in nfes):
                raise SuiteError(f"samplers.{key} must be a list of NFEs >= 1, got {nfes!r}")


@dataclass(frozen=True)
class SuiteBudget:
    """The `budget:` section: what each run may spend. Images or FLOPs, and a wall-clock limit with either."""

    max_images: int | None = None
    """images per run (64,000 when neither this nor max_flops is given)"""
    max_flops: float | None = None
    """training FLOPs per run (all ranks), turned into images per objective from its measured step cost"""
    max_time: str | None = None
    """Lightning's "DD:HH:MM:SS" wall-clock limit per run"""

    def __post_init__(self):
        if self.max_images is not None and self.max_flops is not None:
            raise SuiteError("give budget.max_images or budget.max_flops, not both (max_time may go with either)")
        if self.max_flops is not None and (isinstance(self.max_flops, bool) or not isinstance(self.max_flops, (int, float))
                                           or not self.max_flops > 0):
            raise SuiteError(f"budget.max_flops must be a positive number (e.g. 2.0e13), got {self.max_flops!r}")
        if self.images < 1:
            raise SuiteError(f"need budget.max_images >= 1, got {self.images}")
        if self.max_time is not None:
            _seconds(self.max_time)  # its format is checked here, before anything runs

    @property
    def images(self) -> int:
        """The image budget of every run (under a FLOP budget, a placeholder: each objective gets its own)."""
        return DEFAULT_MAX_IMAGES if self.max_images is None else self.max_images

    @property
    def max_time_seconds(self) -> float:
        """max_time in seconds (0: none)."""
        return _seconds(self.max_time) if self.max_time else 0.0


@dataclass(frozen=True)
class Evaluation:
    """The `evaluation:` section: how every run is scored."""

    num_samples: int = 1000
    """samples per setting (objective x sampler x NFE) of the final table"""
    batch_size: int = 250
    """samples generated per batch"""
    curve_points: int = 3
    """quality vs compute: checkpoints scored along each run (0: none)"""
    curve_samples: int = 200
    """samples per quality-vs-compute point (cheaper than num_samples, and said so)"""
    bootstrap: int = 200
    """bootstrap resamples of each score's interval (0: none)"""
    ema_sweep: list[float] = field(default_factory=list)
    """post-hoc EMA sigma_rel values scored (the runs store snapshots for them)"""
    metrics: list[str] | None = None
    """the metrics reported side by side (None: the default set)"""

    def __post_init__(self):
        # every value the evaluation will need is checked here, before anything trains
        from lit_diffusion.evaluation.metric_registry import METRICS, PRIMARY, min_samples
        from lit_diffusion.training.ema import gamma_from_sigma_rel

        if self.batch_size < 1:
            raise SuiteError(f"evaluation.batch_size must be >= 1 (samples generated per batch), got {self.batch_size}")
        if self.curve_points < 0 or self.bootstrap < 0:
            raise SuiteError(f"need evaluation.curve_points >= 0 and evaluation.bootstrap >= 0, got "
                             f"{self.curve_points} and {self.bootstrap}")
        names = None if self.metrics is None else [m for m in self.metrics if m in METRICS]  # unknown: said later
        counts = {"num_samples": (self.num_samples, min_samples(names))}
        if self.curve_points:  # the curve scores the first metric alone
            counts["curve_samples"] = (self.curve_samples, min_samples([PRIMARY] if names is None else names[:1]))
        for key, (count, (needed, why)) in counts.items():
            if count < needed:
                raise SuiteError(f"evaluation.{key} must be >= {needed} ({why}), got {count}")
        for i, sigma_rel in enumerate(self.ema_sweep):  # gamma_from_sigma_rel knows its range (EDM2 eq. 3)
            try:
                gamma_from_sigma_rel(float(sigma_rel))
            except (TypeError, ValueError) as error:
                raise SuiteError(f"evaluation.ema_sweep[{i}]: {error}") from None


@dataclass
class SuiteSlurm(JobOptions):
    """The `slurm:` section: the resources of each array task (the options of `lit-diffusion slurm submit`;
    job_name defaults to compare-NAME) and how many tasks run at once."""

    max_parallel: int | None = None
    """at most this many array tasks at once"""

    def __post_init__(self):
        if self.max_parallel is not None and self.max_parallel < 1:
            raise SuiteError(f"slurm.max_parallel must be an integer >= 1, got {self.max_parallel!r}")
        try:
            super().__post_init__()
        except ValueError as error:
            raise SuiteError(f"slurm: {error}") from None


@dataclass(frozen=True)
class Suite:
    """A comparison suite: the sections of its YAML, the file it was read from, and (once resolved) each
    objective's image budget."""

    name: str
    """the suite's name (its SLURM jobs and W&B group are compare-NAME)"""
    out: str
    """the folder of its runs, scores and report"""
    base_config: str
    """the `fit` YAML every objective shares (backbone, data, trainer; relative to the suite file)"""
    shards: str
    """the training shards"""
    objectives: list[ObjectiveEntry]
    build: list[str] | None = None
    """`lit-diffusion data build` arguments that write the shards when they are missing"""
    overrides: list[str] = field(default_factory=list)
    """`fit` command-line overrides of every run"""
    budget: SuiteBudget = field(default_factory=SuiteBudget)
    seeds: list[int] = field(default_factory=lambda: [0])
    """training seeds: every objective trains once per seed"""
    evaluation: Evaluation = field(default_factory=Evaluation)
    launcher: str = "local"
    """local, or slurm: the trainings run as one SLURM job array, evaluation runs here"""
    slurm: SuiteSlurm = field(default_factory=SuiteSlurm)
    source: str = ""
    """the file it was read from (not a key of the file)"""
    objective_images: dict[str, int] = field(default_factory=dict)
    """each objective's image budget under budget.max_flops (set by resolve_budgets; not a key of the file)"""

    def __post_init__(self):
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            raise SuiteError(f"objective names must be unique, got {names}")
        if self.launcher not in ("local", "slurm"):
            raise SuiteError(f"launcher must be 'local' or 'slurm', got {self.launcher!r}")
        if not self.seeds:
            raise SuiteError("need at least one seed")
        for i, entry in enumerate(self.objectives):
            if entry.tune_from is not None:
                self._check_tune_from(entry, names[:i])

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

    # the flat, read-only view the rest of compare/ reads
    max_images = property(lambda self: self.budget.images, doc="images per run (see max_images_for)")
    max_flops = property(lambda self: self.budget.max_flops)
    max_time = property(lambda self: self.budget.max_time)
    max_time_seconds = property(lambda self: self.budget.max_time_seconds)
    num_samples = property(lambda self: self.evaluation.num_samples)
    batch_size = property(lambda self: self.evaluation.batch_size)
    curve_points = property(lambda self: self.evaluation.curve_points)
    curve_samples = property(lambda self: self.evaluation.curve_samples)
    bootstrap = property(lambda self: self.evaluation.bootstrap)
    ema_sweep = property(lambda self: self.evaluation.ema_sweep)
    metrics = property(lambda self: self.evaluation.metrics)
    max_parallel = property(lambda self: self.slurm.max_parallel)

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
    parts = str(max_time).split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise SuiteError(f"budget.max_time must be 'DD:HH:MM:SS' (Lightning's format), got {max_time!r}")
    days, hours, minutes, seconds = (int(p) for p in parts)
    return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)


def load_suite(path: str | Path) -> Suite:
    """The suite of a YAML file, parsed and checked; every error is one SuiteError naming the file and the key."""
    path = Path(path)
    try:
        raw = _read(path)
        if isinstance(raw.get("objectives"), list):  # each entry alone first, so that an error names its index
            for i, entry in enumerate(raw["objectives"]):
                _objective(i, entry)
        suite = parse_as(Suite, _with_job_name(raw), FORMS, UNKNOWN_KEYS_OF, skip=NOT_IN_FILE)
    except (SchemaError, SuiteError) as error:
        raise SuiteError(f"{path}: {error}") from None
    resolve = lambda p: str(p if Path(p).is_absolute() or Path(p).exists() else (path.parent / p))  # noqa: E731
    suite = replace(suite, base_config=resolve(suite.base_config), source=str(path),
                    objectives=[replace(o, config=resolve(o.config)) for o in suite.objectives])
    for i, entry in enumerate(suite.objectives):
        if entry.tune_from is not None and entry.tune_from.teacher:
            _check_takes_teacher(path, i, entry)
    return suite


def objective_class(config: dict) -> type | None:
    """The objective class a fit config (composed, or an objective YAML alone) names (None when it names none,
    e.g. an autoencoder)."""
    spec = (config.get("model") or {}).get("objective")
    path = spec.get("class_path") if isinstance(spec, dict) else None
    if not path:
        return None
    module, _, name = str(path).rpartition(".")
    return getattr(importlib.import_module(module), name, None)


def _check_takes_teacher(path: Path, i: int, entry: ObjectiveEntry) -> None:
    """`tune_from.teacher` needs an objective with a `teacher_checkpoint` argument: read from its YAML's class
    (the signature, so that a default in the class counts), without building anything."""
    import inspect

    where = f"{path}: objectives[{i}] ({entry.name!r}): tune_from.teacher"
    try:
        config = yaml.safe_load(Path(entry.config).read_text()) or {}
        cls = objective_class(config)
    except (OSError, yaml.YAMLError, AttributeError, ImportError):
        return  # an unreadable config or class is reported by the fit config's own parser, with its cause
    if cls is None or "teacher_checkpoint" not in inspect.signature(cls).parameters:
        named = ((config.get("model") or {}).get("objective") or {}).get("class_path") or "no objective class"
        raise SuiteError(f"{where}: {entry.config} names {named}, which has no teacher_checkpoint argument; use "
                         "an objective that distils from a checkpoint (experiments/objectives/"
                         "progressive_distillation.yaml) or drop teacher: true")


def _read(path: Path) -> dict:
    if not path.is_file():
        raise SuiteError("suite file not found")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise SuiteError("the suite must be a mapping")
    return raw


def _objective(i: int, entry) -> ObjectiveEntry:
    try:
        return parse_as(ObjectiveEntry, entry, FORMS)
    except (SchemaError, SuiteError) as error:
        raise SuiteError(f"objectives[{i}]: {error}") from None


def _with_job_name(raw: dict) -> dict:
    """slurm.job_name defaults to compare-NAME: a default that depends on another key, so it is set on the input."""
    slurm = raw.get("slurm")
    if slurm is not None and not isinstance(slurm, dict):
        return raw  # the parser says what is wrong with it
    return raw | {"slurm": {"job_name": f"compare-{raw.get('name')}", **(slurm or {})}}
