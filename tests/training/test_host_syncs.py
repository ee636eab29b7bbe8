"""No host synchronisation in the steady-state training step. On the CPU there is no device to wait for, so a
test double counts the calls that would sync on CUDA (Tensor.item, .tolist, bool/float/int of a tensor) from
one batch start to the next: the step, the optimiser, the EMA, Lightning's logging and progress bar. Only the
log steps may read the device (once, through the module's `read_to_host`). On CUDA the same check is
`torch.cuda.set_sync_debug_mode("error")`, which benchmarks/gpu_acceptance.py runs (not verified on a GPU)."""
from __future__ import annotations

import sys

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger

from lit_diffusion.backbones import DiT
from lit_diffusion.objectives.flow_matching import FlowMatching
from lit_diffusion.training import module as module_file
from lit_diffusion.training.module import DiffusionModule

SYNC_METHODS = ("item", "tolist", "__bool__", "__float__", "__int__")


def _reads_host_values() -> bool:
    """Two readers of values that live on the host even on CUDA, so not device syncs and not counted:
    torch.optim's `step` counters (unless fused or capturable), and Lightning's logger connector, which
    re-reads the progress-bar values of the last log step every batch (the module logs them as CPU tensors,
    asserted in the test)."""
    frame, files = sys._getframe(2), []  # 0: this function, 1: the counting double, 2: the reader
    while frame is not None and len(files) < 7:
        files.append(frame.f_code.co_filename)
        frame = frame.f_back
    return "torch/optim/" in files[0] or any("logger_connector" in f for f in files)


class SyncCounter(pl.Callback):
    """Counts host reads of tensor values between consecutive batch starts (index = global step)."""

    def __init__(self):
        self.count, self.per_step, self._mark = 0, [], None

    def install(self, monkeypatch):
        for name in SYNC_METHODS:
            original = getattr(torch.Tensor, name)

            def counting(tensor, *args, _original=original, **kwargs):
                if not _reads_host_values():
                    self.count += 1
                return _original(tensor, *args, **kwargs)

            monkeypatch.setattr(torch.Tensor, name, counting)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._mark is not None:
            self.per_step.append(self.count - self._mark)
        self._mark = self.count


def batches(n: int, batch_size: int = 8):
    g = torch.Generator().manual_seed(0)
    return [{"x": torch.randn(batch_size, 1, 8, 8, generator=g), "label": torch.randint(0, 10, (batch_size,), generator=g)}
            for _ in range(n)]


def test_steady_state_step_reads_nothing_from_the_device(tmp_path, monkeypatch):
    steps, every = 12, 5
    backbone = DiT.from_preset("debug", in_channels=1, input_size=8, num_classes=10)
    module = DiffusionModule(backbone, FlowMatching(), max_images=10_000, lr=1e-3, conditional=True)
    counter = SyncCounter()
    trainer = pl.Trainer(accelerator="cpu", max_steps=steps, log_every_n_steps=every, callbacks=[counter],
                         logger=CSVLogger(tmp_path), enable_checkpointing=False, gradient_clip_val=1.0,
                         enable_model_summary=False)
    logged = []
    log = module.log
    monkeypatch.setattr(module, "log", lambda name, value, **kw: (logged.append(value), log(name, value, **kw)))
    reads_before = module_file.HOST_READS["count"]
    counter.install(monkeypatch)
    trainer.fit(module, torch.utils.data.DataLoader(batches(steps), batch_size=None))
    monkeypatch.undo()
    per_step = counter.per_step  # steps 0 .. steps-2 (the last step has no following batch start)
    log_steps = {s for s in range(len(per_step)) if (s + 1) % every == 0}
    # the first step is not steady: the EMA reads its update count once, the FLOP counter runs
    steady = {s: n for s, n in enumerate(per_step) if s not in log_steps and s > 0}
    assert steady and all(n == 0 for n in steady.values()), f"host reads per steady step: {steady}"
    assert all(per_step[s] >= 1 for s in log_steps)  # the window is read there
    assert module_file.HOST_READS["count"] - reads_before >= len(log_steps)
    assert logged and all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in logged)
    metrics = (tmp_path / "lightning_logs/version_0/metrics.csv").read_text()
    for name in ("train/loss", "train/grad_norm", "train/images_per_second", "train/tflops", "train/loss_t0."):
        assert name in metrics, name
