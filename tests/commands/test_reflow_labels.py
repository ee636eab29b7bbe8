"""reflow from a class-conditional model samples the trained classes (i mod classes, as `sample`), never the
null class it did not train (label dropout 0), and the pair shards keep those labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_diffusion.cli import main as cli_main
from lit_diffusion.data.dataset_json import read_dataset_json
from lit_diffusion.data.shardio import read_shard

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_reflow_of_a_conditional_model_cycles_the_classes(tmp_path):
    shards = tmp_path / "digits16"
    assert cli_main(["data", "build", "digits", "--out", str(shards), "--resolution", "16", "--no-progress"]) == 0
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/rectified_flow.yaml"),
                     "--data.train_shards", str(shards), "--data.batch_size", "16", "--data.num_workers", "0",
                     "--model.max_images", "32", "--trainer.default_root_dir", str(tmp_path / "rf1"),
                     "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0"]) == 0
    out = tmp_path / "pairs"
    assert cli_main(["reflow", "--ckpt", str(tmp_path / "rf1/checkpoints/last.ckpt"), "--num", "24", "--out", str(out),
                     "--sampler", "euler", "--nfe", "2", "--device", "cpu"]) == 0
    info = read_dataset_json(out)
    assert info.kind == "pair" and info.num_classes == 10
    labels = {raw.key: int(raw.members["cls"]) for s in info.shards for raw in read_shard(str(out / s.name))}
    assert sorted(labels.values()) == sorted(np.arange(24) % 10)
