"""Issue 30, the data faults, done through the real CLI in a child process: a rebuild that fails (a bad image, a
full disk, a file size limit, Ctrl-C, SIGTERM) keeps the old dataset byte for byte and leaves no temporary; reflow
does not replace a dataset without --overwrite; a read-only folder, a zip given as shards, a web page given as an
autoencoder: one line naming the file, the cause and the next step, never a traceback."""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def cli(*args, fsize: int | None = None, wait: bool = True):
    """`python -m lit_diffusion.cli ARGS` as a child; `fsize`: its file size limit in bytes (writes past it: EFBIG)."""
    def limit():
        # the child stands for a command typed at a terminal: Ctrl-C is not ignored there, even when the test run
        # itself was started in the background (a shell starts background jobs with SIGINT ignored, inherited)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    child = subprocess.Popen([sys.executable, "-m", "lit_diffusion.cli", *map(str, args)], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit)
    if not wait:
        return child
    out, err = child.communicate(timeout=600)
    return child.returncode, err


def the_line(err: str) -> str:
    """The command's one message line (INFO logs and library warnings aside); no traceback anywhere."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("lit-diffusion")]
    assert len(lines) == 1, err
    return lines[0]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder`, hidden ones included, with its sha256: equal snapshots, nothing lost or left."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def build(out: Path, *extra) -> tuple[int, str]:
    return cli("data", "build", "digits", "--out", out, "--no-progress", "--shard-size", "200", *extra)


@pytest.fixture(scope="module")
def old(tmp_path_factory) -> Path:
    """A dataset built once; each test copies it (the copy is the 'old dataset' a rebuild must not lose)."""
    folder = tmp_path_factory.mktemp("old") / "digits"
    assert build(folder)[0] == 0
    return folder


def copy_of(old: Path, where: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    for p in old.iterdir():
        (where / p.name).write_bytes(p.read_bytes())
    return where


@contextmanager
def tmpfs(folder: Path, options: str):
    """A small tmpfs at `folder` (a full disk, or `ro` a read-only one); skipped where mounting is not allowed."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (chmod does not stop root from writing)")
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_rebuild_with_a_bad_image_keeps_the_old_dataset(old, tmp_path):
    from PIL import Image

    images = tmp_path / "images"
    for c in "ab":
        (images / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(np.full((8, 8), 30 * i, np.uint8)).save(images / c / f"{i}.png")
    (images / "b/zz.png").write_bytes(b"not a png")
    ds = copy_of(old, tmp_path / "ds")
    before = snapshot(ds)
    status, err = cli("data", "build", "imagefolder", images, "--out", ds, "--overwrite", "--no-progress",
                      "--no-shuffle")
    assert status == 1
    line = the_line(err)
    assert str(images / "b/zz.png") in line and "cannot decode" in line and "--skip-bad" in line
    assert snapshot(ds) == before  # the old dataset, and no staging folder or .tmp left


def test_a_full_disk_during_a_rebuild_keeps_the_old_dataset(old, tmp_path):
    with tmpfs(tmp_path / "disk", "size=6m") as disk:  # the old 8x8 dataset (3.6 MB) fits, a 32x32 one beside it not
        ds = copy_of(old, disk / "ds")
        before = snapshot(ds)
        status, err = build(ds, "--resolution", "32", "--overwrite")
        assert status == 1
        line = the_line(err)
        assert "no space left on device writing " + str(ds / "shard-") in line
        assert "free space or choose another --out" in line and "as it was" in line
        assert snapshot(ds) == before
        assert cli("data", "verify", ds, "--no-progress")[0] == 0
        # a new dataset on the full disk: one line, and nothing left behind
        status, err = build(disk / "new")
        assert status == 1 and "no space left on device writing" in the_line(err)
        assert not (disk / "new").exists()


def test_a_file_size_limit_leaves_no_temporary_and_overwrite_removes_old_ones(old, tmp_path):
    ds = tmp_path / "ds"
    status, err = cli("data", "build", "digits", "--out", ds, "--no-progress", "--shard-size", "2000", fsize=500_000)
    assert status == 1
    line = the_line(err)
    assert f"file too large writing {ds / 'shard-000000.tar'}" in line and "ulimit -f" in line
    assert not ds.exists()  # no torn shard, no .tmp, no empty folder
    # temporaries of a writer killed with kill -9 (its pid no longer runs) go with the next --overwrite
    ds = copy_of(old, tmp_path / "ds2")
    dead = 2**22 + 12345  # above any pid_max: no such process
    (ds / f".shard-000003.tar.tmp{dead}").write_bytes(b"x" * 1000)
    (ds / f".incoming-{dead}").mkdir()
    (ds / f".incoming-{dead}/shard-000000.tar").write_bytes(b"x")
    assert build(ds, "--overwrite")[0] == 0
    rebuilt, first = snapshot(ds), snapshot(old)
    assert rebuilt.keys() == first.keys()  # no temporaries left
    assert {k: v for k, v in rebuilt.items() if k.endswith(".tar")} == {k: v for k, v in first.items() if k.endswith(".tar")}


@pytest.mark.parametrize("sig, status, name", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_stopped_rebuild_keeps_the_old_dataset(old, tmp_path, sig, status, name):
    ds = copy_of(old, tmp_path / "ds")
    before = snapshot(ds)
    child = cli("data", "build", "digits", "--out", ds, "--no-progress", "--shard-size", "200", "--resolution", "256",
                "--overwrite", wait=False)
    deadline = time.monotonic() + 120
    while not list(ds.glob(".incoming-*/shard-000000.tar")):  # stopped mid-way: one new shard written
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[1]
        time.sleep(0.02)
    child.send_signal(sig)
    _, err = child.communicate(timeout=120)
    assert child.returncode == status
    line = the_line(err)
    assert f"stopped by {name}" in line and f"the dataset in {ds} is as it was" in line
    assert "run the same command again" in line
    assert snapshot(ds) == before


def test_a_read_only_folder_is_one_line(tmp_path):
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        status, err = build(ro / "ds")
        assert status == 1
        assert the_line(err).endswith(f"read-only file system writing {ro / 'ds'}: choose a writable --out")


def test_reflow_does_not_replace_a_dataset_without_overwrite(old, tmp_path):
    ds = copy_of(old, tmp_path / "training-shards")
    before = snapshot(ds)
    # refused before the checkpoint is even opened (it does not exist): no minutes of sampling first
    status, err = cli("reflow", "--ckpt", tmp_path / "rf.ckpt", "--num", "8", "--out", ds)
    assert status == 2
    line = the_line(err)
    assert f"{ds} already holds a dataset" in line and "--overwrite" in line
    assert snapshot(ds) == before


def test_the_wrong_kind_of_file_is_named(tmp_path, digits_shards):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello" * 200)
    status, err = cli("data", "info", archive)
    assert status == 1
    line = the_line(err)
    assert f"{archive}: this is a zip archive, not a tar shard" in line and "data build" in line
    assert "base 8" not in line
    page = tmp_path / "vae.ckpt"  # a download that saved the login page
    page.write_text("<!DOCTYPE html>\n<html><head><title>Sign in</title></head></html>\n")
    status, err = cli("data", "encode", digits_shards, "--autoencoder", page, "--out", tmp_path / "latents")
    assert status == 1
    line = the_line(err)
    assert f"{page} is an HTML page" in line and "expected a checkpoint of the framework's autoencoder" in line
    assert not (tmp_path / "latents").exists()


def _tiny_vae(folder: Path) -> Path:
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), layers_per_block=1,
                  latent_channels=2, norm_num_groups=8, sample_size=16).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_a_stopped_or_failed_encode_keeps_its_finished_shards(digits_shards, tmp_path):
    pytest.importorskip("diffusers")
    vae = _tiny_vae(tmp_path / "vae")
    out = tmp_path / "latents"
    command = ["data", "encode", digits_shards, "--autoencoder", vae, "--out", out, "--no-progress",
               "--shard-size", "100"]
    child = cli(*command, wait=False)
    deadline = time.monotonic() + 300
    while not (out / "shard-000001.tar").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()[1]
        time.sleep(0.02)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    line = the_line(err)
    assert "stopped by Ctrl-C" in line and f"of 18 shard(s) are done and kept in {out}" in line
    assert "run the same command again" in line
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    kept = {p.name: p.read_bytes() for p in out.glob("shard-*.tar")}
    assert len(kept) >= 2
    assert cli(*command)[0] == 0  # continues: the kept shards are not encoded again
    assert all((out / name).read_bytes() == data for name, data in kept.items())
    assert cli("data", "verify", out, "--no-progress")[0] == 0
    # a file size limit below one shard: one line, and no torn shard or .tmp
    status, err = cli(*command[:-5], "--out", tmp_path / "small", "--no-progress", "--shard-size", "100",
                      fsize=20_000)
    assert status == 1
    assert f"file too large writing {tmp_path / 'small/shard-000000.tar'}" in the_line(err)
    assert not list((tmp_path / "small").glob("*.tar")) and not list((tmp_path / "small").glob(".*tmp*"))


@pytest.mark.slow
def test_sample_into_a_read_only_or_full_folder_is_one_line(digits_shards, tmp_path):
    experiments = REPO / "experiments"
    status, err = cli("fit", "-c", experiments / "digits/dit.yaml", "-c", experiments / "objectives/rectified_flow.yaml",
                      "--data.train_shards", digits_shards, "--data.batch_size", "16", "--data.num_workers", "0",
                      "--model.max_images", "16", "--trainer.default_root_dir", tmp_path / "rf",
                      "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0")
    assert status == 0, err[-3000:]
    ckpt = tmp_path / "rf/checkpoints/last.ckpt"
    sample = ["sample", "--ckpt", ckpt, "--sampler", "euler", "--nfe", "1", "--device", "cpu"]
    with tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        status, err = cli(*sample, "--num", "2", "--out", ro / "s")
        assert status == 2
        assert the_line(err).endswith(f"read-only file system writing {ro / 's'}: choose a writable --out")
    with tmpfs(tmp_path / "full", "size=12k") as full:
        status, err = cli(*sample, "--num", "64", "--out", full / "s")
        assert status == 2
        line = the_line(err)
        assert f"no space left on device writing {full / 's'}/" in line and "free space" in line
        from PIL import Image

        for png in (full / "s").glob("*.png"):  # what was written is whole: the torn file went
            Image.open(png).load()
