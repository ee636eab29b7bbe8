"""Bad input is reported before any job runs: a config that does not parse (the parser's message), a missing
partition and an sbatch failure (SLURM's own messages)."""
from __future__ import annotations

import subprocess

import pytest

from slurm_helpers import configs, fit_overrides, slurm

pytestmark = [pytest.mark.slurm]


def _queued() -> str:
    return subprocess.run(["squeue", "-h", "-o", "%i %j"], capture_output=True, text=True).stdout



def test_config_that_does_not_parse_is_reported_and_nothing_submitted(slurm_cluster, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  max_images: many\n")
    before = _queued()
    assert slurm("submit", *configs(), "-c", str(bad), "--trainer.default_root_dir", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "the training config does not parse" in err and "max_images" in err
    assert not (tmp_path / "r").exists() and _queued() == before


def test_missing_partition_is_reported_with_slurms_message(slurm_cluster, digits16, tmp_path, capsys):
    root = tmp_path / "r"
    assert slurm("submit", *configs(), "--partition", "nosuchpartition",
                 *fit_overrides(digits16, root, 32)) == 2
    err = capsys.readouterr().err
    assert "--partition nosuchpartition" in err and "Partition nosuchpartition not found" in err
    assert not (root / "slurm/job_id").exists()


def test_sbatch_failure_is_reported_with_slurms_message(slurm_cluster, digits16, tmp_path, capsys):
    root = tmp_path / "r"
    # GPUs on a cluster that has none: sbatch itself refuses the job
    assert slurm("submit", *configs(), "--gpus-per-node", "1", *fit_overrides(digits16, root, 32)) == 2
    err = capsys.readouterr().err
    assert "sbatch failed: sbatch: error: Invalid generic resource (gres) specification" in err
    assert not (root / "slurm/job_id").exists()
