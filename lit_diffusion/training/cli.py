"""`lit-diffusion fit|validate|test -c CONFIG.yaml [--section.key value ...]` on LightningCLI.

The configuration schema is the typed signatures of DiffusionModule and ShardDataModule (class_path +
init_args for the backbone and the objective). On top of plain LightningCLI this adds:
- `--ckpt_path last`: resume from the readable checkpoint with the highest step under the run directory
  (`trainer.default_root_dir`/checkpoints), verified against its content hash, falling back past corrupt
  ones with a warning; with every checkpoint corrupt it fails instead of starting from scratch; a run that
  already reached its budget is not trained again (the command says so and exits 0);
- checkpoints written atomically and stamped with what they are (last + every `--checkpoint_every_n_steps`
  steps, best-k on train/loss, and one final `last.ckpt` at the step where fit stops, which resumes exactly);
- one `fit` per run folder at a time (RUN/.lock names the holder's PID);
- SIGUSR1, SIGTERM and SIGINT: a checkpoint at the next step boundary, then a non-zero exit if the run did not
  reach its budget;
- `--wandb_project NAME`: log to Weights & Biases (online, or offline with WANDB_MODE=offline), and a
  resumed run continues the same W&B run (its id is stored in the checkpoint); a CSV logger otherwise;
- `trainer.strategy` presets (ddp, fsdp2, fsdp, fsdp_hybrid, deepspeed_stage_2/3[_offload]) tuned by
  `--distributed.*`, the SLURM environment, a pre-flight check across ranks, and checkpoint-and-requeue on
  SIGUSR1 (lit_diffusion.distributed).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, WandbLogger

from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.distributed.configure import configure_trainer
from lit_diffusion.distributed.preflight import PreflightError, config_hash
from lit_diffusion.distributed.preemption import RequeueOnSignal
from lit_diffusion.distributed.strategies import StrategyOptions
from lit_diffusion.runs import (Budget, CheckpointError, RunDirectory, find_resume_checkpoint, is_sharded,
                                open_checkpoint)
from lit_diffusion.runs.file_format import expect_kind
from lit_diffusion.runs.record import AUTOENCODER, DIFFUSION_MODEL, shape_differences
from lit_diffusion.runs.resume import check_fresh_start
from lit_diffusion.runs.layout import CSV_LOGGER_NAME
from lit_diffusion.runs.metrics import drop_rows_after
from lit_diffusion.training.checkpointing import AtomicCheckpointIO
from lit_diffusion.training.config import TRAINER_DEFAULTS, FitArgumentsCLI, choose_model_class
from lit_diffusion.training.config import plain as _plain  # its name here before it moved to training/config.py
from lit_diffusion.training.config_checks import changed_on_resume, check_fit_config
from lit_diffusion.training.final_checkpoint import FinalCheckpoint
from lit_diffusion.training.bookkeeping import budget_reached
from lit_diffusion.training.run_checkpoint import CheckpointFields, RunCheckpoint, wandb_settings
from lit_diffusion.training.run_lock import RunFolderLocked, RunLock, is_global_rank_zero_process
from lit_diffusion.training.module import DiffusionModule
from lit_diffusion.training.preview import SamplePreview
from lit_diffusion.training.progress import TrainingProgress

log = logging.getLogger("lit_diffusion.training")
_held_locks: list[RunLock] = []  # released by main() however the command ends


class DiffusionCLI(FitArgumentsCLI):
    def _parse_ckpt_path(self) -> None:
        """LightningCLI reads `--ckpt_path FILE` here, before any of our hooks, and lays the checkpoint's
        hyper-parameters over the command line (a `--model.lr` given on resume was dropped without a word, while
        `--ckpt_path last` took it). Not here: the config given is the run's config, and a setting changed on
        resume is said (`changed_on_resume`) and recorded. The file goes through the door (a torn file, random
        bytes or a web page are refused before anything is unpickled) and must be the kind this config trains."""
        path = self.config[self.config.subcommand].get("ckpt_path") if self.config.get("subcommand") else None
        if path and Path(path).is_file():
            from lit_diffusion.training.autoencoder_module import AutoencoderModule

            kind = AUTOENCODER if issubclass(self._model_class, AutoencoderModule) else DIFFUSION_MODEL
            expect_kind(open_checkpoint(path).record, kind, f"--ckpt_path of this {self.config.subcommand} config")

    def before_instantiate_classes(self) -> None:
        sub = self.config[self.subcommand]
        self._resume_from = None
        self.nothing_to_do: str | None = None
        root = Path(sub.trainer.default_root_dir or ".")
        if self.subcommand == "fit" and is_global_rank_zero_process():
            _held_locks.append(RunLock(root).acquire())  # before anything in the folder is read or written
        if sub.get("ckpt_path") == "last":
            checkpoints = RunDirectory(root).checkpoints
            found = find_resume_checkpoint(checkpoints)  # raises when every checkpoint there is corrupt
            sub.ckpt_path = str(found) if found is not None else None
            if found is None:
                log.warning("--ckpt_path last: no checkpoint under %s; starting from scratch", checkpoints)
            else:
                log.info("resuming from %s", found)
        elif self.subcommand == "fit" and not sub.get("ckpt_path"):
            check_fresh_start(RunDirectory(root))  # a fresh run never writes over another run's checkpoints
        check_fit_config(_plain(sub), self.subcommand, sub.get("ckpt_path"))  # impossible options fail here
        if sub.get("ckpt_path"):
            self._resume_from = sub.ckpt_path
            if self.subcommand == "fit":
                self._prepare_resume(sub, root, open_checkpoint(sub.ckpt_path).record)
        self._model_spec = _plain(sub.model)

    def _prepare_resume(self, sub, root: Path, record) -> None:
        """Say so and train nothing when the checkpoint has reached this command's budget; otherwise drop the CSV
        rows of steps after it (a killed run logged them, the resume logs them again)."""
        self.nothing_to_do = _budget(sub).reached(record)
        if self.nothing_to_do:
            log.warning("%s: the run already finished (%s); nothing to train. Raise --trainer.max_steps, "
                        "--model.max_images or --trainer.max_time to continue it", record.path, self.nothing_to_do)
            return
        changed = changed_on_resume(record.model_spec, _plain(sub.model))
        if changed:
            log.warning("--ckpt_path %s: resuming with changed settings (%s), used from step %d on and recorded in "
                        "the new checkpoints", record.path, ", ".join(changed), record.global_step)
        removed = drop_rows_after(RunDirectory(root), record.global_step)
        if removed:
            log.warning("dropped %d CSV row(s) logged after step %d by the interrupted run", removed,
                        record.global_step)

    def _run_subcommand(self, subcommand: str) -> None:
        if getattr(self, "nothing_to_do", None):
            return
        super()._run_subcommand(subcommand)

    def instantiate_classes(self) -> None:
        super().instantiate_classes()
        if self._resume_from and not is_sharded(self._resume_from):
            self._check_same_shapes(self._resume_from)
        if isinstance(self.model, DiffusionModule):
            self._attach_latent()
        self.model.model_spec = self._model_spec  # stored in checkpoints: `load_module` rebuilds from it

    def _check_same_shapes(self, path: str) -> None:
        """A checkpoint of another network (a config changed between stop and resume) is refused in one line
        naming the tensors that differ, before Lightning lists every size mismatch."""
        mine = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        differ = shape_differences(open_checkpoint(path).record.shapes, mine, ("backbone.", "ema.shadow.", "autoencoder."))
        if differ:
            raise CheckpointError(f"--ckpt_path {path} holds another network than this config builds ({len(differ)} "
                                  f"tensor(s) differ, e.g. {'; '.join(differ[:3])}): resume with the model config it "
                                  "was trained with, or start a new run (another --trainer.default_root_dir)")

    def _attach_latent(self) -> None:
        """A model trained on latent shards records their autoencoder and normalisation (model_spec["latent"]), so
        that sampling, previews and scoring decode to images; a resumed or initialised model must use the same."""
        from lit_diffusion.data.latent_space import LATENT_KEY, LatentSpace, check_same_latent_space

        dm = self.datamodule
        dm.setup()
        where = f"--data.train_shards {dm.train_shards}"
        latent = LatentSpace.of_dataset(dm.train_set.info)
        _check_backbone_takes(self.model.backbone, list(dm.train_set.info.shape), where, latent is not None)
        for name, path in (("--ckpt_path", self._resume_from), ("--model.init_from", self.model.hparams.get("init_from"))):
            if path:
                trained_on = LatentSpace.from_optional(open_checkpoint(path).record.latent)
                check_same_latent_space(latent, trained_on, where, f"{name} {path}")
        self.model.latent = latent
        self._model_spec[LATENT_KEY] = None if latent is None else latent.to_dict()  # stored as the plain record

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
            callbacks = callbacks + [RunCheckpoint(dirpath=checkpoints, save_last=True,
                                                   every_n_train_steps=sub.checkpoint_every_n_steps,
                                                   save_top_k=sub.keep_checkpoints,
                                                   monitor="train/loss", mode="min")]
        if self.subcommand == "fit":
            callbacks = callbacks + [CheckpointFields(), FinalCheckpoint(), TrainingProgress()]
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
        run_id = open_checkpoint(self._resume_from).record.wandb_run_id if self._resume_from else None
        return WandbLogger(project=project, save_dir=str(root), id=run_id, resume="allow" if run_id else None,
                           settings=wandb_settings())


def _max_time_seconds(value) -> float:
    if not value:
        return 0.0
    from lightning.pytorch.callbacks import Timer  # Lightning parses "DD:HH:MM:SS", dicts and timedeltas

    return float(Timer(duration=value)._duration or 0.0)


def _budget(sub) -> Budget:
    """This command's limits. Its time budget counts only when fit ended on it: a checkpoint written on a signal
    just before max_time still has time to train."""
    spec = _plain(sub.model)
    return Budget(max_steps=sub.trainer.get("max_steps"),
                  max_images=spec.get("init_args", spec).get("max_images"),  # an AutoencoderModule config has init_args
                  max_time_seconds=_max_time_seconds(sub.trainer.get("max_time")), time_needs_fit_finished=True)


def _stop_signal(cli) -> int | None:
    """The signal that stopped fit before it reached its budget, if one did."""
    handler = next((c for c in cli.trainer.callbacks if isinstance(c, RequeueOnSignal)), None)
    if handler is None or not handler.preempted or budget_reached(cli.trainer, cli.model):
        return None
    return handler.received


def _strategy_options(sub) -> StrategyOptions:
    options = sub.get("distributed")
    if isinstance(options, StrategyOptions):
        return options
    return StrategyOptions(**_plain(options or {}))


def _check_backbone_takes(backbone, shape: list[int], where: str, latent: bool) -> None:
    """Samples of `shape` must fit the backbone's input channels and size (DiT: input_size; U-Net: multiples of
    its downsampling); said before training, with the options to change."""
    what = "latents" if latent else "samples"
    channels = getattr(backbone, "in_channels", None)
    if len(shape) == 3 and channels is not None and channels != shape[0]:
        raise ValueError(f"the {what} of {where} have shape {shape} but the backbone takes {channels} channel(s): "
                         f"pass --model.backbone.init_args.in_channels {shape[0]}")
    size = getattr(backbone, "input_size", None)
    if len(shape) == 3 and size is not None and tuple(size) != tuple(shape[1:]):
        patch = getattr(backbone, "patch_size", 1)
        fix = f"--model.backbone.init_args.input_size {shape[1]}" + (
            f" and a patch_size that divides it (now {patch})" if shape[1] % patch or shape[2] % patch else "")
        raise ValueError(f"the {what} of {where} have shape {shape} but the backbone was built for {list(size)}: "
                         f"pass {fix}")
    factor = getattr(backbone, "downsample_factor", None)
    if len(shape) == 3 and factor and (shape[1] % factor or shape[2] % factor):
        raise ValueError(f"the {what} of {where} have shape {shape} but the backbone downsamples by {factor}: "
                         f"use fewer levels (--model.backbone.init_args.channel_mult) or {what} whose size divides")


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    model_class, subclass_mode = choose_model_class(argv)
    try:
        cli = DiffusionCLI(model_class, ShardDataModule, args=argv, save_config_kwargs={"overwrite": True},
                           trainer_defaults=TRAINER_DEFAULTS, subclass_mode_model=subclass_mode)
    except (CheckpointError, RunFolderLocked, PreflightError) as error:  # the user's to act on: a message, not a traceback
        log.error("%s", error)
        return 2
    finally:
        while _held_locks:
            _held_locks.pop().release()
    if getattr(cli, "nothing_to_do", None):
        return 0
    if isinstance(cli.trainer.logger, WandbLogger) and cli.trainer.is_global_zero:
        cli.trainer.logger.experiment.finish()  # flush the run files; a resumed job reopens the same id
    stopped_by = _stop_signal(cli) if cli.subcommand == "fit" else None
    if stopped_by is not None:
        log.warning("stopped by signal %d before the end of the run; run the same command with --ckpt_path last "
                    "to continue", stopped_by)
        return 128 + stopped_by  # the shell convention for "ended by this signal"
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
