"""Checks of a `fit`/`validate`/`test` configuration that Lightning would accept and then get wrong silently.

``check_fit_config(config, subcommand, resume_checkpoint)`` runs after the config is parsed and before
anything is instantiated (training/cli.py calls it); each failed check raises a ValueError that names the
option and says what to do instead. ``config`` is the parsed config of the subcommand as plain dicts.
"""
from __future__ import annotations

from typing import Any


def check_fit_config(config: dict, subcommand: str, resume_checkpoint: str | None) -> None:
    """Raise ValueError for an impossible or silently-wrong configuration (see the module docstring)."""
    if subcommand == "fit":
        _check_checkpoint_options(config)
    if subcommand == "validate" and not _get(config, "data", "val_shards"):
        raise ValueError("validate needs validation shards: pass --data.val_shards DIR (built with `lit-diffusion "
                         "data build ... --out DIR`, or --val-fraction F at build time); without them there is "
                         "nothing to evaluate")
    _check_labels(config)
    if resume_checkpoint:
        _check_same_objective(config, resume_checkpoint)


def _get(config: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(config, dict):
            return None
        config = config.get(key)
    return config


def _check_checkpoint_options(config: dict) -> None:
    every = config.get("checkpoint_every_n_steps")
    if every is not None and every < 1:
        raise ValueError(f"--checkpoint_every_n_steps must be >= 1, got {every} (a preempted run resumes from "
                         f"the last of these; a large value such as 1000000 writes one at the end only)")
    keep = config.get("keep_checkpoints")
    if keep is not None and keep < -1:
        raise ValueError(f"--keep_checkpoints must be >= 0 (the number of numbered checkpoints kept besides "
                         f"last.ckpt) or -1 (keep all), got {keep}")


def _check_labels(config: dict) -> None:
    """A conditional model needs labelled data (else it would train its null class only)."""
    if not _get(config, "model", "conditional"):
        return
    data = config.get("data") or {}
    if data.get("labels") is False:
        raise ValueError("--model.conditional true needs labels, but --data.labels is false: set one of them")
    labelled, classes = _data_classes(data)
    if labelled is None:
        return  # the data cannot be read here: ShardDataModule reports that with its own message
    if not labelled:
        raise ValueError(f"--model.conditional true, but the shards {data.get('train_shards')} have no labels: "
                         f"pass --model.conditional false, or shards with labels (dataset.json num_classes > 0; "
                         f"shards without dataset.json: a cls member or --data.label_key json:FIELD)")
    backbone = _get(config, "model", "backbone", "init_args", "num_classes")
    if backbone is not None and classes > backbone:
        raise ValueError(f"the shards {data.get('train_shards')} have {classes} classes but the backbone's "
                         f"num_classes is {backbone}: pass --model.backbone.init_args.num_classes {classes}")


def _data_classes(data: dict) -> tuple[bool | None, int]:
    """(labelled, classes) of the training shards, or (None, 0) when they cannot be resolved."""
    from lit_diffusion.data.errors import DataError
    from lit_diffusion.data.infer import InferOptions
    from lit_diffusion.data.urls import resolve_shards

    if not data.get("train_shards"):
        return None, 0
    options = {k: data.get(k) for k in ("image_key", "label_key", "num_classes", "resolution")}
    try:
        shards = resolve_shards(data["train_shards"], data.get("dataset_json"), check_exists=False,
                                infer=InferOptions(**options))
    except (DataError, ValueError, OSError):
        return None, 0
    return shards.info.labeled, shards.info.num_classes


def _objective(model_spec: dict | None) -> str | None:
    path = _get(model_spec or {}, "objective", "class_path")
    return path.rsplit(".", 1)[-1] if isinstance(path, str) else None


def _check_same_objective(config: dict, checkpoint: str) -> None:
    """Resuming trains the checkpoint's weights with the config's objective: a different one is a mistake
    (and the checkpoint would go on naming the old one); `--model.init_from` starts a new run from weights."""
    from lit_diffusion.runs import open_checkpoint

    try:
        saved = _objective(open_checkpoint(checkpoint).record.model_spec)
    except Exception:  # an unreadable checkpoint is reported by the resume itself
        return
    now = _objective(config.get("model"))
    if saved and now and saved != now:
        raise ValueError(f"--ckpt_path {checkpoint} was trained with the {saved} objective, the config says {now}: "
                         f"resume with the {saved} config, or start a new run from its weights with "
                         f"--model.init_from {checkpoint} (and another --trainer.default_root_dir)")


# model settings a resume may change (they steer the optimiser and the EMA from the resumed step on); every other
# change is refused by its own check (backbone shapes, objective) or is a budget (max_images)
RESUME_SETTINGS = ("lr", "betas", "weight_decay", "schedule", "ema_decay")


def changed_on_resume(saved_spec: dict | None, model: dict | None) -> list[str]:
    """`KEY OLD -> NEW` for each of RESUME_SETTINGS that the config changes from the checkpoint's model record."""
    saved = (saved_spec or {}).get("init_args", saved_spec or {})  # an AutoencoderModule spec nests init_args
    now = (model or {}).get("init_args", model or {})
    plain = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731  (YAML lists vs tuples)
    return [f"{key} {saved[key]!r} -> {now[key]!r}" for key in RESUME_SETTINGS
            if key in saved and key in now and plain(saved[key]) != plain(now[key])]
