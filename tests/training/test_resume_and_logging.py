"""Through the real CLI: exact resume (bitwise on the CPU, stopped mid-epoch), W&B offline runs that
continue under one id, and a NaN loss that stops training without touching the last good checkpoint."""
import csv
import time
from pathlib import Path

import pytest
import torch
import wandb

from lit_diffusion.cli import main as cli_main
from lit_diffusion.runs.wandb_offline import load_offline_runs

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def fit(root, shards, *extra):
    # 6 steps per epoch (192 samples / 32): a stop after 4 steps is in the middle of an epoch
    args = ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
            "--data.num_workers", "0", "--data.train_shards", str(shards), "--data.batch_size", "32",
            "--data.samples_per_epoch", "192", "--model.max_images", "256", "--trainer.default_root_dir", str(root),
            "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "1", "--trainer.accelerator", "cpu",
            *extra]
    return cli_main(args)


def losses(root):
    rows = []
    for path in sorted(Path(root, "csv").glob("version_*/metrics.csv")):
        with open(path) as f:
            rows += [(int(r["step"]), float(r["train/loss"])) for r in csv.DictReader(f) if r.get("train/loss")]
    return rows


def test_exact_resume_mid_epoch(tmp_path, digits_shards):
    assert fit(tmp_path / "a", digits_shards, "--trainer.max_steps", "8") == 0
    assert fit(tmp_path / "b", digits_shards, "--trainer.max_steps", "4") == 0
    # the wall time in fit adds up over resumes: pretend the first part took 1000 s
    half = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=False)
    assert 0 < half["train_seconds"] < 1000
    torch.save(half | {"train_seconds": 1000.0}, tmp_path / "b/checkpoints/last.ckpt")
    started = time.perf_counter()
    assert fit(tmp_path / "b", digits_shards, "--trainer.max_steps", "8", "--ckpt_path", "last") == 0
    second_part = time.perf_counter() - started
    a = torch.load(tmp_path / "a/checkpoints/last.ckpt", weights_only=False)
    b = torch.load(tmp_path / "b/checkpoints/last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] == 8 and a["images_seen"] == b["images_seen"] == 256
    assert 1000.0 < b["train_seconds"] < 1000.0 + second_part
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:  # weights and EMA, bitwise
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    for i in opt_a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a[i][name], opt_b[i][name]), (i, name)
    assert torch.equal(a["noise_generator"], b["noise_generator"])
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert [s for s, _ in losses(tmp_path / "b")] == list(range(8))


def test_last_checkpoint_holds_the_final_step_between_save_intervals(tmp_path, digits_shards):
    # budget 160 images = 5 steps, checkpoints every 2 steps: the final step 5 is no save step
    assert fit(tmp_path / "run", digits_shards, "--model.max_images", "160", "--checkpoint_every_n_steps", "2") == 0
    last = torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=False)
    assert last["global_step"] == 5 and last["images_seen"] == 160


def test_resumed_run_continues_the_same_wandb_run(tmp_path, digits_shards, monkeypatch, request):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    root = tmp_path / "run"
    wandb.teardown()  # start from a fresh wandb service that sees this test's settings
    request.addfinalizer(wandb.teardown)
    assert fit(root, digits_shards, "--trainer.max_steps", "3", "--wandb_project", "lit-diffusion-test") == 0
    assert fit(root, digits_shards, "--trainer.max_steps", "6", "--wandb_project", "lit-diffusion-test",
               "--ckpt_path", "last") == 0
    runs = load_offline_runs(root)
    assert len(runs) == 1, f"expected one W&B run id, got {sorted(runs)}"
    run = next(iter(runs.values()))
    assert len(run.directories) == 2
    assert torch.load(root / "checkpoints/last.ckpt", weights_only=False)["wandb_run_id"] == run.run_id
    steps = [int(row["trainer/global_step"]) for row in run.history if "train/loss" in row]
    assert steps == list(range(6)), steps  # no step repeated or skipped across the resume
    assert [int(row["trainer/global_step"]) for row in run.history if "samples" in row] == [3, 6]  # preview grids
    assert run.config["lr"] == pytest.approx(1e-3) and run.config["max_images"] == 256


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, digits_shards):
    root = tmp_path / "nan"
    assert fit(root, digits_shards, "--trainer.max_steps", "2") == 0
    with pytest.raises(FloatingPointError, match=r"loss is (nan|inf) at step \d+"):
        fit(root, digits_shards, "--trainer.max_steps", "8", "--ckpt_path", "last", "--model.lr", "1e30",
            "--trainer.gradient_clip_val", "null")
    last = torch.load(root / "checkpoints/last.ckpt", weights_only=False)  # still readable
    assert 2 <= last["global_step"] < 8
    assert all(torch.isfinite(v).all() for k, v in last["state_dict"].items() if v.is_floating_point() and "ema" not in k)
