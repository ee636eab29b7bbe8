"""`lit-diffusion compare` with `launcher: slurm` on the real one-node cluster: the unfinished trainings go
out as one job array (one task per objective), the runner waits for it, evaluates and reports; started
again, it submits nothing."""
from __future__ import annotations

import json

import pytest
import yaml

from lit_diffusion.compare.runner import run_suite
from lit_diffusion.compare.suite import load_suite

from slurm_helpers import EXPERIMENTS

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_suite_trains_as_a_job_array_then_reports(slurm_cluster, digits16, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the jobs run in the directory the suite was started from
    objectives = [
        {"name": "flow_matching", "config": str(EXPERIMENTS / "objectives/flow_matching.yaml"), "samplers": {"euler": [1, 2]}},
        {"name": "consistency_training", "config": str(EXPERIMENTS / "objectives/consistency_training.yaml"),
         "samplers": {"consistency": [1]}},
    ]
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "on-slurm", "out": str(tmp_path / "out"), "shards": str(digits16),
        "base_config": str(EXPERIMENTS / "digits/dit.yaml"),
        "overrides": ["--data.num_workers", "0", "--data.batch_size", "32", "--trainer.accelerator", "cpu"],
        "budget": {"max_images": 96}, "objectives": objectives, "evaluation": {"num_samples": 32, "batch_size": 32},
        "launcher": "slurm", "slurm": {"partition": slurm_cluster, "time": "10", "max_parallel": 2},
    }))
    suite = load_suite(path)
    logs: list[str] = []
    report = run_suite(suite, log=logs.append)

    manifest = json.loads((tmp_path / "out/slurm/manifest.json").read_text())
    assert [(t["task_id"], t["objective"]) for t in manifest["tasks"]] == [(0, "flow_matching"), (1, "consistency_training")]
    for task in manifest["tasks"]:  # each array task wrote its own log and trained its own run to the budget
        log = (tmp_path / "out/slurm/logs" / f"compare-on-slurm-{manifest['job_id']}_{task['task_id']}.out").read_text()
        assert "pre-flight ok: 1 rank(s)" in log
        assert json.loads((tmp_path / "out/runs" / f"{task['objective']}-seed0/train.json").read_text())["images_seen"] == 96
    assert "#SBATCH --array=0-1%2" in (tmp_path / "out/slurm/job.sbatch").read_text()
    text = report.read_text()
    assert "| flow_matching | euler | 2 |" in text and "| consistency_training | consistency | 1 |" in text

    logs.clear()
    run_suite(load_suite(path), log=logs.append)
    assert not any("submitted" in line for line in logs)
    assert sum("finished earlier: not trained again" in line for line in logs) == 2
    assert json.loads((tmp_path / "out/slurm/manifest.json").read_text())["job_id"] == manifest["job_id"]
