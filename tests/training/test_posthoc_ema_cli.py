"""Post-hoc EMA through the real CLI: `lit-diffusion fit` with the snapshot callback on the digits shards, with a
preempted-and-resumed twin, then `lit-diffusion ema`. The module tracks an EMA of sigma_rel 0.08 directly; the
reconstruction of 0.08 from the 0.05 and 0.10 snapshots (every 2 steps: exact, see posthoc_ema_math) equals it."""
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from lit_diffusion.cli import main as cli_main
from lit_diffusion.training.loading import load_module
from lit_diffusion.training.posthoc_ema import list_snapshots, load_posthoc_ema, reconstruct_ema

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CALLBACK = "lit_diffusion.training.posthoc_ema.PostHocEMASnapshots"


def fit(root, shards, *extra, snapshots=True):
    callback = [f"--trainer.callbacks+={CALLBACK}", "--trainer.callbacks.every_n_steps=2"] if snapshots else []
    return cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/flow_matching.yaml"),
                     "--data.num_workers", "0", "--data.train_shards", str(shards), "--data.batch_size", "32",
                     "--data.samples_per_epoch", "192", "--model.max_images", "100000", "--model.ema_sigma_rel", "0.08",
                     "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
                     "--preview_every_n_steps", "0", *callback, *extra])


def direct_ema(root):
    state = torch.load(Path(root, "checkpoints/last.ckpt"), weights_only=False)["state_dict"]
    return {k.removeprefix("ema.shadow."): v for k, v in state.items() if k.startswith("ema.shadow.")}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, digits_shards):
    root = tmp_path_factory.mktemp("posthoc")
    assert fit(root / "a", digits_shards, "--trainer.max_steps", "20") == 0
    assert fit(root / "b", digits_shards, "--trainer.max_steps", "10") == 0  # "preempted" at step 10
    # a run killed after writing the snapshots of step 22 but before its next checkpoint left this behind (the
    # resumed run stops at 20, so only the deletion at its start removes it)
    stale = root / "b/ema_snapshots/step_0000022-sigma_rel_0.0500.safetensors"
    save_file({"x": torch.zeros(1)}, str(stale), metadata={"format": "lit_diffusion.posthoc_ema/1", "sigma_rel": "0.05",
                                                          "gamma": "16.97", "num_updates": "22", "global_step": "22",
                                                          "images_seen": "704", "averaged": "[]"})
    assert fit(root / "b", digits_shards, "--trainer.max_steps", "20", "--ckpt_path", "last") == 0
    return root / "a", root / "b"


def test_reconstruction_equals_the_directly_tracked_ema(runs):
    a, _ = runs
    rec = reconstruct_ema(a, 0.08)
    assert (rec.step, rec.num_updates, rec.images_seen) == (20, 20, 640)
    direct = direct_ema(a)
    assert rec.state_dict.keys() == direct.keys()
    for key in direct:
        torch.testing.assert_close(rec.state_dict[key], direct[key], rtol=0, atol=1e-5)
    assert rec.relative_residual < 1e-6
    # not vacuous: the stored profiles at step 20 differ from the target by far more than the tolerance
    for sigma_rel in ("0.0500", "0.1000"):
        stored = load_file(str(a / f"ema_snapshots/step_0000020-sigma_rel_{sigma_rel}.safetensors"))
        assert max((stored[k] - direct[k]).abs().max().item() for k in direct) > 1e-4


def test_a_resumed_run_continues_the_same_profiles(runs):
    a, b = runs
    snaps_a, snaps_b = list_snapshots(a), list_snapshots(b)
    assert [s.path.name for s in snaps_a] == [s.path.name for s in snaps_b]  # the stale step-22 file is gone
    assert len(snaps_a) == 20 and {s.global_step for s in snaps_a} == set(range(2, 21, 2))
    for sa, sb in zip(snaps_a, snaps_b):
        ta, tb = load_file(str(sa.path)), load_file(str(sb.path))
        assert (sa.num_updates, sa.images_seen) == (sb.num_updates, sb.images_seen)
        assert all(torch.equal(ta[k], tb[k]) for k in ta), sa.path.name  # bitwise, on the CPU
    for key, value in direct_ema(b).items():
        torch.testing.assert_close(reconstruct_ema(b, 0.08).state_dict[key], value, rtol=0, atol=1e-5)


def test_ema_command_writes_a_loadable_checkpoint(runs, tmp_path, capsys):
    a, _ = runs
    assert cli_main(["ema", str(a)]) == 0
    assert "20 snapshot(s)" in capsys.readouterr().out
    out = tmp_path / "ema_0.12.ckpt"
    assert cli_main(["ema", str(a), "--sigma_rel", "0.12", "--at_step", "16", "--out", str(out)]) == 0
    module = load_module(out)
    expected = reconstruct_ema(a, 0.12, at_step=16)
    assert expected.step == 16
    for key, value in module.ema.shadow.state_dict().items():
        assert torch.equal(value, expected.state_dict[key]), key
    # the same through the Python helper, on the module of the original checkpoint
    other = load_module(a / "checkpoints/last.ckpt")
    assert load_posthoc_ema(other, a, 0.12, at_step=16).step == 16
    for key, value in other.ema.shadow.state_dict().items():
        assert torch.equal(value, expected.state_dict[key]), key


def test_bad_input_says_what_to_do(runs, tmp_path, capsys):
    a, _ = runs
    assert cli_main(["ema", str(a), "--sigma_rel", "0.5", "--out", str(tmp_path / "x.ckpt")]) == 2
    assert "sigma_rel must lie in (0, 0.2887)" in capsys.readouterr().err
    assert cli_main(["ema", str(tmp_path), "--sigma_rel", "0.1", "--out", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err
    assert "no post-hoc EMA snapshots in" in err and "PostHocEMASnapshots" in err
    assert cli_main(["ema", str(a), "--sigma_rel", "0.1", "--at_step", "7", "--out", str(tmp_path / "x.ckpt")]) == 2
    assert "no snapshot at step 7" in capsys.readouterr().err
    assert cli_main(["ema", str(a), "--sigma_rel", "0.1", "--out", str(a / "checkpoints/x.ckpt")]) == 2
    assert "where `fit --ckpt_path last` would resume" in capsys.readouterr().err
    assert not (tmp_path / "x.ckpt").exists()
    with pytest.raises(ValueError, match="sigma_rels must be distinct"):
        from lit_diffusion.training.posthoc_ema import PostHocEMASnapshots
        PostHocEMASnapshots(sigma_rels=[0.05, 0.05])


def test_switching_snapshots_on_in_a_resumed_run_is_refused(tmp_path, digits_shards, capsys):
    """The profiles average from step 0: a resume that starts them later would reconstruct the wrong EMA."""
    assert fit(tmp_path, digits_shards, "--trainer.max_steps", "2", snapshots=False) == 0
    assert fit(tmp_path, digits_shards, "--trainer.max_steps", "4", "--ckpt_path", "last") == 1
    err = capsys.readouterr().err
    assert "resumes at step 2 from a checkpoint without post-hoc EMA state" in err and "start a new run" in err
    assert not (tmp_path / "ema_snapshots").exists() or not list((tmp_path / "ema_snapshots").iterdir())
