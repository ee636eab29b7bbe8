"""`lit-diffusion compare` end to end at tiny size: trains, evaluates on one noise bank, writes the
report with its plots; a suite stopped in the middle and started again trains only unfinished runs."""
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from lit_diffusion.cli import main as cli_main
from lit_diffusion.compare.runner import run_suite
from lit_diffusion.compare.suite import load_suite

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def write_suite(tmp_path, objectives):
    suite = {
        "name": "tiny", "out": str(tmp_path / "out"), "shards": str(tmp_path / "digits16"),
        "build": ["digits", "--resolution", "16", "--workers", "0"],
        "base_config": str(EXPERIMENTS / "digits/dit.yaml"),
        "overrides": ["--data.num_workers", "0", "--data.batch_size", "32", "--trainer.accelerator", "cpu",
                      "--trainer.log_every_n_steps", "2"],
        "budget": {"max_images": 192}, "seeds": [0],
        "objectives": objectives, "evaluation": {"num_samples": 64, "batch_size": 32, "curve_samples": 32, "bootstrap": 50},
    }
    path = tmp_path / f"suite-{len(objectives)}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return load_suite(path)


FM = {"name": "flow_matching", "config": str(EXPERIMENTS / "objectives/flow_matching.yaml"),
      "samplers": {"euler": [1, 4], "heun:uniform": [3]}}
CT = {"name": "consistency_training", "config": str(EXPERIMENTS / "objectives/consistency_training.yaml"),
      "samplers": {"consistency": [1, 2]}}


@pytest.mark.slow
def test_compare_trains_evaluates_reports_and_resumes(tmp_path):
    logs = []
    report = run_suite(write_suite(tmp_path, [FM]), log=logs.append)
    fm_ckpt = tmp_path / "out/runs/flow_matching-seed0/checkpoints/last.ckpt"
    fm_mtime = fm_ckpt.stat().st_mtime_ns
    # the second objective is "stopped in the middle": 2 of its 6 steps done, a checkpoint on disk
    suite = write_suite(tmp_path, [FM, CT])
    ct_dir = suite.run_dir("consistency_training", 0)
    assert cli_main(["fit", "-c", suite.base_config, "-c", CT["config"], "--data.train_shards", suite.shards,
                     "--trainer.default_root_dir", str(ct_dir), "--model.max_images", "192", "--trainer.max_steps", "2",
                     "--seed_everything", "0", "--model.seed", "0", "--preview_every_n_steps", "0", *suite.overrides]) == 0
    logs.clear()
    report = run_suite(suite, log=logs.append)
    assert any("flow_matching seed 0] finished earlier: not trained again" in line for line in logs)
    assert any("consistency_training seed 0] training (resuming)" in line for line in logs)
    assert fm_ckpt.stat().st_mtime_ns == fm_mtime
    assert torch.load(ct_dir / "checkpoints/last.ckpt", weights_only=False)["images_seen"] == 192
    text = report.read_text()
    for row in ("| flow_matching | euler | 1 |", "| flow_matching | euler | 4 |", "| flow_matching | heun:uniform | 2 |",  # 3 asked, the first step from pure noise is Euler
                "| consistency_training | consistency | 2 |"):
        assert row in text
    # each objective's untrained baseline is scored at its best sampler@NFE on the same noise bank
    evaluated = json.loads((tmp_path / "out/runs/flow_matching-seed0/eval.json").read_text())
    best = min((k for k in evaluated if not k.startswith("untrained/")), key=lambda k: evaluated[k]["fd"])
    untrained = evaluated[f"untrained/{best}"]
    assert untrained["fd"] != evaluated[best]["fd"]  # 6 training steps: not necessarily better yet
    assert f"{untrained['fd']:.3f} ({best.split('/')[0]})" in text
    for png in ("quality_vs_nfe.png", "loss_vs_images.png", "throughput.png", "samples_flow_matching.png",
                "fd_vs_flops.png", "fd_vs_time.png"):
        assert (report.parent / png).stat().st_size > 1000, png
    # every score carries its protocol card and its bootstrap interval around the FD on all samples
    card = evaluated[best]["protocol"]
    sampler, nfe = best.split("/")[0].split("@")
    assert (card["sampler"], card["nfe"], card["num_generated"]) == (sampler.split(":")[0], int(nfe), 64)
    assert card["reference_count"] > 0 and len(card["weights_sha256"]) == 64
    assert card["command"].startswith("lit-diffusion compare -c ") and card["ema"].startswith("power-function EMA")
    assert evaluated[best]["fd_low"] <= evaluated[best]["fd"] <= evaluated[best]["fd_high"]
    assert "| protocol | value |" in text and f"| reference_count | {card['reference_count']} |" in text
    # compute: FLOPs per image measured per objective, times images seen, in the report with wall time
    costs = json.loads((tmp_path / "out/compute.json").read_text())
    assert costs["consistency_training"]["flops_per_step"] > costs["flow_matching"]["flops_per_step"] > 0
    record = json.loads((tmp_path / "out/runs/flow_matching-seed0/train.json").read_text())
    per_image = costs["flow_matching"]["flops_per_step"] / costs["flow_matching"]["batch_size"]
    assert record["flops"] == pytest.approx(per_image * 192) and record["steps"] == 6
    assert f"| flow_matching | {per_image / 1e6:.2f} MFLOP |" in text
    # quality vs compute: 3 checkpoints of each run, the last at the run's end, from the cheaper sample count
    curve = json.loads((tmp_path / "out/quality_vs_compute.json").read_text())
    fm = [p for p in curve if p["objective"] == "flow_matching"]
    assert [p["step"] for p in fm] == [2, 4, 6] and fm[-1]["flops"] == pytest.approx(record["flops"])
    assert all(p["num_samples"] == 32 and p["setting"] == "euler@4" for p in fm)
    assert "from **32 samples** per point" in text


@pytest.mark.slow
def test_wall_clock_budget_stops_runs_and_counts_them_finished(tmp_path):
    suite = write_suite(tmp_path, [FM])
    suite = replace(suite, budget=replace(suite.budget, max_images=10**9, max_time="00:00:00:04"))
    logs = []
    run_suite(suite, log=logs.append)
    trained = json.loads((suite.run_dir("flow_matching", 0) / "train.json").read_text())
    assert 4.0 <= trained["seconds"] < 60 and 0 < trained["images_seen"] < 10**9
    logs.clear()
    run_suite(suite, log=logs.append)
    assert any("flow_matching seed 0] finished earlier: not trained again" in line for line in logs)
