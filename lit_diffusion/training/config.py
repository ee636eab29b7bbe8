"""The `fit`/`validate`/`test` configuration: its schema on top of the typed signatures of the LightningModule and
ShardDataModule (the options this project adds, the Trainer defaults, which LightningModule a config trains),
and its composition from YAML layers and overrides into plain data without instantiating anything
(`compose_fit_config`: what a comparison run or a SLURM task trains). training/cli.py runs the command on it."""
from __future__ import annotations

from pathlib import Path

import re
import sys

import yaml
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.distributed import StrategyOptions

# Trainer defaults of `lit-diffusion fit`; the SLURM launcher resolves job configs with the same ones
TRAINER_DEFAULTS = {"max_epochs": -1, "log_every_n_steps": 10}


class OneLineErrorParser(LightningArgumentParser):
    """A parse error in one line and a pointer to --help, instead of ~95 lines of usage before it."""

    def error(self, message: str, ex: Exception | None = None):
        if not self.exit_on_error:
            return super().error(message, ex)  # compose_fit_config catches it and names the config
        command = re.sub(r"^\S*cli\.py(?: \[options\])?", "lit-diffusion", getattr(ex, "subcommand_parser", self).prog)
        command = command.replace(" [options]", "")
        sys.stderr.write(f"{command}: error: {' '.join(str(message).split())} (see {command} --help)\n")
        raise SystemExit(2)


class FitArgumentsCLI(LightningCLI):
    """LightningCLI with the options this project adds to every `fit`/`validate`/`test` config."""

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        if self.parser_class is LightningArgumentParser:
            self.parser_class = OneLineErrorParser
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument("--wandb_project", type=str | None, default=None,
                            help="log to this W&B project (WANDB_MODE=offline works without network); CSV otherwise")
        parser.add_argument("--checkpoint_every_n_steps", type=int, default=200,
                            help="write last.ckpt (and a numbered checkpoint) every N optimiser steps")
        parser.add_argument("--keep_checkpoints", type=int, default=2,
                            help="numbered checkpoints kept besides last.ckpt (the best by train/loss)")
        parser.add_argument("--preview_every_n_steps", type=int, default=500,
                            help="sample grid from fixed noise every N steps (0: never); PNGs in RUN/previews, and W&B")
        parser.add_class_arguments(StrategyOptions, "distributed", fail_untyped=False)


def choose_model_class(argv: list[str]) -> tuple[type, bool]:
    """(LightningModule class, subclass mode) of a command line: a config whose `model` names a class_path (the
    autoencoder's, experiments/autoencoder/) trains that module; every other config trains DiffusionModule.

    Read from the config files before the parser is built, because the class decides the parser's schema: a
    DiffusionModule config is the module's own arguments (`model: {backbone: ..., objective: ...}`, the shape
    that checkpoints store as their model spec and that `load_module` rebuilds from), while a subclass-mode
    parser would want `model: {class_path: ..., init_args: ...}` of every config."""
    from lit_diffusion.training.autoencoder_module import AutoencoderModule
    from lit_diffusion.training.module import DiffusionModule

    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("-c", "--config")]
    files += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for name in files:
        try:
            config = yaml.safe_load(Path(name).read_text()) if Path(name).is_file() else None
        except (OSError, yaml.YAMLError):
            config = None  # LightningCLI reports it
        model = config.get("model") if isinstance(config, dict) else None
        if isinstance(model, dict) and str(model.get("class_path", "")).endswith("AutoencoderModule"):
            return AutoencoderModule, True
    return DiffusionModule, False


def plain(namespace):
    """A jsonargparse Namespace as nested dicts/lists of plain values."""
    if hasattr(namespace, "as_dict"):
        namespace = namespace.as_dict()
    if isinstance(namespace, dict):
        return {k: plain(v) for k, v in namespace.items() if not k.startswith("__")}
    if isinstance(namespace, (list, tuple)):
        return [plain(v) for v in namespace]
    return namespace


class _Parsed(Exception):
    """Carries the parsed config out of LightningCLI's constructor before anything is instantiated."""


class _ParseOnly(FitArgumentsCLI):
    def parse_arguments(self, parser, args) -> None:
        super().parse_arguments(parser, args)
        try:  # jsonargparse >= 4.49 calls it skip_unset; older versions skip_none and skip_check
            text = parser.dump(self.config, skip_unset=False, skip_validation=True)
        except TypeError:
            text = parser.dump(self.config, skip_none=False, skip_check=True)
        raise _Parsed(text)


def compose_fit_config(config_files: list[str | Path], overrides: list[str], settings: dict | None = None) -> dict:
    """The full `fit` configuration of these YAML files, then `settings` (nested values, e.g. {"model":
    {"seed": 0}}), then `--section.key value` overrides, parsed by the same LightningCLI parser (and trainer
    defaults) as `lit-diffusion fit`, as plain data; nothing is instantiated. Written to a file,
    `main(["fit", "--config", FILE])` trains exactly that run."""
    layers = [str(f) for f in config_files] + ([yaml.safe_dump(settings)] if settings else [])  # --config takes YAML text too
    args = ["fit", *(a for layer in layers for a in ("--config", layer)), *overrides]
    module, subclass_mode = choose_model_class(args)
    try:
        _ParseOnly(module, ShardDataModule, args=args, trainer_defaults=TRAINER_DEFAULTS,
                   parser_kwargs={"exit_on_error": False}, subclass_mode_model=subclass_mode)
    except _Parsed as parsed:
        return yaml.safe_load(parsed.args[0])["fit"]
    except Exception as error:  # jsonargparse's own message names the key
        raise ValueError(f"the fit config does not parse ({' '.join(args[1:])}): {error}") from None
    raise AssertionError("unreachable: _ParseOnly always raises")
