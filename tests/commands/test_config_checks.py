"""check_fit_config: the fit/validate configurations Lightning accepts and then gets silently wrong."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lit_diffusion.training.config_checks import check_fit_config

FM = {"class_path": "lit_diffusion.objectives.FlowMatching"}
DDPM = {"class_path": "lit_diffusion.objectives.DDPM"}


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Two tiny datasets: labelled digits-like images and unlabelled ones."""
    from lit_diffusion.data.sources import ArrayImageSource
    from lit_diffusion.data.writer import BuildOptions, build_dataset, resolve_encode_options

    root = tmp_path_factory.mktemp("checks")
    images = np.random.default_rng(0).integers(0, 256, (16, 4, 4), dtype=np.uint8)
    for name, labels, names in (("labelled", np.arange(16) % 3, ["a", "b", "c"]), ("unlabelled", None, [])):
        source = ArrayImageSource(name, images, labels, names, {})
        build_dataset(source, BuildOptions(out=str(root / name), progress=False), resolve_encode_options(source))
    return root


def config(train_shards, conditional=True, objective=FM, classes=10, **top):
    return {"model": {"conditional": conditional, "objective": objective,
                      "backbone": {"class_path": "x.UNet", "init_args": {"num_classes": classes}}},
            "data": {"train_shards": str(train_shards)}, "checkpoint_every_n_steps": 200, "keep_checkpoints": 2,
            **top}


def test_a_sound_config_passes(shards):
    check_fit_config(config(shards / "labelled"), "fit", None)
    check_fit_config(config(shards / "unlabelled", conditional=False), "fit", None)


def test_conditional_model_on_unlabelled_shards_is_refused(shards):
    with pytest.raises(ValueError, match="--model.conditional true, but the shards .*unlabelled have no labels"):
        check_fit_config(config(shards / "unlabelled"), "fit", None)
    with pytest.raises(ValueError, match="backbone's num_classes is 2: pass --model.backbone.init_args.num_classes 3"):
        check_fit_config(config(shards / "labelled", classes=2), "fit", None)


def test_impossible_checkpoint_options(shards):
    with pytest.raises(ValueError, match="--checkpoint_every_n_steps must be >= 1, got 0"):
        check_fit_config(config(shards / "labelled", checkpoint_every_n_steps=0), "fit", None)
    with pytest.raises(ValueError, match=r"--keep_checkpoints must be >= 0 .* or -1 \(keep all\), got -3"):
        check_fit_config(config(shards / "labelled", keep_checkpoints=-3), "fit", None)


def test_validate_without_val_shards(shards):
    with pytest.raises(ValueError, match="validate needs validation shards: pass --data.val_shards"):
        check_fit_config(config(shards / "labelled"), "validate", None)


def test_resuming_with_another_objective(shards, tmp_path):
    checkpoint = tmp_path / "last.ckpt"
    torch.save({"model_spec": {"objective": DDPM}, "state_dict": {}, "global_step": 5}, checkpoint)
    check_fit_config(config(shards / "labelled", objective=DDPM), "fit", str(checkpoint))
    with pytest.raises(ValueError, match="trained with the DDPM objective, the config says FlowMatching.*init_from"):
        check_fit_config(config(shards / "labelled"), "fit", str(checkpoint))
