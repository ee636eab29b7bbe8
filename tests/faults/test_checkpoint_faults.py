"""Checkpoint faults of issue 30, each done through the real CLI in a child process: checkpoints written every N
steps whatever the log interval (kill -9 mid-run), a fresh fit into another run's folder, torn / random / HTML
files as checkpoints, a resume with another backbone or other post-hoc EMA widths, the wrong kind of checkpoint,
a parse error, and an lr changed on resume. Each checks that nothing was lost and that the message is one line
naming the file, the cause and the next step."""
import hashlib
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fault_helpers import EXPERIMENTS, REPO, fit, fit_args, start_fit, wait_for_checkpoint
from lit_diffusion.cli import main as cli_main
from lit_diffusion.runs import find_resume_checkpoint, open_checkpoint

POSTHOC = "lit_diffusion.training.posthoc_ema.PostHocEMASnapshots"


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=600)


def fit_cli(root, shards, *extra) -> subprocess.CompletedProcess:
    return cli(*fit_args(root, shards, *extra))


def error_lines(run: subprocess.CompletedProcess) -> list[str]:
    """The lines that report the failure (the logged ERROR, or the command's `error:` line)."""
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output[-3000:]
    return [line for line in output.splitlines() if line.startswith("ERROR") or ": error: " in line]


def one_error(run: subprocess.CompletedProcess, status: int) -> str:
    lines = error_lines(run)
    assert run.returncode == status and len(lines) == 1, (run.returncode, (run.stdout + run.stderr)[-3000:])
    return lines[0]


def fingerprint(folder: Path) -> dict:
    """Name -> sha256 of every file under `folder`: what must be untouched after a refusal."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_loadable(checkpoints: Path) -> None:
    for path in checkpoints.glob("*.ckpt"):
        open_checkpoint(path).verify()


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, digits_shards) -> Path:
    """A finished 2-step run (last.ckpt at step 2); tests copy it before touching it."""
    root = tmp_path_factory.mktemp("base") / "run"
    assert fit(root, digits_shards, "--trainer.max_steps", "2") == 0
    return root


@pytest.fixture
def old_run(base_run, tmp_path) -> Path:
    root = tmp_path / "old"
    shutil.copytree(base_run, root)
    return root


@pytest.mark.slow
def test_every_n_steps_writes_checkpoints_whatever_the_log_interval(tmp_path, digits_shards):
    root = tmp_path / "run"
    child = start_fit(root, digits_shards, "--checkpoint_every_n_steps", "2", "--trainer.log_every_n_steps", "50",
                      "--keep_checkpoints", "-1", "--trainer.max_steps", "200")
    try:
        wait_for_checkpoint(root, 6, child)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    names = {p.name for p in (root / "checkpoints").glob("*.ckpt")}
    assert {"epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt", "epoch=0-step=6.ckpt"} <= names, names
    assert_loadable(root / "checkpoints")
    # last.ckpt is written right after the numbered one: the kill may fall between, never before both
    assert open_checkpoint(root / "checkpoints/last.ckpt").record.global_step >= 4
    resume = find_resume_checkpoint(root / "checkpoints")
    assert open_checkpoint(resume).record.global_step >= 6  # not lost to the kill -9 before the first log step


@pytest.mark.slow
def test_every_n_steps_keeps_the_best_and_the_last(tmp_path, digits_shards):
    """keep_checkpoints 2 with a log interval longer than the run: two numbered checkpoints, ranked by the loss
    of the steps since the last log, and last.ckpt."""
    root = tmp_path / "run"
    assert fit(root, digits_shards, "--checkpoint_every_n_steps", "2", "--trainer.log_every_n_steps", "50",
               "--trainer.max_steps", "8") == 0
    names = sorted(p.name for p in (root / "checkpoints").glob("*.ckpt"))
    assert len(names) == 3 and "last.ckpt" in names, names
    assert open_checkpoint(root / "checkpoints/last.ckpt").record.global_step == 8


def test_fresh_fit_into_another_runs_folder_is_refused(old_run, digits_shards):
    before = fingerprint(old_run / "checkpoints")
    run = fit_cli(old_run, digits_shards, "--trainer.max_steps", "4")
    line = one_error(run, 2)
    assert str(old_run) in line and "--ckpt_path last" in line and "--trainer.default_root_dir" in line, line
    assert fingerprint(old_run / "checkpoints") == before  # the old run is untouched
    assert_loadable(old_run / "checkpoints")


def _files(tmp_path: Path, last: Path) -> dict[str, Path]:
    """Random bytes, a torn checkpoint, and a plain pickle that runs code when unpickled without weights_only."""
    random = tmp_path / "random.ckpt"
    random.write_bytes(os.urandom(20_000))
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(last.read_bytes()[:30_000])
    trap = tmp_path / "trap.ckpt"
    trap.write_bytes(pickle.dumps(_Trap(str(tmp_path / "UNPICKLED"))))
    return {"random": random, "torn": torn, "trap": trap}


class _Trap:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_file_that_is_no_checkpoint_is_refused_in_one_line(tmp_path, old_run, digits_shards):
    files = _files(tmp_path, old_run / "checkpoints/last.ckpt")
    before = fingerprint(old_run / "checkpoints")
    for option, kind in (("--ckpt_path", "random"), ("--ckpt_path", "torn"), ("--model.init_from", "trap")):
        path = files[kind]
        run = fit_cli(tmp_path / f"new-{kind}", digits_shards, "--trainer.max_steps", "2", option, str(path))
        line = one_error(run, 2)
        assert f"{path} is not a readable checkpoint: " in line and "lit-diffusion fit" in line, line
        assert "weights_only" not in run.stdout + run.stderr
        assert not (tmp_path / f"new-{kind}" / "checkpoints").exists()
    assert not (tmp_path / "UNPICKLED").exists(), "the refused file was unpickled"
    assert fingerprint(old_run / "checkpoints") == before


def test_resume_with_another_backbone_is_one_line(old_run, digits_shards):
    before = fingerprint(old_run / "checkpoints")
    run = fit_cli(old_run, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", "last",
                  "--model.backbone.init_args.hidden_size", "32")
    line = one_error(run, 2)
    last = old_run / "checkpoints" / "last.ckpt"
    assert f"--ckpt_path {last} holds another network" in line and "(64,) vs (32,)" in line \
        and "resume with the model config it was trained with" in line, line
    assert "size mismatch" not in run.stdout + run.stderr
    assert fingerprint(old_run / "checkpoints") == before


def test_an_autoencoder_where_a_diffusion_model_goes(tmp_path, digits_shards):
    ae = tmp_path / "ae"
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "autoencoder/mnist.yaml"), "--data.train_shards", str(digits_shards),
                     "--data.num_workers", "0", "--data.batch_size", "16", "--trainer.max_steps", "1",
                     "--trainer.default_root_dir", str(ae), "--trainer.accelerator", "cpu",
                     "--model.init_args.autoencoder.init_args.channels", "[8, 8]"]) == 0
    ae_ckpt = ae / "checkpoints" / "last.ckpt"
    before = fingerprint(ae / "checkpoints")
    expected = f"{ae_ckpt} is an autoencoder checkpoint, expected a diffusion model checkpoint"
    line = one_error(cli("sample", "--ckpt", str(ae_ckpt), "--out", str(tmp_path / "s"), "--num", "2"), 2)
    assert expected in line and "data encode --autoencoder" in line, line
    line = one_error(fit_cli(tmp_path / "r", digits_shards, "--trainer.max_steps", "2", "--ckpt_path", str(ae_ckpt)), 2)
    assert expected in line, line
    assert fingerprint(ae / "checkpoints") == before and not (tmp_path / "s").exists()


def test_resume_with_other_posthoc_sigma_rels_gives_the_true_reason(tmp_path, digits_shards):
    root = tmp_path / "posthoc"
    callback = [f"--trainer.callbacks+={POSTHOC}", "--trainer.callbacks.every_n_steps=2"]
    assert fit(root, digits_shards, "--trainer.max_steps", "2", *callback) == 0
    before = fingerprint(root / "checkpoints") | fingerprint(root / "ema_snapshots")
    run = fit_cli(root, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", "last", *callback,
                  "--trainer.callbacks.sigma_rels=[0.07]")
    line = one_error(run, 1)
    assert "without post-hoc EMA state" not in line
    assert "tracked sigma_rels [0.05, 0.1], this run asks for [0.07]" in line and "Resume with sigma_rels" in line \
        and "lit-diffusion ema RUN --sigma_rel" in line, line
    page = tmp_path / "page.ckpt"  # a sign-in page saved in place of a downloaded checkpoint
    page.write_text("<html><head><title>Sign in</title></head></html>")
    line = one_error(cli("ema", str(root), "--sigma_rel", "0.1", "--out", str(tmp_path / "e.ckpt"), "--ckpt",
                         str(page)), 2)
    assert f"{page} is not a readable checkpoint: this is an HTML/XML page" in line, line
    assert fingerprint(root / "checkpoints") | fingerprint(root / "ema_snapshots") == before
    assert not (tmp_path / "e.ckpt").exists()


def test_a_parse_error_is_one_line(tmp_path, digits_shards):
    run = fit_cli(tmp_path / "r", digits_shards, "--trainer.max_stepz", "2")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "lit-diffusion fit: error: unrecognized arguments: --trainer.max_stepz 2 (see lit-diffusion fit --help)"]
    assert not (tmp_path / "r").exists()


def test_an_lr_changed_on_resume_is_said_and_recorded(old_run, digits_shards):
    # an explicit file: LightningCLI used to lay the checkpoint's hyper-parameters over the command line here
    run = fit_cli(old_run, digits_shards, "--trainer.max_steps", "3", "--ckpt_path",
                  str(old_run / "checkpoints/last.ckpt"), "--model.lr", "0.005",
                  "--model.weight_decay", "0.01")
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    said = [line for line in output.splitlines() if "resuming with changed settings" in line]
    assert len(said) == 1 and "lr 0.001 -> 0.005" in said[0] and "weight_decay 0.0 -> 0.01" in said[0], said
    last = torch.load(old_run / "checkpoints/last.ckpt", weights_only=False, map_location="cpu")
    assert last["global_step"] == 3
    assert last["model_spec"]["lr"] == 0.005 and last["hyper_parameters"]["lr"] == 0.005
    group = last["optimizer_states"][0]["param_groups"][0]
    assert group["weight_decay"] == 0.01  # taken, as said
