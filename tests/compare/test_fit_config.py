"""A comparison run trains from one composed fit config, the same config the `lit-diffusion fit` arguments
of that run resolve to."""
from pathlib import Path

import yaml

from lit_diffusion.compare.suite import load_suite
from lit_diffusion.compare.train import fit_config
from lit_diffusion.launch.configcheck import resolve_config

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments/compare/quickstart.yaml"


def test_fit_config_is_the_run_s_fit_arguments(tmp_path):
    suite = load_suite(QUICKSTART)
    suite.max_time, suite.max_time_seconds = "00:00:10:00", 600.0
    entry = suite.objectives[-1]  # one with its own overrides
    args = ["--data.train_shards", suite.shards, "--trainer.default_root_dir", str(suite.run_dir(entry.name, 3)),
            "--model.max_images", str(suite.max_images), "--seed_everything", "3", "--model.seed", "3",
            "--preview_every_n_steps", "0", *suite.overrides, *entry.overrides, "--trainer.max_time", suite.max_time]
    _, expected = resolve_config([suite.base_config, entry.config], args)
    composed = fit_config(suite, entry, 3)
    assert composed == expected
    assert yaml.safe_load(yaml.safe_dump(composed, sort_keys=False)) == composed  # survives RUN/fit.yaml
