"""Launch pieces that need no cluster: the rendered sbatch script, grid and manifest, option errors, and a
clear error where SLURM is not installed."""
from __future__ import annotations

import pytest

from lit_diffusion.commands.slurm import main as slurm_main
from lit_diffusion.launch.options import JobOptions
from lit_diffusion.launch.sweep import array_spec, grid_points, parse_grid, read_manifest, write_manifest

from slurm_helpers import configs



def test_dry_run_prints_the_sbatch_script(tmp_path, capsys):
    assert slurm_main(["submit", *configs(), "--nodes", "2", "--gpus-per-node", "4", "--cpus-per-task", "8",
                       "--time", "2-00:00:00", "--partition", "gpu", "--account", "proj", "--signal-seconds", "300",
                       "--dry-run", "--trainer.default_root_dir", str(tmp_path / "run")]) == 0
    script = capsys.readouterr().out
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=2-00:00:00", "#SBATCH --signal=USR1@300",
                 "#SBATCH --requeue", "#SBATCH --open-mode=append", "#SBATCH --partition=gpu",
                 "#SBATCH --account=proj", f"#SBATCH --output={tmp_path / 'run'}/slurm/logs/%x-%j.out"):
        assert line in script, line
    assert "srun --kill-on-bad-exit=1 " in script and "--ckpt_path last" in script
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_sweep_dry_run_is_a_job_array(tmp_path, capsys):
    assert slurm_main(["sweep", *configs(), "--grid", "model.lr=1e-3,1e-4", "--grid", "data.batch_size=16,32",
                       "--max-parallel", "2", "--name", "s1", "--sweep-dir", str(tmp_path / "s1"), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "#SBATCH --array=0-3%2" in out.out and "export WANDB_RUN_GROUP=s1" in out.out
    assert "task-${SLURM_ARRAY_TASK_ID}/config.yaml" in out.out
    assert '"data.batch_size": "32"' in out.err


def test_grid_manifest_and_options(tmp_path):
    grid = parse_grid(["model.lr=1e-3,3e-4", "--data.batch_size=16,32"])
    assert grid_points(grid)[1] == {"model.lr": "1e-3", "data.batch_size": "32"} and len(grid_points(grid)) == 4
    assert array_spec(4, None) == "0-3"
    for bad in ("model.lr", "model.lr=", "model.lr=1,1"):
        with pytest.raises(ValueError, match="--grid"):
            parse_grid([bad])
    write_manifest(tmp_path, {"tasks": [1]})
    assert read_manifest(tmp_path) == {"tasks": [1]}
    with pytest.raises(FileNotFoundError, match="no sweep manifest"):
        read_manifest(tmp_path / "nothing")
    with pytest.raises(ValueError, match="--time"):
        JobOptions(time="soon")
    with pytest.raises(ValueError, match="--tasks-per-node"):
        JobOptions(gpus_per_node=4, tasks_per_node=2)


def test_without_slurm_installed_the_error_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, no scontrol
    assert slurm_main(["submit", *configs(), "--trainer.default_root_dir", str(tmp_path / "run")]) == 2
    assert "`sbatch` is not on PATH" in capsys.readouterr().err
