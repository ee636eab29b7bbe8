"""Every YAML under experiments/ parses against the typed signatures (DESIGN §4), composed as users do:
a dataset/backbone file, optionally with an objective file on top."""
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from jsonargparse import ArgumentParser

from lit_diffusion.data.datamodule import ShardDataModule
from lit_diffusion.training.module import DiffusionModule

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
# autoencoder/ configs train an AutoencoderModule: tests/training/test_autoencoder_module.py parses them
BASES = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name not in ("objectives", "compare", "autoencoder"))
OBJECTIVES = sorted((EXPERIMENTS / "objectives").glob("*.yaml"))


def parser():
    p = ArgumentParser(exit_on_error=False)
    p.add_argument("--config", action="config")
    p.add_argument("--seed_everything", type=int | bool | None, default=None)
    p.add_class_arguments(Trainer, "trainer", fail_untyped=False)
    p.add_class_arguments(DiffusionModule, "model", fail_untyped=False)
    p.add_class_arguments(ShardDataModule, "data", fail_untyped=False)
    return p


def test_there_are_configs_for_every_dataset_backbone_and_objective():
    names = {f"{p.parent.name}/{p.stem}" for p in BASES}
    assert {f"{d}/{b}" for d in ("digits", "mnist", "cifar10") for b in ("dit", "unet")} <= names
    assert {p.stem for p in OBJECTIVES} == {"ddpm", "ddpm_v", "flow_matching", "rectified_flow",
                                            "consistency_training", "consistency_distillation", "consistency_tuning",
                                            "continuous_consistency", "mean_flow", "mean_flow_cifar10", "indm",
                                            "ddpm_learned_variance", "shortcut", "progressive_distillation",
                                            "pfgmpp"}


@pytest.mark.parametrize("base", BASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
@pytest.mark.parametrize("objective", [None] + OBJECTIVES, ids=lambda p: "own" if p is None else p.stem)
def test_config_parses(base, objective):
    args = ["--config", str(base)] + ([] if objective is None else ["--config", str(objective)])
    config = parser().parse_args(args)
    assert config.model.objective.class_path.startswith("lit_diffusion.")
    assert config.model.backbone.class_path.startswith("lit_diffusion.backbones.")


def test_a_bad_key_is_named():
    with pytest.raises(Exception, match="lr_rate"):
        parser().parse_args(["--config", str(BASES[0]), "--model.lr_rate", "1"])
