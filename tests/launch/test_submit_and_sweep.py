"""On a real one-node SLURM cluster (started by the session fixture): a tiny job submitted with
`lit-diffusion slurm submit` finishes with its checkpoint and W&B offline run, and a 3-point sweep runs as a
job array with a manifest mapping task ids to overrides and 3 distinct W&B runs grouped by sweep."""
from __future__ import annotations

import json

import pytest
import torch

from lit_diffusion.launch.submit import sweep_status
from lit_diffusion.runs.wandb_offline import load_offline_runs, read_records

from slurm_helpers import configs, fit_overrides, job_log, slurm, wait_for_jobs

pytestmark = [pytest.mark.slurm, pytest.mark.slow]



def test_submitted_job_finishes_with_checkpoint_and_wandb_run(slurm_cluster, digits16, tmp_path, offline_wandb):
    root = tmp_path / "run"
    assert slurm("submit", *configs(), "--partition", slurm_cluster, "--time", "10", "--job-name", "tiny",
                 *fit_overrides(digits16, root, 96, "--wandb_project", "lit-diffusion-slurm-test")) == 0
    job_id = (root / "slurm/job_id").read_text().strip()
    assert wait_for_jobs(job_id) == "COMPLETED", job_log(root)
    last = torch.load(root / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert last["global_step"] == 3 and last["images_seen"] == 96
    runs = load_offline_runs(root)
    assert list(runs) == [last["wandb_run_id"]]
    assert sorted(int(s) for s in runs[last["wandb_run_id"]].metric("trainer/global_step")) == [0, 1, 2]
    log = job_log(root)
    assert (root / f"slurm/logs/tiny-{job_id}.out").is_file() and "pre-flight ok: 1 rank(s)" in log


def _run_group(run_dir) -> str:
    for wandb_file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in read_records(wandb_file):
            if record.WhichOneof("record_type") == "run":
                return record.run.run_group
    raise AssertionError(f"no W&B run record under {run_dir}")


def test_three_point_sweep_is_a_job_array_with_a_manifest(slurm_cluster, digits16, tmp_path, offline_wandb, capsys):
    sweep_dir = tmp_path / "lr-sweep"
    assert slurm("sweep", *configs(), "--grid", "model.lr=1e-3,3e-4,1e-4", "--max-parallel", "3", "--name",
                 "lr-sweep", "--sweep-dir", str(sweep_dir), "--time", "10",
                 *fit_overrides(digits16, tmp_path / "unused", 64, "--wandb_project", "lit-diffusion-sweep-test")) == 0
    manifest = json.loads((sweep_dir / "manifest.json").read_text())
    assert [t["overrides"] for t in manifest["tasks"]] == [{"model.lr": v} for v in ("1e-3", "3e-4", "1e-4")]
    assert wait_for_jobs(manifest["job_id"]) == "COMPLETED,COMPLETED,COMPLETED"
    run_ids = set()
    for task in manifest["tasks"]:
        run_dir = sweep_dir / f"task-{task['task_id']}"
        assert task["run_dir"] == str(run_dir)
        runs = load_offline_runs(run_dir)
        assert len(runs) == 1, job_log(sweep_dir, "logs")
        run = next(iter(runs.values()))
        assert run.config["lr"] == pytest.approx(float(task["overrides"]["model.lr"]))
        assert _run_group(run_dir) == "lr-sweep"
        run_ids.add(run.run_id)
    assert len(run_ids) == 3
    rows = sweep_status(sweep_dir, "train/loss")
    assert [r["state"] for r in rows] == ["COMPLETED"] * 3 and [r["step"] for r in rows] == [2, 2, 2]
    assert all(r["train/loss"] is not None for r in rows)
    assert slurm("status", str(sweep_dir)) == 0
    table = capsys.readouterr().out
    assert "model.lr=3e-4" in table and table.count("COMPLETED") == 3
