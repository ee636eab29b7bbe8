"""FSDP2 (fully_shard) on the CPU with 2 gloo ranks, through the framework's own wrapping
(lit_diffusion.distributed.fsdp2: one unit per backbone block, activation checkpointing, the EMA sharded like
its parameters, full-state checkpoints), against DDP and a single process on the same samples and noise.

Each rank trains on its half of one global batch (same samples, noise and times as the single process), so
the runs agree only if gradients are reduced across ranks. Stated tolerance, float32: max |difference| of any
weight, EMA weight or optimiser moment below 1e-5 after 4 AdamW steps (lr 1e-3; measured ~4e-8, summation
order). bf16 mixed precision (compute in bf16, gradients reduced in float32): relative L2 difference of all
weights below 1%, and no weight further than 2 x steps x lr (an AdamW step moves a weight by about lr at
most, so a rounding that flips a near-zero gradient costs up to 2 lr; measured max 4.2e-3 = 1.05 x steps x lr)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gloo_ranks import run_ranks

pytestmark = pytest.mark.slow
RANK_SCRIPT = Path(__file__).with_name("fsdp2_rank.py")
STEPS, SAVE_AT = 4, 2
LR = 1e-3  # fsdp2_rank.py's AdamW
FP32_ATOL, BF16_ATOL, BF16_RTOL = 1e-5, 2 * STEPS * LR, 1e-2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp2")

    def run(name, mode, world, *extra):
        run_ranks(RANK_SCRIPT, [mode, STEPS, out / f"{name}.pt", *extra], world=world, timeout=300)
        return torch.load(out / f"{name}.pt", weights_only=False)

    results = {"single": run("single", "single", 1), "ddp": run("ddp", "ddp", 2),
               # activation checkpointing on: recomputation must not change a bit of the result
               "fsdp": run("fsdp", "fsdp_ac", 2, "--save-at", SAVE_AT)}
    halfway = out / f"fsdp.pt.step{SAVE_AT}"
    results["halfway"] = torch.load(halfway, weights_only=False)
    results["resumed_1_rank"] = run("resumed", "fsdp", 1, "--resume", halfway)  # 2 ranks -> 1
    results["bf16"] = run("bf16", "fsdp_bf16", 2)
    return results


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point())


def test_fsdp_and_ddp_equal_the_single_process_run(runs):
    single = runs["single"]["model"]
    assert any(k.startswith("ema.shadow.") for k in single) and any(k.startswith("backbone.") for k in single)
    for name in ("ddp", "fsdp"):
        assert max_difference(single, runs[name]["model"]) < FP32_ATOL, name
    # the weights moved: equality is not two untrained copies
    assert max_difference(single, runs["halfway"]["model"]) > 100 * FP32_ATOL


def test_sharded_ema_equals_the_unsharded_ema(runs):
    pick = lambda state: {k: v for k, v in state["model"].items() if k.startswith("ema.")}  # noqa: E731
    assert max_difference(pick(runs["single"]), pick(runs["fsdp"])) < FP32_ATOL
    assert int(runs["fsdp"]["model"]["ema.num_updates"]) == STEPS


def test_resume_from_2_ranks_into_1_equals_the_uninterrupted_run(runs):
    assert runs["halfway"]["step"] == SAVE_AT
    assert max_difference(runs["single"]["model"], runs["resumed_1_rank"]["model"]) < FP32_ATOL
    a, b = runs["fsdp"]["optimizer"]["state"], runs["resumed_1_rank"]["optimizer"]["state"]
    assert a.keys() == b.keys()
    for key in a:
        for moment in ("exp_avg", "exp_avg_sq"):
            assert (a[key][moment] - b[key][moment]).abs().max() < FP32_ATOL, (key, moment)


def test_bf16_mixed_precision_stays_close(runs):
    single, bf16 = runs["single"]["model"], runs["bf16"]["model"]
    difference = max_difference(single, bf16)
    assert 0 < difference < BF16_ATOL  # bf16 compute did happen (not bitwise) and stayed close
    flat = lambda state: torch.cat([v.double().flatten() for v in state.values() if v.is_floating_point()])  # noqa: E731
    assert (flat(single) - flat(bf16)).norm() / flat(single).norm() < BF16_RTOL
    assert all(v.dtype == torch.float32 for v in runs["bf16"]["model"].values() if v.is_floating_point())
