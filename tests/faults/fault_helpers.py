"""One tiny training through the real CLI (in this process, or as a child process to signal), and the
comparisons the fault tests make: bitwise-equal weights, EMA and optimiser; each CSV step exactly once."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path


import torch
from lightning.pytorch import Callback

from lit_diffusion.cli import main as cli_main

REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"



def fit_args(root, shards, *extra, workers: int = 0) -> list[str]:
    # 6 steps per epoch (192 samples / 32): most stops fall in the middle of an epoch
    return ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
            "--data.num_workers", str(workers), "--data.train_shards", str(shards), "--data.batch_size", "32",
            "--data.samples_per_epoch", "192", "--model.max_images", "100000", "--trainer.default_root_dir", str(root),
            "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "100", "--trainer.accelerator", "cpu",
            "--preview_every_n_steps", "0", *extra]


def fit(root, shards, *extra, workers: int = 0) -> int:
    return cli_main(fit_args(root, shards, *extra, workers=workers))


def start_fit(root, shards, *extra, workers: int = 0, new_group: bool = False) -> subprocess.Popen:
    """The same command as a child process (to be signalled); its output goes to ROOT.log."""
    Path(root).mkdir(parents=True, exist_ok=True)
    out = open(Path(str(root) + ".log"), "ab")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "lit_diffusion.cli", *fit_args(root, shards, *extra, workers=workers)],
                            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=new_group)


def wait_for_checkpoint(root, step: int, child: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until a numbered checkpoint at `step` exists (the run is then mid-way, past its start-up)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(Path(root, "checkpoints").glob(f"*step={step}.ckpt")):
            return
        if child.poll() is not None:
            raise AssertionError(f"the training ended ({child.returncode}) before step {step}: "
                                 + Path(str(root) + ".log").read_text(errors="replace")[-3000:])
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint at step {step} after {timeout} s")


def signal_and_wait(child: subprocess.Popen, sig: int, group: bool = False) -> int:
    (os.killpg if group else os.kill)(child.pid, sig)
    return child.wait(timeout=300)


def load_last(root) -> dict:
    return torch.load(Path(root, "checkpoints/last.ckpt"), weights_only=False, map_location="cpu")


def assert_same_training_state(a: dict, b: dict) -> None:
    """Weights and EMA (the state dict), the optimiser moments and the noise generator, bitwise."""
    assert a["global_step"] == b["global_step"] and a["images_seen"] == b["images_seen"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    opt_a, opt_b = a["optimizer_states"][0]["state"], b["optimizer_states"][0]["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:
        for name in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(opt_a[i][name], opt_b[i][name]), (i, name)
    assert torch.equal(a["noise_generator"], b["noise_generator"])


def tensor_record_offset(path: Path) -> tuple[int, int]:
    """(file offset, size) of the largest tensor record inside a torch zip checkpoint."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = Path(path).read_bytes()
    name_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    return info.header_offset + 30 + name_len + extra_len, info.file_size


def overwrite(path: Path, offset: int, garbage: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(garbage)


def csv_steps(root) -> list[int]:
    """The step of every training row over all CSV logs of the run, in file order."""
    steps = []
    for path in sorted(Path(root, "csv").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name[8:])):
        with open(path) as f:
            steps += [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    return steps


def checkpoint_files(root) -> list[str]:
    return sorted(p.name for p in Path(root, "checkpoints").iterdir())


SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGUSR1": signal.SIGUSR1}


class SlowSteps(Callback):
    """Sleeps after each step: a wall-clock limit then stops mid-run however fast the machine (the numbers a
    step computes do not depend on time, so the run's trajectory is unchanged)."""

    def __init__(self, seconds: float = 0.25):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
