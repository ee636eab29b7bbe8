"""Live throughput: images/s and achieved TFLOP/s over each logging window, and on CUDA the model FLOP
utilisation (MFU) against a bf16 GEMM peak measured once per run on this very device (a datasheet figure
would hide clocks, power caps and MIG slices).

FLOPs are counted once, on the first training batch (the objective's whole loss: every forward, a
distillation teacher's forwards and a JVP's tangent pass, and the backward; not the optimiser), with
torch.utils.flop_counter.FlopCounterMode (tests/compare/test_compute.py pins each objective's count against
closed forms; the comparison's FLOP budgets use the same probe), in a separate probe so the real step's
kernels are untouched (exact resume); every later step of the same shape does the same work, so achieved FLOP/s = FLOPs per step x steps / wall time. Timing needs no device sync of its
own: the window is read at a log step, where the module already reads its statistics (one sync), so wall
time between two log steps is device time on average."""
from __future__ import annotations

import logging
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from lit_diffusion.distributed.process import process_group

log = logging.getLogger("lit_diffusion.distributed")


def measure_bf16_peak(device: torch.device, n: int = 8192, iters: int = 20) -> float:
    """Achieved FLOP/s of an n x n x n bf16 GEMM on `device` (CUDA only: the MFU denominator)."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):  # warm-up: clocks and cuBLAS heuristics
        a @ b
    torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iters):
        a @ b
    torch.cuda.synchronize(device)
    return 2 * n ** 3 * iters / (time.perf_counter() - start)


class Throughput:
    """Window rates for the training log, from FLOPs counted once (`count_flops`)."""

    def __init__(self, device: torch.device, step: int, images: int):
        self.device = device
        self.flops_per_step: float | None = None
        self.peak: float | None = None
        self._mark = (time.perf_counter(), step, images)  # (time, global step, images seen) at the window start

    def count_flops(self, backbone: torch.nn.Module, step) -> None:
        """FLOPs of `step()` (a forward and backward of the training step, without side effects), once."""
        if getattr(backbone, "_compiled_call_impl", None) is not None:
            return  # a compiled graph hides its ops from the counter: the acceptance script counts eagerly
        try:
            with FlopCounterMode(display=False) as counter:
                step()
            self.flops_per_step = float(counter.get_total_flops())
        except Exception as error:  # throughput figures are a diagnostic: never stop training for them
            log.warning("FLOP count failed (%s: %s); no TFLOP/s or MFU in the logs", type(error).__name__, error)

    def window(self, step: int, images: int) -> dict[str, float]:
        """Rates since the previous call (or since construction)."""
        now = time.perf_counter()
        start, start_step, start_images = self._mark
        self._mark = (now, step, images)
        if step <= start_step or now <= start:
            return {}
        seconds = now - start
        rates = {"images_per_second": (images - start_images) / seconds}
        if self.flops_per_step:
            world = (process_group() or (0, 1))[1]
            achieved = self.flops_per_step * world * (step - start_step) / seconds  # all ranks together
            rates["tflops"] = achieved / 1e12
            if self.device.type == "cuda":
                if self.peak is None:
                    self.peak = measure_bf16_peak(self.device) * world
                    log.warning("bf16 GEMM peak measured: %.1f TFLOP/s", self.peak / 1e12 / world)
                rates["mfu"] = achieved / self.peak
        return rates
