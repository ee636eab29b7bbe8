"""The main job's path at tiny size through the real CLI (`python -m lit_diffusion.cli compare -c SUITE`): two
trainings side by side, each child on one intra-op thread; no warning the user cannot act on in the output
(MeanFlow's JVP used to print torch's `torch.jit.script` FutureWarning); MeanFlow's raw error logged and moving;
the per-phase table at the end."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lit_diffusion.compare.train import local_slots, progress
from lit_diffusion.runs import RunDirectory

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def write_suite(tmp_path: Path, shards: Path) -> Path:
    suite = {
        "name": "side_by_side", "out": str(tmp_path / "out"), "shards": str(shards),
        "base_config": str(EXPERIMENTS / "digits/unet.yaml"),
        "overrides": ["--data.num_workers", "0", "--data.batch_size", "16", "--trainer.accelerator", "cpu",
                      "--trainer.log_every_n_steps", "1"],
        "budget": {"max_images": 160}, "seeds": [0],
        "objectives": [
            {"name": "flow_matching", "config": str(EXPERIMENTS / "objectives/flow_matching.yaml"),
             "samplers": {"euler": [1]}},
            {"name": "mean_flow", "config": str(EXPERIMENTS / "objectives/mean_flow.yaml"),
             "overrides": ["--model.backbone.init_args.second_time", "true"], "samplers": {"mean_flow": [1]}}],
        "evaluation": {"num_samples": 32, "batch_size": 32, "curve_points": 1, "curve_samples": 16,
                       "bootstrap": 0, "metrics": ["fd"]},
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_trainings_get_one_intra_op_thread_each_and_one_slot_per_core():
    slots, env = local_slots()
    assert env == {"OMP_NUM_THREADS": "1"} and slots == len(os.sched_getaffinity(0))


@pytest.mark.slow
def test_the_compare_trains_side_by_side_without_unactionable_warnings(tmp_path, digits_shards):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("OMP_NUM_THREADS", None)  # as a newcomer runs it
    done = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "compare", "-c", str(write_suite(tmp_path, digits_shards))],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Warning" not in output and "warnings.warn" not in output, output[-3000:]
    assert "[phases] training (side by side) |" in output and "[phases] total |" in output
    runs = {name: RunDirectory(tmp_path / "out/runs" / f"{name}-seed0") for name in ("flow_matching", "mean_flow")}
    if len(os.sched_getaffinity(0)) >= 2:  # side by side: each started before the other ended
        starts = [r.fit_config.stat().st_mtime for r in runs.values()]
        ends = [r.last_checkpoint.stat().st_mtime for r in runs.values()]
        assert max(starts) < min(ends)
    rows = [r for r in csv.DictReader(open(next(runs["mean_flow"].root.rglob("metrics.csv")))) if r.get("train/loss")]
    loss, raw = [float(r["train/loss"]) for r in rows], [float(r["train/raw_error"]) for r in rows]
    assert len(raw) == 10 and min(raw) > 0 and max(abs(v - 1) for v in loss) < 0.01  # the weighted loss stays ~1 ...
    assert max(raw) > 1.05 * min(raw)  # ... the raw error moves
    assert progress(runs["mean_flow"], 160).endswith(f", raw error {raw[-1]:.4g}")  # the compare's progress line
