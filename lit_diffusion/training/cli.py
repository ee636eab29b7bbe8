"""`lit-diffusion fit|validate|test -c CONFIG.yaml [--section.key value ...]` on LightningCLI.

The configuration schema is the typed signatures of DiffusionModule and ShardDataModule (class_path +
init_args for the backbone and the objective). On top of plain LightningCLI this adds:
- `--ckpt_path last`: resume from the newest readable checkpoint under the run directory
  (`trainer.default_root_dir`/checkpoints), falling back past unreadable ones with a warning;
- checkpoints written atomically (last + every `--checkpoint_every_n_steps` steps, best-k on val/loss);
- `--wandb_project NAME`: log to Weights & Biases (online, or offline with WANDB_MODE=offline), and a
  resumed run continues the same W&B run (its id is stored in the checkpoint); a CSV logger otherwise;
- `trainer.strategy` presets (ddp, fsdp, fsdp_hybrid, deepspeed_stage_2/3[_offload]) tuned by
  `--distributed.*`, the SLURM environment, a pre-flight check across ranks, and checkpoint-and-requeue on
  SIGUSR1 (lit_diffusion.distributed).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.distributed import StrategyOptions, config_hash, configure_trainer
from lit_diffusion.runs import RunDirectory, find_resume_checkpoint, read_checkpoint_info
from lit_diffusion.runs.layout import CSV_LOGGER_NAME
from lit_diffusion.training.checkpointing import AtomicCheckpointIO
from lit_diffusion.training.final_checkpoint import FinalCheckpoint
from lit_diffusion.training.module import DiffusionModule
from lit_diffusion.training.preview import SamplePreview

log = logging.getLogger("lit_diffusion.training")
# Trainer defaults of `lit-diffusion fit`; the SLURM launcher resolves job configs with the same ones
TRAINER_DEFAULTS = {"max_epochs": -1, "log_every_n_steps": 10}


class DiffusionCLI(LightningCLI):
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

    def before_instantiate_classes(self) -> None:
        sub = self.config[self.subcommand]
        self._resume_from = None
        if sub.get("ckpt_path") == "last":
            checkpoints = RunDirectory(sub.trainer.default_root_dir or ".").checkpoints
            found = find_resume_checkpoint(checkpoints)
            sub.ckpt_path = str(found) if found is not None else None
            if found is None:
                log.warning("--ckpt_path last: no checkpoint under %s; starting from scratch", checkpoints)
            else:
                log.warning("resuming from %s", found)
        if sub.get("ckpt_path"):
            self._resume_from = sub.ckpt_path
        self._model_spec = _plain(sub.model)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        self.model.model_spec = self._model_spec  # stored in checkpoints: `load_module` rebuilds from it

    def before_fit(self) -> None:
        # the full configuration (backbone, objective, data, trainer) goes to the logger, not only hparams
        if self.trainer.logger is not None:
            self.trainer.logger.log_hyperparams({"config": _plain(self.config[self.subcommand])})

    def _instantiate_trainer(self, config, callbacks):
        sub = self.config[self.subcommand]
        root = Path(config.get("default_root_dir") or ".")
        checkpoints = RunDirectory(root).checkpoints
        config["plugins"] = [AtomicCheckpointIO()] + list(config.get("plugins") or [])
        if self.subcommand == "fit" and not any(isinstance(c, ModelCheckpoint) for c in callbacks + list(config.get("callbacks") or [])):
            callbacks = callbacks + [ModelCheckpoint(dirpath=checkpoints, save_last=True,
                                                     every_n_train_steps=sub.checkpoint_every_n_steps,
                                                     save_top_k=sub.keep_checkpoints,
                                                     monitor="train/loss", mode="min")]
        if self.subcommand == "fit":
            callbacks = callbacks + [FinalCheckpoint()]
        if self.subcommand == "fit" and sub.preview_every_n_steps > 0:
            callbacks = callbacks + [SamplePreview(every_n_steps=sub.preview_every_n_steps, num_samples=64)]
        if config.get("logger") in (None, True):
            config["logger"] = self._make_logger(root, sub.wandb_project)
        config, extra = configure_trainer(config, self.model.backbone, _strategy_options(sub),
                                          config_hash=config_hash(_plain(sub)), checkpoint_dir=checkpoints,
                                          fit=self.subcommand == "fit")
        return super()._instantiate_trainer(config, callbacks + extra)

    def _make_logger(self, root: Path, project: str | None):
        if project is None:
            return CSVLogger(root, name=CSV_LOGGER_NAME)
        run_id = read_checkpoint_info(self._resume_from).wandb_run_id if self._resume_from else None
        return WandbLogger(project=project, save_dir=str(root), id=run_id, resume="allow" if run_id else None)


def _strategy_options(sub) -> StrategyOptions:
    options = sub.get("distributed")
    if isinstance(options, StrategyOptions):
        return options
    return StrategyOptions(**_plain(options or {}))


def _plain(namespace):
    """A jsonargparse Namespace as nested dicts/lists of plain values."""
    if hasattr(namespace, "as_dict"):
        namespace = namespace.as_dict()
    if isinstance(namespace, dict):
        return {k: _plain(v) for k, v in namespace.items() if not k.startswith("__")}
    if isinstance(namespace, (list, tuple)):
        return [_plain(v) for v in namespace]
    return namespace


class _Parsed(Exception):
    """Carries the parsed config out of LightningCLI's constructor before anything is instantiated."""


class _ParseOnly(DiffusionCLI):
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
    try:
        _ParseOnly(DiffusionModule, ShardDataModule, args=args, trainer_defaults=TRAINER_DEFAULTS,
                   parser_kwargs={"exit_on_error": False})
    except _Parsed as parsed:
        return yaml.safe_load(parsed.args[0])["fit"]
    except Exception as error:  # jsonargparse's own message names the key
        raise ValueError(f"the fit config does not parse ({' '.join(args[1:])}): {error}") from None
    raise AssertionError("unreachable: _ParseOnly always raises")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    cli = DiffusionCLI(DiffusionModule, ShardDataModule, args=argv, save_config_kwargs={"overwrite": True},
                       trainer_defaults=TRAINER_DEFAULTS)
    if isinstance(cli.trainer.logger, WandbLogger) and cli.trainer.is_global_zero:
        cli.trainer.logger.experiment.finish()  # flush the run files; a resumed job reopens the same id
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
