"""Strategy presets, the pre-flight comparison and the signal flag, on the CPU; the FSDP and DeepSpeed runs
themselves need CUDA (marked gpu: skipped with a reason here)."""
from __future__ import annotations

import os
import signal

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from lit_diffusion.backbones import DiT, UNet
from lit_diffusion.distributed.preemption import RequeueOnSignal
from lit_diffusion.distributed.preflight import PreflightError, check_ranks, config_hash
from lit_diffusion.distributed.strategies import PRESETS, StrategyOptions, block_class_of, build_strategy
from lit_diffusion.backbones.dit import DiTBlock


@pytest.fixture
def dit():
    return DiT.from_preset("debug", in_channels=1, input_size=16, num_classes=10)


def test_presets_build_for_the_backbone(dit):
    assert isinstance(build_strategy("ddp", dit), DDPStrategy)
    fsdp = build_strategy("fsdp", dit, StrategyOptions(activation_checkpointing=True, state_dict="full"))
    assert isinstance(fsdp, FSDPStrategy)
    assert DiTBlock in fsdp.kwargs["auto_wrap_policy"]._module_classes and fsdp._state_dict_type == "full"
    assert fsdp._activation_checkpointing_kwargs
    assert fsdp.mixed_precision.param_dtype == torch.bfloat16 and fsdp.mixed_precision.reduce_dtype == torch.float32
    assert fsdp.sharding_strategy.name == "FULL_SHARD"
    hybrid = build_strategy("fsdp_hybrid", dit, num_nodes=2, devices_per_node=8)
    assert hybrid.sharding_strategy.name == "HYBRID_SHARD"
    assert block_class_of(dit) is DiTBlock and block_class_of(UNet.from_preset("debug")) is UNet.block_class


def test_bad_presets_and_options_are_named(dit):
    with pytest.raises(ValueError, match="unknown preset 'fsdp3'"):
        build_strategy("fsdp3", dit)
    with pytest.raises(ValueError, match="fsdp_hybrid contradicts --distributed.sharding full"):
        build_strategy("fsdp_hybrid", dit, StrategyOptions(sharding="full"))
    with pytest.raises(ValueError, match="timeout_minutes"):
        StrategyOptions(timeout_minutes=0)
    with pytest.raises(TypeError, match="block_class"):
        block_class_of(torch.nn.Linear(2, 2))
    assert set(PRESETS) >= {"ddp", "fsdp", "fsdp2", "deepspeed_stage_2", "deepspeed_stage_3"}


@pytest.mark.skipif(__import__("importlib").util.find_spec("deepspeed") is not None, reason="deepspeed is installed")
@pytest.mark.parametrize("preset", ["deepspeed_stage_2", "deepspeed_stage_3_offload"])
def test_deepspeed_without_the_package_is_a_clear_error(dit, preset):
    with pytest.raises(ImportError, match=rf"trainer.strategy={preset} needs the `deepspeed` package.*lit_diffusion\[deepspeed\]"):
        build_strategy(preset, dit, precision="bf16-mixed")


def test_preflight_names_the_ranks_that_differ():
    same = [{"rank": r, "host": "n0", "config_hash": "abc", "world_size": 2} for r in range(2)]
    check_ranks(same)
    differ = same[:1] + [{"rank": 1, "host": "n1", "config_hash": "xyz", "world_size": 2}]
    with pytest.raises(PreflightError, match=r"different configurations(.|\n)*rank 1 on n1: config xyz"):
        check_ranks(differ)
    assert config_hash({"a": 1, "b": [2]}) == config_hash({"b": [2], "a": 1}) != config_hash({"a": 2, "b": [2]})


def test_signal_only_sets_a_flag(tmp_path):
    callback = RequeueOnSignal(tmp_path)
    previous = signal.signal(signal.SIGUSR1, callback._handler)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        assert callback.received == signal.SIGUSR1 and not callback.preempted
        assert not any(tmp_path.iterdir())  # nothing written inside the handler
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("preset", ["fsdp", "deepspeed_stage_2", "deepspeed_stage_3"])
def test_dit_s2_trains_saves_and_resumes_under_each_strategy(preset, tmp_path):
    """On CUDA: DiT-S/2 for a few steps under the preset, a save and a resume (not verified on GPU)."""
    import importlib.util

    from lit_diffusion.cli import main as cli_main

    if preset.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed (pip install 'lit_diffusion[deepspeed]')")
    shards = tmp_path / "digits"
    assert cli_main(["data", "build", "digits", "--out", str(shards), "--resolution", "32", "--no-progress",
                     "--workers", "0"]) == 0
    experiments = os.path.join(os.path.dirname(__file__), "..", "..", "experiments")
    args = ["fit", "-c", f"{experiments}/digits/dit.yaml", "-c", f"{experiments}/objectives/flow_matching.yaml",
            "--model.backbone.init_args.hidden_size", "384", "--model.backbone.init_args.depth", "12",
            "--model.backbone.init_args.num_heads", "6", "--model.backbone.init_args.input_size", "32",
            "--data.train_shards", str(shards), "--data.num_workers", "0", "--trainer.accelerator", "cuda",
            "--trainer.devices", "1", "--trainer.strategy", preset, "--trainer.precision", "bf16-mixed",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--preview_every_n_steps", "0",
            "--checkpoint_every_n_steps", "10", "--distributed.state_dict", "full"]
    assert cli_main(args + ["--trainer.max_steps", "20"]) == 0
    assert cli_main(args + ["--trainer.max_steps", "40", "--ckpt_path", "last"]) == 0
