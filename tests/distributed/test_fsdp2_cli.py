"""FSDP2 on 2 gloo ranks through the real CLI (`lit-diffusion fit --trainer.strategy fsdp2 --trainer.devices 2
--trainer.accelerator cpu`, Lightning starting the second process), against DDP on the same 2 ranks, with full
and sharded (torch.distributed.checkpoint) checkpoints, resumed through `fit --ckpt_path last` on 2, 1 and
again 2 ranks.

What is compared, and why not more (tolerances in float32):
- FSDP2 and DDP see the same samples and the same noise per rank: weights, EMA and both Adam moments after 4
  steps agree within 1e-5 (measured ~1e-7: FSDP2 reduce-scatters where DDP all-reduces, another summation
  order). One process on the same global batch is proven by tests/distributed/test_fsdp2_gloo.py, which feeds
  each rank its half of one batch's noise; through the CLI the noise and times come from a generator per rank
  (seeded by seed and rank) and each rank reads its own contiguous range of the epoch (data/plan.py), so a
  single process's batch holds other samples and other draws.
- A sharded checkpoint resumed on the same 2 ranks gives the uninterrupted run's weights bitwise; resumed by
  FSDP2 on 1 rank (DCP reshards on load) it gives what the full file resumed on 1 rank gives.
- 2 -> 1 rank (per-rank batch 8 -> 16, the same global batch) and back 1 -> 2 mid-epoch: the data stream
  re-shards the rest of the epoch in the saved order (data/reshard.py), so every step sees the uninterrupted
  run's samples. The result is not bitwise: the new rank draws its noise from its own generator (the saved
  run's rank 1 draws are not replayed on rank 0) and the gradient is one mean over 16 instead of a mean of two
  means over 8. Checked: the run continues at the right step and epoch position, its saved stream state is the
  uninterrupted run's, and it stays near it (max |weight difference| < 10 x steps x lr).
- Post-hoc EMA snapshots (EDM2) under FSDP2 equal DDP's, continue bitwise from a sharded checkpoint, and
  continue across 2 -> 1 -> 2 ranks; `lit-diffusion ema` reads them."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"
LR, STEPS = 1e-3, 4
FP32_ATOL = 1e-5
# post-hoc EMA snapshots (EDM2 profiles 0.05 and 0.10) every 2 steps, in the runs that compare them
POSTHOC = ("--trainer.callbacks+=lit_diffusion.training.posthoc_ema.PostHocEMASnapshots",
           "--trainer.callbacks.every_n_steps=2")


def fit(root: Path, shards: Path, strategy: str, devices: int, batch: int, max_steps: int, *extra: str) -> str:
    """One `lit-diffusion fit` as users run it (a child process; Lightning starts the other ranks)."""
    args = ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
            "--data.num_workers", "0", "--data.train_shards", str(shards), "--data.batch_size", str(batch),
            "--data.samples_per_epoch", "192", "--model.max_images", "100000", "--trainer.default_root_dir", str(root),
            "--trainer.log_every_n_steps", "1", "--checkpoint_every_n_steps", "2", "--trainer.accelerator", "cpu",
            "--preview_every_n_steps", "0", "--trainer.max_steps", str(max_steps), "--trainer.strategy", strategy,
            "--trainer.devices", str(devices), *extra]
    if strategy == "fsdp2":
        args += ["--distributed.mixed_precision", "none"]  # the preset computes in bf16 by default
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *args], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


def checkpoint_at(root: Path, step: int) -> dict:
    """The full state at `step`: a file, or a DCP folder read back into one dict (torch's own converter)."""
    found = sorted(p for p in Path(root, "checkpoints").rglob(f"*step={step}*.ckpt"))
    assert found, f"no checkpoint at step {step} in {root}: {list(Path(root).rglob('*.ckpt'))}"
    path = found[0]
    if path.is_dir():
        from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

        out = path.parent / (path.name + ".pt")
        dcp_to_torch_save(path, out)
        return torch.load(out, weights_only=False)
    return torch.load(path, weights_only=False)


def keep_up_to(src: Path, dst: Path, step: int) -> Path:
    """A copy of a run folder as if it had stopped after `step` (the later checkpoints removed)."""
    shutil.copytree(src, dst)
    for path in Path(dst, "checkpoints").rglob("*.ckpt"):
        if checkpoint_step(path) != step:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return dst


def checkpoint_step(path: Path) -> int:
    name = path.name
    return int(name.split("step=")[1].split(".")[0].split("-")[0]) if "step=" in name else -1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("fsdp2cli")
    shards = base / "digits"
    from lit_diffusion.cli import main as cli_main

    assert cli_main(["data", "build", "digits", "--out", str(shards), "--resolution", "16", "--no-progress",
                     "--workers", "0", "--overwrite"]) == 0
    logs = {}
    logs["ddp"] = fit(base / "ddp", shards, "ddp", 2, 8, STEPS, *POSTHOC)
    logs["fsdp2"] = fit(base / "fsdp2", shards, "fsdp2", 2, 8, STEPS, *POSTHOC)
    logs["sharded"] = fit(base / "sharded", shards, "fsdp2", 2, 8, 2, "--distributed.state_dict", "sharded", *POSTHOC)
    shutil.copytree(base / "sharded", base / "sharded_one_rank")
    logs["sharded_to_one"] = fit(base / "sharded_one_rank", shards, "fsdp2", 1, 16, STEPS, "--distributed.state_dict",
                                 "sharded", "--ckpt_path", "last")  # DCP reshards 2 -> 1 on load
    logs["sharded_resumed"] = fit(base / "sharded", shards, "fsdp2", 2, 8, STEPS, "--distributed.state_dict", "sharded",
                                  "--ckpt_path", "last", *POSTHOC)
    one = keep_up_to(base / "fsdp2", base / "one_rank", 2)
    logs["to_one"] = fit(one, shards, "auto", 1, 16, STEPS, "--ckpt_path", "last", *POSTHOC)
    logs["back_to_two"] = fit(one, shards, "fsdp2", 2, 8, STEPS + 2, "--ckpt_path", "last", *POSTHOC)
    return base, logs


def weights(state: dict, prefix: str) -> dict:
    return {k: v for k, v in state["state_dict"].items() if k.startswith(prefix)}


def adam(state: dict) -> list[torch.Tensor]:
    """Both Adam moments of every parameter, in parameter order (a full checkpoint keys them by index)."""
    moments = state["optimizer_states"][0]["state"]
    return [moments[i][key] for i in sorted(moments) for key in ("exp_avg", "exp_avg_sq")]


def adam_values(state: dict) -> list[torch.Tensor]:
    """Every exp_avg value, then every exp_avg_sq value, sorted: comparable between a full checkpoint (keyed by
    index) and a DCP folder (keyed by name)."""
    optimizer = state["optimizer_states"][0] if "optimizer_states" in state else state["optimizer_0"]
    moments = list(optimizer["state"].values())
    return [torch.sort(torch.cat([m[key].flatten() for m in moments])).values for key in ("exp_avg", "exp_avg_sq")]


def max_difference(a, b) -> float:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        a, b = list(a.values()), [b[k] for k in a]
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a, b))


def test_fsdp2_equals_ddp_through_the_cli(runs):
    base, _ = runs
    ddp, fsdp = checkpoint_at(base / "ddp", STEPS), checkpoint_at(base / "fsdp2", STEPS)
    for prefix in ("backbone.", "ema."):
        assert weights(ddp, prefix), prefix
        difference = max_difference(weights(ddp, prefix), weights(fsdp, prefix))
        print(f"FSDP2 vs DDP, {prefix} max |difference| {difference:.3g}")
        assert difference < FP32_ATOL, prefix
    difference = max_difference(adam(ddp), adam(fsdp))
    print(f"FSDP2 vs DDP, Adam moments max |difference| {difference:.3g}")
    assert difference < FP32_ATOL
    start = checkpoint_at(base / "fsdp2", 2)
    assert max_difference(weights(start, "backbone."), weights(fsdp, "backbone.")) > 100 * FP32_ATOL  # it trained
    # the saved tensors are whole (a plain file `sample` reads), not one rank's shards
    assert all(not hasattr(v, "to_local") for v in fsdp["state_dict"].values())


def test_sharded_checkpoint_resumes_bitwise_on_two_ranks(runs):
    base, logs = runs
    folder = next(Path(base / "sharded", "checkpoints").rglob("*step=2*.ckpt"))
    assert folder.is_dir() and any(folder.glob("*.distcp")), "a torch.distributed.checkpoint folder"
    assert "training started at step 2" in logs["sharded_resumed"]
    resumed, uninterrupted = checkpoint_at(base / "sharded", STEPS), checkpoint_at(base / "fsdp2", STEPS)
    for prefix in ("backbone.", "ema."):
        assert max_difference(weights(resumed, prefix), weights(uninterrupted, prefix)) == 0.0, prefix
    assert max_difference(adam_values(resumed), adam_values(uninterrupted)) == 0.0


def test_two_ranks_resume_on_one_and_back_on_two(runs):
    base, logs = runs
    assert "training started at step 2" in logs["to_one"] and "re-sharded" in logs["to_one"]
    assert "training started at step 4" in logs["back_to_two"]
    one, uninterrupted = checkpoint_at(base / "one_rank", STEPS), checkpoint_at(base / "fsdp2", STEPS)
    assert one["global_step"] == STEPS
    # the stream state: the same epoch position as the uninterrupted 2-rank run, plus the rest being read
    stream, reference = one["ShardDataModule"], uninterrupted["ShardDataModule"]
    assert (stream["epoch"], stream["batches"]) == (reference["epoch"], reference["batches"]) == (0, STEPS)
    assert stream["rest"] == {"world_size": 2, "batch_size": 8, "num_workers": 0, "done": 2, "offset": 2 * 16}
    difference = max_difference(weights(one, "backbone."), weights(uninterrupted, "backbone."))
    print(f"2 -> 1 rank resume vs uninterrupted 2 ranks, weights max |difference| {difference:.3g}")
    assert 0 < difference < 10 * STEPS * LR
    # the same resume from the sharded (DCP) checkpoint of the same state, by FSDP2 on 1 rank
    assert "re-sharded" in logs["sharded_to_one"]
    from_dcp = checkpoint_at(base / "sharded_one_rank", STEPS)
    difference = max_difference(weights(from_dcp, "backbone."), weights(one, "backbone."))
    print(f"2 -> 1 rank from the DCP folder vs from the full file, weights max |difference| {difference:.3g}")
    assert difference < FP32_ATOL
    back = checkpoint_at(base / "one_rank", STEPS + 2)
    assert back["global_step"] == STEPS + 2
    assert (back["ShardDataModule"]["epoch"], back["ShardDataModule"]["batches"]) == (0, STEPS + 2)
    assert back["ShardDataModule"]["rest"]["offset"] == 4 * 16
    assert len(back["noise_generators"]) == 2
    assert not torch.equal(back["noise_generators"][0], back["noise_generators"][1])  # rank 1 draws its own noise


def snapshots(root: Path) -> dict[str, dict[str, torch.Tensor]]:
    from safetensors.torch import load_file

    found = sorted(Path(root, "ema_snapshots").glob("*.safetensors"))
    return {p.name: load_file(str(p)) for p in found}


def test_posthoc_ema_snapshots_under_fsdp2_equal_ddps(runs):
    """The profiles are averaged shard by shard and gathered whole for each snapshot: the files equal DDP's."""
    base, _ = runs
    ddp, fsdp = snapshots(base / "ddp"), snapshots(base / "fsdp2")
    assert len(ddp) == 4 and ddp.keys() == fsdp.keys()  # steps 2 and 4, sigma_rel 0.05 and 0.10
    difference = max(max_difference(ddp[name], fsdp[name]) for name in ddp)
    print(f"post-hoc EMA snapshots, FSDP2 vs DDP, max |difference| {difference:.3g}")
    assert difference < FP32_ATOL
    at_4 = fsdp["step_0000004-sigma_rel_0.0500.safetensors"]
    assert max_difference(at_4, fsdp["step_0000002-sigma_rel_0.0500.safetensors"]) > 100 * FP32_ATOL  # they move
    # the reconstruction through `lit-diffusion ema` reads them as it reads a one-device run's
    from lit_diffusion.cli import main as cli_main
    from lit_diffusion.training.posthoc_ema import reconstruct_ema

    out = base / "fsdp2_ema_0.08.ckpt"
    assert cli_main(["ema", str(base / "fsdp2"), "--sigma_rel", "0.08", "--out", str(out)]) == 0
    exported = {k.removeprefix("ema.shadow."): v for k, v in torch.load(out, weights_only=False)["state_dict"].items()
                if k.startswith("ema.shadow.")}
    assert max_difference(reconstruct_ema(base / "ddp", 0.08).state_dict, exported) < FP32_ATOL


def test_posthoc_ema_resumes_sharded_and_on_another_world_size(runs):
    base, _ = runs
    # a sharded (DCP) checkpoint resumed on 2 ranks continues the profiles bitwise
    resumed, straight = snapshots(base / "sharded"), snapshots(base / "fsdp2")
    assert resumed.keys() == straight.keys()
    assert max(max_difference(resumed[n], straight[n]) for n in straight) == 0.0
    # 2 -> 1 -> 2 ranks: the whole profiles saved by 2 FSDP2 ranks continue on 1 process, then are cut into
    # shards again; they stay near the uninterrupted run's (the weights they average are not bitwise, above)
    moved = snapshots(base / "one_rank")
    assert {"step_0000004-sigma_rel_0.0500.safetensors", "step_0000006-sigma_rel_0.1000.safetensors"} <= moved.keys()
    difference = max(max_difference(moved[n], straight[n]) for n in straight)
    print(f"post-hoc EMA after 2 -> 1 rank resume vs uninterrupted, max |difference| {difference:.3g}")
    assert difference < 10 * STEPS * LR
