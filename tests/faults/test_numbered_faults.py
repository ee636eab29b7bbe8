"""Issue 16: one test per reproduced fault (1, 5 and 6 over every stop cause are in test_stop_causes.py)."""
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from fault_helpers import REPO, checkpoint_files, csv_steps, fit, load_last, overwrite, tensor_record_offset
from lit_diffusion.runs import find_resume_checkpoint, read_record, readable
from lit_diffusion.training.checkpointing import AtomicCheckpointIO

SIX = ("--trainer.max_steps", "6", "--checkpoint_every_n_steps", "2", "--keep_checkpoints", "-1")


def messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


def test_fault1_fit_end_writes_one_last_checkpoint_that_continues_the_epoch(tmp_path, digits_shards):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "4") == 0  # mid-epoch (6 steps per epoch), no save step
    last = load_last(root)
    assert last["global_step"] == 4 and last["epoch"] == 0, "the epoch is not marked done at a mid-epoch stop"
    assert last["lit_diffusion_run"]["fit_finished"] and checkpoint_files(root).count("last-v1.ckpt") == 0


def test_fault2_rerunning_a_finished_run_trains_nothing_and_says_so(tmp_path, digits_shards, caplog):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--model.max_images", "160") == 0  # 5 steps
    before = {p.name: p.stat().st_mtime_ns for p in (root / "checkpoints").iterdir()}
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO
        for _ in range(2):
            assert fit(root, digits_shards, "--model.max_images", "160", "--ckpt_path", "last") == 0
    assert {p.name: p.stat().st_mtime_ns for p in (root / "checkpoints").iterdir()} == before
    assert load_last(root)["images_seen"] == 160 and csv_steps(root) == list(range(5))
    assert "already finished" in messages(caplog) and "nothing to train" in messages(caplog)


def test_fault3_resume_picks_the_highest_step_not_the_newest_file(tmp_path, digits_shards):
    root = tmp_path / "run"
    assert fit(root, digits_shards, *SIX) == 0
    older = root / "checkpoints" / "epoch=0-step=2.ckpt"
    future = time.time() + 3600
    os.utime(older, (future, future))  # as after `cp -r` in an unlucky order: the oldest state is the newest file
    assert read_record(find_resume_checkpoint(root / "checkpoints")).global_step == 6
    moved = tmp_path / "moved"
    shutil.move(root, moved)  # ModelCheckpoint's stored dirpath no longer matches: it used to write last-v1.ckpt
    assert fit(moved, digits_shards, *SIX[2:], "--trainer.max_steps", "8", "--ckpt_path", "last") == 0
    assert "last-v1.ckpt" not in checkpoint_files(moved) and load_last(moved)["global_step"] == 8


def test_fault4_garbage_inside_a_valid_zip_is_detected_and_skipped(tmp_path, digits_shards, caplog):
    root = tmp_path / "run"
    assert fit(root, digits_shards, *SIX) == 0
    last = root / "checkpoints/last.ckpt"
    offset, size = tensor_record_offset(last)
    overwrite(last, offset + size // 2, b"\x7f" * 64)  # 64 bytes inside one tensor: a weight of 3.4e38
    torch.load(last, weights_only=False)  # torch itself loads it without a word
    assert not readable(last)
    step6 = root / "checkpoints/epoch=0-step=6.ckpt"
    overwrite(step6, 4096, os.urandom(65536))  # 64 KiB over the records: torch fails reading the data
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO
        assert fit(root, digits_shards, *SIX[2:], "--trainer.max_steps", "8", "--ckpt_path", "last") == 0
    assert "resuming from" in messages(caplog) and "step=4.ckpt" in messages(caplog)
    assert "last.ckpt is unreadable" in messages(caplog) and "corrupt" in messages(caplog)
    resumed = load_last(root)
    assert resumed["global_step"] == 8
    assert all(torch.isfinite(v).all() for v in resumed["state_dict"].values() if v.is_floating_point())


def test_fault4_with_every_checkpoint_corrupt_an_explicit_resume_fails_clearly(tmp_path, digits_shards, caplog):
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "2") == 0
    for path in (root / "checkpoints").iterdir():
        offset, size = tensor_record_offset(path)
        overwrite(path, offset, b"\x7f" * 64)
    versions = len(list((root / "csv").iterdir()))
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO
        assert fit(root, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", "last") != 0
    assert "is readable" in messages(caplog) and "not starting from scratch" in messages(caplog)
    assert len(list((root / "csv").iterdir())) == versions, "nothing was trained"
    # a corrupt file named explicitly is refused too, by the load itself
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO
        assert fit(root, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", str(root / "checkpoints/last.ckpt")) != 0
    assert "does not match the sha256" in messages(caplog)


def test_fault6_csv_row_of_a_checkpoint_step_is_on_disk_before_the_checkpoint(tmp_path, digits_shards, monkeypatch):
    root = tmp_path / "run"
    seen = []
    save = AtomicCheckpointIO.save_checkpoint

    def spy(self, checkpoint, path, storage_options=None):
        seen.append((checkpoint["global_step"], csv_steps(root)[-1:]))  # what a kill -9 during this write leaves
        return save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", spy)
    assert fit(root, digits_shards, "--trainer.max_steps", "5", "--checkpoint_every_n_steps", "2") == 0
    assert seen and all(rows == [step - 1] for step, rows in seen), seen  # the row of step k-1 (0-based): k's


def test_fault7_a_second_fit_into_a_busy_run_folder_is_refused_naming_the_holder(tmp_path, digits_shards, caplog):
    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom lit_diffusion.training.run_lock import "
                               "RunLock\nRunLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(120)",
                               str(root)], stdout=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == b"locked"
        with caplog.at_level(logging.ERROR, logger="lit_diffusion.training"):
            assert fit(root, digits_shards, "--trainer.max_steps", "2") != 0
        assert f"in use by process {holder.pid}" in messages(caplog)
        assert not (root / "checkpoints").exists()
    finally:
        holder.kill()
        holder.wait()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="lit_diffusion.training"):  # "resuming from" is INFO  # the holder died: its lock is stale
        assert fit(root, digits_shards, "--trainer.max_steps", "2") == 0
    assert f"taking over the lock of process {holder.pid}" in messages(caplog)


def test_fault9_disk_full_leaves_no_tmp_and_names_the_path(tmp_path, monkeypatch):
    def full_disk(obj, f, *args, **kwargs):
        f.write(b"\0" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    path = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(OSError, match="last.ckpt") as error:
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, path)
    assert error.value.errno == errno.ENOSPC and str(path) in str(error.value)
    assert list(tmp_path.rglob("*.tmp")) == [] and not path.exists()


def test_fault9_file_size_limit_through_the_cli(tmp_path, digits_shards):
    """A real failed write (`ulimit -f`: EFBIG at the first checkpoint) through the real CLI."""
    root = tmp_path / "run"
    from fault_helpers import fit_args

    command = " ".join([sys.executable, "-m", "lit_diffusion.cli", *fit_args(root, digits_shards, "--trainer.max_steps", "2")])
    result = subprocess.run(["bash", "-c", f"ulimit -f 512; exec {command}"], capture_output=True, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
    assert result.returncode != 0
    assert "writing checkpoint" in result.stderr and str(root / "checkpoints") in result.stderr, result.stderr[-2000:]
    assert list(root.rglob("*.tmp")) == []
