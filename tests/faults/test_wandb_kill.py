"""Issue 16, fault 6 for W&B: a fit logging to a W&B offline run is killed with kill -9 after a checkpoint.
Every step the checkpoint claims must already be in the run's .wandb file (wandb-core used to write it every
15 s, so the killed run kept only its header), and after the same command resumes, the run (both offline
directories, merged by runs/wandb_offline.py) holds every training step exactly once."""
import signal

import pytest

from fault_helpers import fit, signal_and_wait, start_fit, wait_for_checkpoint
from lit_diffusion.runs.wandb_offline import load_offline_runs

N = 24
EVERY = ("--checkpoint_every_n_steps", "4")
WANDB = ("--wandb_project", "faults")


def logged_steps(root, **kwargs) -> list[int]:
    runs = load_offline_runs(root / "wandb", **kwargs)
    assert len(runs) == 1, f"one W&B run id over the stop and the resume, got {sorted(runs)}"
    (run,) = runs.values()
    return [int(s) for s, row in ((r.get("trainer/global_step"), r) for r in run.history)
            if s is not None and "train/loss" in row]


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def test_kill_9_after_a_checkpoint_keeps_every_logged_step_and_the_resume_logs_each_once(tmp_path, digits_shards):
    root = tmp_path / "run"
    child = start_fit(root, digits_shards, "--trainer.max_steps", str(N), *EVERY, *WANDB)
    wait_for_checkpoint(root, 8, child)
    assert signal_and_wait(child, signal.SIGKILL) == -signal.SIGKILL
    # the killed process's last record may be cut mid-write: that one is after the checkpoint
    before = logged_steps(root, allow_partial_tail=True)
    assert before[:8] == list(range(8)), f"steps the step-8 checkpoint claims are missing from W&B: {before}"
    assert fit(root, digits_shards, "--trainer.max_steps", str(N), *EVERY, *WANDB, "--ckpt_path", "last") == 0
    assert logged_steps(root, allow_partial_tail=True) == list(range(N))


def test_a_resume_from_an_earlier_checkpoint_supersedes_the_steps_logged_after_it(tmp_path, digits_shards):
    """The deterministic form of a kill that lands after steps past the checkpoint were written: the first
    process logs steps 0-11, the resume starts again from the step-8 checkpoint."""
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "12", *EVERY, *WANDB) == 0
    (step8,) = (root / "checkpoints").glob("*step=8.ckpt")
    assert fit(root, digits_shards, "--trainer.max_steps", "16", *EVERY, *WANDB, "--ckpt_path", str(step8)) == 0
    assert logged_steps(root) == list(range(16))
    run = next(iter(load_offline_runs(root / "wandb", resume_key=None).values()))
    assert len(run.directories) == 2 and len(run.metric("train/loss")) == 12 + 8  # what supersede removed
