"""Rebuild a trained DiffusionModule from its checkpoint alone.

The CLI stores the model section of the config (class_path + init_args of backbone and objective) in
every checkpoint as plain data (`model_spec`); this module parses it with the same typed signatures and
loads the weights, so sampling, distillation and reflow can name nothing but a checkpoint file.
"""
from __future__ import annotations

from pathlib import Path

import torch
from jsonargparse import ArgumentParser

from lit_diffusion.runs import CheckpointError, open_checkpoint
from lit_diffusion.runs.file_format import expect_kind
from lit_diffusion.runs.record import DIFFUSION_MODEL
from lit_diffusion.training.module import DiffusionModule


def load_module(checkpoint: str | Path, untrained_seed: int | None = None) -> DiffusionModule:
    """The trained module; with `untrained_seed`, the same model as its training started instead, initialised
    from that seed (the untrained baseline of a comparison)."""
    path = Path(checkpoint)
    if not path.exists():  # a file, or a checkpoint folder (DeepSpeed's is read consolidated by the door)
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        opened = open_checkpoint(path)
        expect_kind(opened.record, DIFFUSION_MODEL, "generation (sample, reflow, distillation, scoring)")
        ckpt = opened.full()
    except CheckpointError as error:  # the door's own message names the file, the cause and what to do
        raise ValueError(str(error)) from None
    except Exception as error:
        raise ValueError(f"checkpoint {path} is unreadable: {type(error).__name__}: {error}") from None
    spec = ckpt.get("model_spec")
    if spec is None:
        raise ValueError(f"checkpoint {path} has no 'model_spec' (it was not written by `lit-diffusion fit`)")
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(DiffusionModule, "model", fail_untyped=False)
    config = parser.parse_object({"model": spec})
    # jsonargparse 4.49 renamed instantiate_classes to instantiate; older versions have only the former
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    if untrained_seed is None:
        module = instantiate(config).model
        module.load_state_dict(ckpt["state_dict"])
    else:
        with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(untrained_seed)
            module = instantiate(config).model
    kept = ("model_spec", "sample_shape", "image_data") + (("images_seen", "train_seconds") if untrained_seed is None else ())
    module.on_load_checkpoint({k: v for k, v in ckpt.items() if k in kept})
    return module.eval()
