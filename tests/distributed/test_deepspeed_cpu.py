"""DeepSpeed ZeRO-2 and ZeRO-3 executed through `lit-diffusion fit` on 2 CPU ranks (the *_cpu presets: DeepSpeed's
CPU accelerator, gloo), against DDP on the same global batch; a ZeRO-3 folder resumed on the same world size and
on another one (DeepSpeed's universal checkpoint), and read as one checkpoint by the tools; post-hoc EMA snapshots
under ZeRO-3; and the presets this machine cannot run, refused in one line."""
from __future__ import annotations

import importlib.util
import os
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
# post-hoc EMA snapshots (EDM2 profiles 0.05 and 0.10) every 2 steps, in the runs that compare them
POSTHOC = ("--trainer.callbacks+=lit_diffusion.training.posthoc_ema.PostHocEMASnapshots",
           "--trainer.callbacks.every_n_steps=2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_shards):
    """DDP, ZeRO-2 and ZeRO-3 for STEPS steps on 2 ranks (ZeRO-3 saving a folder at step 2 as well)."""
    root = tmp_path_factory.mktemp("deepspeed")
    run_fit(root / "ddp", digits_shards, "ddp", 2, STEPS, "--checkpoint_every_n_steps", "2", *POSTHOC)
    run_fit(root / "zero2", digits_shards, "deepspeed_stage_2_cpu", 2, STEPS)
    run_fit(root / "zero3", digits_shards, "deepspeed_stage_3_cpu", 2, STEPS, "--checkpoint_every_n_steps", "2",
            *POSTHOC)
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
            "--ckpt_path", str(step2), *POSTHOC)
    straight, resumed = weights(_last(runs / "zero3")), weights(_last(root))
    assert max_difference(straight, resumed, "backbone.") == 0.0
    assert max_difference(straight, resumed, "ema.shadow.") == 0.0
    # the post-hoc EMA profiles, saved whole in the folder, are cut into the ranks' partitions again
    name = "step_0000004-sigma_rel_0.0500.safetensors"
    assert max_difference(_snapshot(runs / "zero3", name), _snapshot(root, name), "") == 0.0
    assert moments_difference(deepspeed_moments(_last(runs / "zero3")), deepspeed_moments(_last(root))) == 0.0


def _kept_at_step_2(src, dst):
    """A copy of a run folder as if it had been stopped after step 2 (the later checkpoints and snapshots gone)."""
    shutil.copytree(src, dst)
    for path in (dst / "checkpoints").iterdir():
        if "step=2" not in path.name:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return dst


@needs_deepspeed
@pytest.mark.slow
def test_zero3_folder_resumes_on_another_world_size_through_the_universal_checkpoint(runs, digits_shards, tmp_path):
    """2 ranks -> 1 (global batch kept: 1 x 32): the folder is converted to DeepSpeed's universal checkpoint and
    re-partitioned (distributed/deepspeed_universal.py). Compared with DDP's own 2 -> 1 resume from its file (the
    same re-sharded data and noise), weights, EMA, Adam moments and post-hoc EMA agree within the rounding of
    the two strategies; without the frozen parameters put back, the EMA would restart from its initial copy."""
    zero, ddp = _kept_at_step_2(runs / "zero3", tmp_path / "zero3"), _kept_at_step_2(runs / "ddp", tmp_path / "ddp")
    done = run_fit(zero, digits_shards, "deepspeed_stage_3_cpu", 1, STEPS, "--data.batch_size", "32",
                   "--checkpoint_every_n_steps", "2", "--ckpt_path", "last", *POSTHOC)
    log = done.stdout + done.stderr
    assert "through DeepSpeed's universal checkpoint" in log and "training started at step 2" in log
    run_fit(ddp, digits_shards, "auto", 1, STEPS, "--data.batch_size", "32", "--checkpoint_every_n_steps", "2",
            "--ckpt_path", "last", *POSTHOC)
    a, b = weights(_last(zero)), weights(_last(ddp))
    for prefix in ("backbone.", "ema.shadow."):
        difference = max_difference(a, b, prefix)
        print(f"ZeRO-3 universal 2 -> 1 resume vs DDP 2 -> 1 resume, {prefix} max |difference| {difference:.3g}")
        assert difference < TOLERANCE, prefix
    assert float(a["ema.num_updates"]) == float(b["ema.num_updates"]) == STEPS  # the EMA's count came back too
    moments = deepspeed_moments(_last(zero))
    assert moments_difference(ddp_moments(_last(ddp), list(moments["exp_avg"])), moments) < TOLERANCE
    name = "step_0000004-sigma_rel_0.0500.safetensors"
    assert max_difference(_snapshot(zero, name), _snapshot(ddp, name), "") < TOLERANCE
    step2 = weights(next((runs / "zero3" / "checkpoints").glob("*step=2*")))
    assert max_difference(a, step2, "backbone.") > 1e-4  # it trained on from step 2


@needs_deepspeed
@pytest.mark.slow
def test_zero3_folder_that_does_not_convert_is_refused_in_one_line(runs, digits_shards, tmp_path):
    root = tmp_path / "torn"
    shutil.copytree(runs / "zero3", root)
    for torn in (root / "checkpoints").glob("*/checkpoint/zero_pp_rank_1_mp_rank_00_optim_states.pt"):
        torn.unlink()  # rank 1's optimiser partition lost: DeepSpeed's converter cannot rebuild the parameters
    done = run_fit(root, digits_shards, "deepspeed_stage_3_cpu", 1, STEPS + 2, "--data.batch_size", "32",
                   "--ckpt_path", "last", check=False)
    assert done.returncode != 0
    message = [line for line in done.stderr.splitlines() if "written by DeepSpeed ZeRO-3 on 2 rank(s)" in line]
    assert message and "universal checkpoint failed" in message[0], done.stderr[-2000:]
    assert "resume with 2 rank(s)" in message[0] and "--model.init_from" in message[0]
    assert "Traceback" not in done.stderr


def _snapshot(root, name: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(root / "ema_snapshots" / name))


@needs_deepspeed
@pytest.mark.slow
def test_posthoc_ema_snapshots_under_zero3_equal_ddps(runs, tmp_path):
    """ZeRO-3 partitions the parameters; the profiles are averaged partition by partition and gathered whole for
    each snapshot, so the files equal DDP's up to the weights' own rounding difference."""
    names = sorted(p.name for p in (runs / "ddp" / "ema_snapshots").glob("*.safetensors"))
    assert len(names) == 4  # steps 2 and 4, sigma_rel 0.05 and 0.10
    difference = max(max_difference(_snapshot(runs / "ddp", n), _snapshot(runs / "zero3", n), "") for n in names)
    print(f"post-hoc EMA snapshots, ZeRO-3 vs DDP, max |difference| {difference:.3g}")
    assert difference < TOLERANCE
    first, last = _snapshot(runs / "zero3", names[0]), _snapshot(runs / "zero3", names[2])
    assert max_difference(first, last, "") > 1e-4  # they moved from step 2 to 4
    # `lit-diffusion ema` on the ZeRO-3 run: the base is its checkpoint folder, read through the door
    out = tmp_path / "ema_0.08.ckpt"
    done = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "ema", str(runs / "zero3"), "--sigma_rel",
                           "0.08", "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO), DS_ACCELERATOR="cpu"))
    assert done.returncode == 0, done.stderr[-3000:]
    from lit_diffusion.training.posthoc_ema import reconstruct_ema

    direct = {f"ema.shadow.{k}": v for k, v in reconstruct_ema(runs / "ddp", 0.08).state_dict.items()}
    assert max_difference(direct, weights(out), "ema.shadow.") < TOLERANCE
