"""A suite entry tuned from another entry's checkpoint (ECT from the suite's flow-matching run): it starts from
that checkpoint's weights, trains only the rest of the budget, and its records and curve count both stages."""
import json

import pytest
import torch

from lit_diffusion.compare.runner import run_suite
from lit_diffusion.compare.suite import SuiteError
from lit_diffusion.compare.train import fit_config
from lit_diffusion.runs import read_record
from test_compare_end_to_end import EXPERIMENTS, FM, write_suite

ECT = {"name": "ect", "config": str(EXPERIMENTS / "objectives/consistency_tuning.yaml"),
       "samplers": {"consistency": [1, 2]}, "tune_from": {"objective": "flow_matching", "images": 128}}


@pytest.mark.slow
def test_tuned_entry_starts_from_the_checkpoint_and_counts_both_stages(tmp_path):
    suite = write_suite(tmp_path, [FM, ECT])  # 192 images = 6 steps of 32; FM keeps checkpoints at steps 2, 4, 6
    logs = []
    report = run_suite(suite, log=logs.append)
    fm_run, ect_run = suite.run("flow_matching", 0), suite.run("ect", 0)
    start = next(i.path for i in map(read_record, fm_run.checkpoints.glob("*.ckpt")) if i.global_step == 4)
    config = json.loads(json.dumps(fit_config(suite, suite.objectives[1], 0)))
    assert config["model"]["init_from"] == str(start) and config["model"]["max_images"] == 64
    assert any("[ect seed 0] training from flow_matching's checkpoint at 128 images" in line for line in logs)
    ect_last = torch.load(ect_run.last_checkpoint, weights_only=False)
    assert ect_last["images_seen"] == 64 and ect_last["global_step"] == 2
    # the training child was started from that checkpoint (its saved hyper-parameters say so)
    assert ect_last["hyper_parameters"]["init_from"] == str(start)
    # both stages in its record: images, steps, FLOPs at each stage's own measured cost
    costs = json.loads((tmp_path / "out/compute.json").read_text())
    per_image = {k: v["flops_per_step"] / v["batch_size"] for k, v in costs.items()}
    record = json.loads(ect_run.train_record.read_text())
    assert (record["images_seen"], record["pretraining_images"], record["steps"]) == (192, 128, 6)
    assert record["flops"] == pytest.approx(per_image["ect"] * 64 + per_image["flow_matching"] * 128)
    assert per_image["ect"] > per_image["flow_matching"]  # a consistency step is two forward passes
    curve = [p for p in json.loads((tmp_path / "out/quality_vs_compute.json").read_text()) if p["objective"] == "ect"]
    assert curve[-1]["images_seen"] == 192 and curve[-1]["flops"] == pytest.approx(record["flops"])
    assert all(p["images_seen"] > 128 for p in curve)
    text = report.read_text()
    assert "| 192 (128 in flow_matching's run + 64 tuning) |" in text and "A tuned run (`tune_from`)" in text
    assert "| ect | consistency | 1 |" in text
    # run again: both finished, nothing trains
    logs.clear()
    run_suite(suite, log=logs.append)
    assert any("[ect seed 0] finished earlier: not trained again" in line for line in logs)


def test_a_tuning_start_that_no_checkpoint_fits_is_named(tmp_path):
    suite = write_suite(tmp_path, [FM, dict(ECT, tune_from={"objective": "flow_matching", "images": 40})])
    checkpoints = suite.run("flow_matching", 0).checkpoints
    checkpoints.mkdir(parents=True)
    with pytest.raises(SuiteError, match=r"has no checkpoint with at most tune_from.images = 40 images .* set "
                                         r"tune_from.images to one of those"):
        fit_config(suite, suite.objectives[1], 0)
