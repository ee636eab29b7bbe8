"""`slurm submit --dry-run` and `slurm sweep --dry-run` accept every fit config under experiments/ that `fit`
accepts (the autoencoder's included: the same composition and parser, training/config.py), and the job asks
for the config's loader workers + 1 CPUs per task, with a warning when the user asks for fewer."""
from __future__ import annotations

import pytest

from lit_diffusion.commands.slurm import main as slurm_main

from slurm_helpers import EXPERIMENTS

# the fit configs (tests/test_experiment_configs.py): dataset/backbone files and the autoencoder's; objectives/
# are layers on top of a base, compare/ are suites
FIT_CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.parent.name not in ("objectives", "compare"))


def _workers(path) -> int:
    import yaml

    return int(yaml.safe_load(path.read_text())["data"]["num_workers"])


def test_the_fit_configs_include_the_autoencoder():
    assert {"autoencoder/mnist", "autoencoder/imagenet100", "digits/dit"} <= {f"{p.parent.name}/{p.stem}" for p in FIT_CONFIGS}


@pytest.mark.parametrize("config", FIT_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_submit_dry_run_accepts_every_fit_config(config, tmp_path, capsys):
    assert slurm_main(["submit", "-c", str(config), "--dry-run", "--trainer.default_root_dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr()
    assert f"#SBATCH --cpus-per-task={_workers(config) + 1}" in out.out and "warning" not in out.err
    assert not (tmp_path / "r").exists()


def test_sweep_dry_run_accepts_the_autoencoder_config(tmp_path, capsys):
    config = EXPERIMENTS / "autoencoder/mnist.yaml"
    assert slurm_main(["sweep", "-c", str(config), "--grid", "model.init_args.lr=1e-3,1e-4", "--sweep-dir",
                       str(tmp_path / "s"), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "#SBATCH --array=0-1" in out.out and f"#SBATCH --cpus-per-task={_workers(config) + 1}" in out.out


def test_fewer_cpus_than_loader_workers_warns(tmp_path, capsys):
    config = EXPERIMENTS / "cifar10/indm.yaml"  # 8 loader workers
    assert slurm_main(["submit", "-c", str(config), "--cpus-per-task", "4", "--dry-run",
                       "--trainer.default_root_dir", str(tmp_path / "r")]) == 0
    out = capsys.readouterr()
    assert "#SBATCH --cpus-per-task=4" in out.out
    assert ("warning: --cpus-per-task 4 is fewer than the config's data.num_workers + 1 = 9" in out.err
            and "--cpus-per-task 9" in out.err)
    assert slurm_main(["submit", "-c", str(config), "--data.num_workers", "0", "--dry-run",
                       "--trainer.default_root_dir", str(tmp_path / "r")]) == 0
    assert "#SBATCH --cpus-per-task=1" in capsys.readouterr().out


def test_the_jobs_config_of_the_autoencoder_resolves_to_itself(tmp_path):
    # what the job runs (`fit -c RUN/slurm/config.yaml --ckpt_path last`) is the config that was checked
    from lit_diffusion.launch.configcheck import resolve_config

    text, config = resolve_config([str(EXPERIMENTS / "autoencoder/mnist.yaml")], [])
    (tmp_path / "config.yaml").write_text(text)
    _, again = resolve_config([str(tmp_path / "config.yaml")], ["--ckpt_path", "last"])
    assert config["model"]["class_path"].endswith("AutoencoderModule")
    assert {**again, "ckpt_path": None} == {**config, "ckpt_path": None}
