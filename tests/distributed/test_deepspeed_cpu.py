"""DeepSpeed ZeRO-2 and ZeRO-3 executed through `lit-diffusion fit` on 2 CPU ranks (the *_cpu presets: DeepSpeed's
CPU accelerator, gloo), against DDP on the same global batch; a ZeRO-3 folder resumed, refused on another world
size, and read as one checkpoint by the tools; and the presets this machine cannot run, refused in one line."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.distributed.deepspeed_runs import (REPO, ddp_moments, deepspeed_moments, max_difference,
                                              moments_difference, run_fit, weights)

needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None,
                                     reason="deepspeed is not installed (pip install 'lit_diffusion[deepspeed]')")
STEPS = 4
# float32 on both sides; the ranks' gradients are averaged in another order (gloo all-reduce vs DeepSpeed's
# reduce-scatter of flat buckets), so the weights differ by rounding only: 1.5e-8 measured after 4 steps
TOLERANCE = 1e-6


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_shards):
    """DDP, ZeRO-2 and ZeRO-3 for STEPS steps on 2 ranks (ZeRO-3 saving a folder at step 2 as well)."""
    root = tmp_path_factory.mktemp("deepspeed")
    run_fit(root / "ddp", digits_shards, "ddp", 2, STEPS)
    run_fit(root / "zero2", digits_shards, "deepspeed_stage_2_cpu", 2, STEPS)
    run_fit(root / "zero3", digits_shards, "deepspeed_stage_3_cpu", 2, STEPS, "--checkpoint_every_n_steps", "2")
    return root


def _last(root):
    return root / "checkpoints" / "last.ckpt"


@needs_deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_zero_equals_ddp_on_the_same_global_batch(runs, stage):
    ddp, zero = weights(_last(runs / "ddp")), weights(_last(runs / stage))
    assert _last(runs / stage).is_dir()  # a DeepSpeed folder, consolidated by the door
    assert max_difference(ddp, zero, "backbone.") < TOLERANCE
    # ZeRO-3 partitions the EMA's shadow too: each rank averages its slice (training/ema.py)
    assert max_difference(ddp, zero, "ema.shadow.") < TOLERANCE
    moments = deepspeed_moments(_last(runs / stage))
    assert moments_difference(ddp_moments(_last(runs / "ddp"), list(moments["exp_avg"])), moments) < TOLERANCE
    # and the EMA moved: it is not the initial copy left in place
    assert max_difference(zero, {k.replace("backbone.", "ema.shadow."): v for k, v in zero.items()
                                 if k.startswith("backbone.")}, "ema.shadow.") > 0


@needs_deepspeed
@pytest.mark.slow
def test_zero3_folder_resumes_bitwise_on_the_same_world_size(runs, digits_shards, tmp_path):
    root = tmp_path / "resumed"
    shutil.copytree(runs / "zero3", root)
    step2 = next((root / "checkpoints").glob("*step=2*.ckpt"))
    run_fit(root, digits_shards, "deepspeed_stage_3_cpu", 2, STEPS, "--checkpoint_every_n_steps", "2",
            "--ckpt_path", str(step2))
    straight, resumed = weights(_last(runs / "zero3")), weights(_last(root))
    assert max_difference(straight, resumed, "backbone.") == 0.0
    assert max_difference(straight, resumed, "ema.shadow.") == 0.0
    assert moments_difference(deepspeed_moments(_last(runs / "zero3")), deepspeed_moments(_last(root))) == 0.0


@needs_deepspeed
@pytest.mark.slow
def test_zero3_folder_on_another_world_size_is_refused_in_one_line(runs, digits_shards, tmp_path):
    root = tmp_path / "one-rank"
    shutil.copytree(runs / "zero3", root)
    done = run_fit(root, digits_shards, "deepspeed_stage_3_cpu", 1, STEPS + 2, "--ckpt_path", "last", check=False)
    assert done.returncode != 0
    message = [line for line in done.stderr.splitlines() if "written by DeepSpeed ZeRO-3 on 2 rank(s)" in line]
    assert message and "resume with 2 rank(s)" in message[0] and "--model.init_from" in message[0]
    assert "Traceback" not in done.stderr
    assert weights(_last(root))["backbone.final_layer.linear.weight"].equal(
        weights(_last(runs / "zero3"))["backbone.final_layer.linear.weight"])  # nothing lost


@needs_deepspeed
@pytest.mark.slow
def test_zero3_folder_is_read_by_sample_and_init_from_and_converts_to_one_file(runs, digits_shards, tmp_path):
    from lit_diffusion.runs import open_checkpoint
    from lit_diffusion.runs.deepspeed_folder import consolidate

    folder = _last(runs / "zero3")
    single = consolidate(folder, tmp_path / "zero3.ckpt")
    assert open_checkpoint(single).record.global_step == open_checkpoint(folder).record.global_step == STEPS
    open_checkpoint(single).verify()  # written with its content hash
    assert max_difference(weights(single), weights(folder), "") == 0.0
    for checkpoint in (folder, single):  # `sample` in a fresh process: no torch.distributed in it
        out = tmp_path / f"samples-{checkpoint.suffix}-{checkpoint.is_dir()}"
        done = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "sample", "--ckpt", str(checkpoint),
                               "--out", str(out), "--num", "2"], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        assert any(out.rglob("*.png"))
    run_fit(tmp_path / "init", digits_shards, "ddp", 1, 1, "--model.init_from", str(folder))


def test_a_preset_this_machine_cannot_run_names_the_missing_piece(digits_shards, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the GPU presets run here")
    done = run_fit(tmp_path / "run", digits_shards, "deepspeed_stage_3", 2, 1, check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("lit-diffusion fit: error:")]
    wanted = ("needs the `deepspeed` package" if importlib.util.find_spec("deepspeed") is None
              else "needs a CUDA GPU and this machine has none")
    assert len(errors) == 1 and wanted in errors[0] and "deepspeed_stage_3_cpu" in errors[0]
    assert "Traceback" not in done.stderr


@needs_deepspeed
def test_cpu_presets_build_zero_strategies_in_float32_or_bf16():
    import torch

    from lit_diffusion.distributed.deepspeed_cpu import CPUDeepSpeedStrategy
    from lit_diffusion.distributed.strategies import DEEPSPEED_CPU_PRESETS, build_strategy

    net = torch.nn.Linear(2, 2)
    for preset in DEEPSPEED_CPU_PRESETS:
        strategy = build_strategy(preset, net, precision="32-true")
        assert isinstance(strategy, CPUDeepSpeedStrategy)
        zero = strategy.config["zero_optimization"]
        assert zero["stage"] == (3 if "stage_3" in preset else 2)
        assert ("offload_optimizer" in zero) == ("_offload" in preset)
    assert isinstance(build_strategy("deepspeed_stage_3_cpu", net, precision="bf16-mixed"), CPUDeepSpeedStrategy)
    with pytest.raises(ValueError, match=r"deepspeed_stage_2_cpu trains in .*: set --trainer.precision 32-true"):
        build_strategy("deepspeed_stage_2_cpu", net, precision="16-mixed")
