"""The one writer of imported models: a checkpoint of the project (the form `lit-diffusion fit` writes, with its
model_spec, sample shape, EMA and content hash) in the run layout, RUN/checkpoints/last.ckpt, so that `sample`,
scoring, distillation (teacher_checkpoint) and tuning (--model.init_from) take it like any trained run.

The published weights go to both the raw model and its EMA (they are the EMA of their authors' run). Step and
images seen start at 0: the checkpoint is a starting point, not a fit to resume (start new runs from it with
--model.init_from)."""
from __future__ import annotations

import json
from pathlib import Path

import lightning
import torch
from jsonargparse import ArgumentParser

from lit_diffusion.data.latent_space import LATENT_KEY, LatentSpace
from lit_diffusion.published.imported import COMPUTED, ImportedModel
from lit_diffusion.published.keys import check_state_dict
from lit_diffusion.runs import RunDirectory
from lit_diffusion.runs.record import RUN_FIELDS
from lit_diffusion.training.checkpointing import AtomicCheckpointIO
from lit_diffusion.training.module import DiffusionModule

IMPORTED_FIELD = "imported_from"  # the checkpoint's record of the published source


def _instantiate(spec: dict) -> tuple[DiffusionModule, dict]:
    """(the module, its model_spec with every default filled in) parsed by the typed signatures, as `fit` does."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(DiffusionModule, "model", fail_untyped=False)
    config = parser.parse_object({"model": spec})
    full = parser.dump(config, format="json_indented")
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(config).model, json.loads(full)["model"]


def build_module(model: ImportedModel, latent: LatentSpace | None = None) -> DiffusionModule:
    """The DiffusionModule of an imported model, its published weights in the backbone and the EMA."""
    spec = {"backbone": model.backbone, "objective": model.objective, "conditional": model.conditional,
            LATENT_KEY: None if latent is None else latent.to_dict()}  # the plain record, as `fit` stores it
    with torch.random.fork_rng(devices=[]):  # the random initialisation is overwritten; the caller's RNG is untouched
        module, full_spec = _instantiate(spec)
    backbone = module.backbone
    own = {k: tuple(v.shape) for k, v in backbone.state_dict().items()
           if k not in COMPUTED.get(model.backbone["class_path"], ())}
    check_state_dict(model.weights, own, "the mapped weights", "This is a bug of lit_diffusion/published: report it")
    backbone.load_state_dict(model.weights, strict=False)
    module.ema.shadow.load_state_dict(backbone.state_dict())
    module.model_spec, module.sample_shape = full_spec, tuple(model.sample_shape)
    module.image_data = model.image_data and latent is None
    return module.eval()


def write_imported(model: ImportedModel, out: str | Path, latent: LatentSpace | None = None,
                   overwrite: bool = False) -> Path:
    """Write RUN/checkpoints/last.ckpt under `out`; returns its path."""
    path = RunDirectory(out).last_checkpoint
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists: give another --out, or --overwrite to replace it")
    module = build_module(model, latent)
    checkpoint = {"state_dict": module.state_dict(), "model_spec": module.model_spec,
                  "sample_shape": list(model.sample_shape), "image_data": module.image_data, "images_seen": 0,
                  "train_seconds": 0.0, "epoch": 0,
                  "global_step": 0, "hyper_parameters": dict(module.hparams),
                  "pytorch-lightning_version": lightning.__version__, IMPORTED_FIELD: dict(model.source),
                  RUN_FIELDS: {"global_step": 0, "images_seen": 0, "fit_finished": False}}
    AtomicCheckpointIO().save_checkpoint(checkpoint, path)
    return path
