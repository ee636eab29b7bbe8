"""Multi-stage recipes end to end at tiny size through the real CLI: reflow (pairs from a rectified
flow, then the 2-rectified flow trained on them from its parent's weights), sample previews, and the
fallback to an older checkpoint when the newest is unreadable."""
import logging
from pathlib import Path

import torch

from lit_diffusion.cli import main as cli_main
from lit_diffusion.data.dataset_json import read_dataset_json

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def fit(root, shards, objective, *extra):
    return cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.num_workers", "0",
                     "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu", *extra])


def test_reflow_recipe_end_to_end(tmp_path, digits_shards):
    assert fit(tmp_path / "rf1", digits_shards, "rectified_flow", "--model.max_images", "64",
               "--preview_every_n_steps", "2") == 0
    parent = tmp_path / "rf1/checkpoints/last.ckpt"
    previews = sorted((tmp_path / "rf1/previews").glob("step_*.png"))
    assert [p.name for p in previews] == ["step_0000002.png", "step_0000004.png"]
    assert cli_main(["reflow", "--ckpt", str(parent), "--num", "48", "--out", str(tmp_path / "pairs"),
                     "--sampler", "euler", "--nfe", "4", "--device", "cpu"]) == 0
    info = read_dataset_json(tmp_path / "pairs")
    assert info.num_samples == 48
    assert fit(tmp_path / "rf2", tmp_path / "pairs", "rectified_flow", "--model.max_images", "32",
               "--model.init_from", str(parent)) == 0
    child = torch.load(tmp_path / "rf2/checkpoints/last.ckpt", weights_only=False)
    assert child["global_step"] == 2 and child["images_seen"] == 32
    parent_state = torch.load(parent, weights_only=False)["state_dict"]
    # started from the parent: 2 steps at lr 1e-3 move the weights only a little
    key = "backbone.final_layer.linear.weight"
    assert (child["state_dict"][key] - parent_state[key]).abs().max() < 0.05
    assert not torch.equal(child["state_dict"][key], parent_state[key])


def test_resume_falls_back_past_an_unreadable_newest_checkpoint(tmp_path, digits_shards, caplog):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "flow_matching", "--model.max_images", "64", "--checkpoint_every_n_steps", "2",
               "--keep_checkpoints", "-1") == 0
    last = root / "checkpoints/last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # a torn write of the newest file
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO
        assert fit(root, digits_shards, "flow_matching", "--model.max_images", "96", "--checkpoint_every_n_steps", "2",
                   "--keep_checkpoints", "-1", "--ckpt_path", "last") == 0
    assert any("unreadable" in r.getMessage() and "last.ckpt" in r.getMessage() for r in caplog.records)
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resuming from")]
    assert resumed and "step=4" in resumed[0], resumed
    assert torch.load(last, weights_only=False)["global_step"] == 6
