"""A comparison run trains from one composed fit config, the same config the `lit-diffusion fit` arguments
of that run resolve to."""
from dataclasses import replace
from pathlib import Path

import yaml

from lit_diffusion.compare.suite import load_suite
from lit_diffusion.compare.train import fit_config
from lit_diffusion.launch.configcheck import resolve_config

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments/compare/quickstart.yaml"


def test_fit_config_is_the_run_s_fit_arguments(tmp_path):
    suite = load_suite(QUICKSTART)
    suite = replace(suite, budget=replace(suite.budget, max_time="00:00:10:00"),
                    evaluation=replace(suite.evaluation, ema_sweep=[], curve_points=3))
    assert suite.max_time_seconds == 600.0
    entry = next(e for e in suite.objectives if e.name == "consistency_training")  # one with its own overrides
    # 27,200 images / 64 per step = 425 steps: 3 quality-vs-compute checkpoints, ceil(425 / 3) = 142 steps apart
    # rounded up to the logging interval (10): every 150 steps
    args = ["--data.train_shards", suite.shards, "--trainer.default_root_dir", str(suite.run_dir(entry.name, 3)),
            "--model.max_images", str(suite.max_images), "--seed_everything", "3", "--model.seed", "3",
            "--preview_every_n_steps", "0", *suite.overrides, *entry.overrides, "--trainer.max_time", suite.max_time,
            "--checkpoint_every_n_steps", "150", "--keep_checkpoints", "-1"]
    _, expected = resolve_config([suite.base_config, entry.config], args)
    composed = fit_config(suite, entry, 3)
    assert composed == expected
    assert yaml.safe_load(yaml.safe_dump(composed, sort_keys=False)) == composed  # survives RUN/fit.yaml


def test_ema_sweep_switches_snapshots_on():
    suite = load_suite(QUICKSTART)
    suite = replace(suite, evaluation=replace(suite.evaluation, ema_sweep=[0.05, 0.1]))
    callbacks = fit_config(suite, suite.objectives[0], 0)["trainer"]["callbacks"]
    # a snapshot every 10% of the run's 425 steps
    assert callbacks[-1] == {"class_path": "lit_diffusion.training.posthoc_ema.PostHocEMASnapshots",
                             "init_args": {"sigma_rels": [0.05, 0.1], "every_n_steps": 42}}


def test_the_config_chooses_the_lightning_module():
    from lit_diffusion.training.autoencoder_module import AutoencoderModule
    from lit_diffusion.training.config import TRAINER_DEFAULTS, choose_model_class, compose_fit_config
    from lit_diffusion.training.module import DiffusionModule

    autoencoder = str(QUICKSTART.parents[1] / "autoencoder/mnist.yaml")
    assert choose_model_class(["fit", "-c", autoencoder]) == (AutoencoderModule, True)
    assert choose_model_class(["fit", f"--config={autoencoder}"]) == (AutoencoderModule, True)
    digits = str(QUICKSTART.parents[1] / "digits/unet.yaml")
    assert choose_model_class(["fit", "-c", digits]) == (DiffusionModule, False)
    composed = compose_fit_config([autoencoder], [])
    assert composed["model"]["class_path"].endswith("AutoencoderModule")
    assert {k: composed["trainer"][k] for k in TRAINER_DEFAULTS} == TRAINER_DEFAULTS
