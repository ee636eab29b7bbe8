"""What a user sees: one-line errors with the next step (tracebacks on --debug), progress on long runs,
no noise warnings."""
from __future__ import annotations

import io
import warnings

import pytest
import torch

from lit_diffusion.cli import DEBUG_ENV, main as cli_main, quiet_noise
from lit_diffusion.data.errors import DataError


def test_missing_shard_folder_is_one_line_with_the_build_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert cli_main(["data", "verify", str(tmp_path / "shards")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no such shard folder" in err
    assert f"lit-diffusion data build SOURCE ... --out {tmp_path / 'shards'}" in err


def test_debug_flag_and_environment_show_the_traceback(tmp_path, monkeypatch):
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    with pytest.raises(DataError, match="no such shard folder"):
        cli_main(["data", "info", str(tmp_path / "nope"), "--debug"])
    monkeypatch.setenv(DEBUG_ENV, "1")
    with pytest.raises(DataError, match="no such shard folder"):
        cli_main(["data", "info", str(tmp_path / "nope")])


def test_fit_user_error_is_one_line(tmp_path, capsys, monkeypatch):
    """fit goes through LightningCLI; its user errors are caught at the dispatch level."""
    from pathlib import Path

    monkeypatch.delenv(DEBUG_ENV, raising=False)
    experiments = Path(__file__).resolve().parents[2] / "experiments"
    status = cli_main(["fit", "-c", str(experiments / "digits/dit.yaml"), "--data.train_shards",
                       str(tmp_path / "digitz"), "--trainer.accelerator", "cpu",
                       "--trainer.default_root_dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err
    assert "lit-diffusion fit: error:" in err and "lit-diffusion data build" in err


def test_noise_warnings_are_filtered():
    quiet_noise()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet_noise()  # catch_warnings reset the filters: install them again inside
        warnings.warn("The `srun` command is available on your system but is not used.")
        warnings.warn("Found 118 module(s) in eval mode at the start of training.")
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated")
        warnings.warn("something that matters")
    assert [str(w.message) for w in caught] == ["something that matters"]


def test_data_progress_prints_lines_and_a_closing_line():
    from lit_diffusion.data.progress import Progress

    out = io.StringIO()
    with Progress(4, "verify", interval=0.0, stream=out) as progress:
        for _ in range(4):
            progress.update(1)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("verify: 1/4 samples (25%)") and "ETA" in lines[0]
    assert lines[-1].startswith("verify: 4 samples in 0:00")


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))


def test_training_progress_lines_and_closing_line(tmp_path):
    import lightning.pytorch as pl

    from lit_diffusion.training.progress import TrainingProgress

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _Tiny()

        def training_step(self, batch, batch_idx):
            loss = (self.net.w - batch["x"].mean()) ** 2
            self.log("train/loss", loss.squeeze())
            return loss.squeeze()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    batches = [{"x": torch.randn(4, 2)} for _ in range(5)]
    out = io.StringIO()
    trainer = pl.Trainer(max_steps=5, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=[TrainingProgress(every_seconds=0.0, stream=out)])
    trainer.fit(Module(), train_dataloaders=torch.utils.data.DataLoader(batches, batch_size=None))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("step 1/5 (20%) | 4 images | loss ") and "images/s | ETA" in lines[0]
    assert lines[-1].startswith("training ended: 5 steps (global step 5), 20 images in 0:0")


def test_training_progress_counts_in_images_for_an_image_budget():
    import types

    from lit_diffusion.training.progress import TrainingProgress

    progress = TrainingProgress()
    progress._images, progress._start = 640, 0.0
    trainer = types.SimpleNamespace(global_step=10, max_steps=-1, estimated_stepping_batches=float("inf"),
                                    callback_metrics={"train/loss": torch.tensor(0.25)})
    module = types.SimpleNamespace(images_seen=640, max_images=6400)
    line = progress._line(trainer, module, now=10.0)
    assert line == "step 10 | 640/6,400 images (10%) | loss 0.25 | 64 images/s | ETA 1:30"


def test_builds_end_with_a_progress_line(tmp_path, capsys):
    assert cli_main(["data", "build", "digits", "--out", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err  # not a terminal: no bar, a closing line
    assert f"writing {tmp_path / 'd'}: 1797 samples in 0:0" in err and "\r" not in err
