"""`lit-diffusion sample` under torchrun: each rank takes the indices rank, rank + world, ... on the device
distributed.process gives it, and the folder it writes equals the single-process one, image for image."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lit_diffusion.cli import main as cli_main

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_two_ranks_write_what_one_process_writes(tmp_path, digits_shards):
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "digits/unet.yaml"), "--data.train_shards", str(digits_shards),
                     "--data.batch_size", "16", "--data.num_workers", "0", "--model.max_images", "32",
                     "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.accelerator", "cpu",
                     "--preview_every_n_steps", "0"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    args = ["sample", "--ckpt", str(ckpt), "--nfe", "2", "--num", "5", "--batch-size", "2", "--device", "cpu"]
    assert cli_main([*args, "--out", str(tmp_path / "one")]) == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    # the arguments in a YAML: torchrun's own parser would take --num for an abbreviation of its --numa-binding
    (tmp_path / "args.yaml").write_text(f"ckpt: {ckpt}\nnfe: 2\nnum: 5\nbatch_size: 2\ndevice: cpu\n"
                                        f"out: {tmp_path / 'two'}\n")
    done = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
                           str(port), "-m", "lit_diffusion.cli", "sample", "-c", str(tmp_path / "args.yaml")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 1: 2/2 samples" in done.stderr and "rank 0: 3/3 samples" in done.stderr
    one, two = (np.load(tmp_path / name / "samples.npz") for name in ("one", "two"))
    assert np.array_equal(one["images"], two["images"]) and np.array_equal(one["labels"], two["labels"])
