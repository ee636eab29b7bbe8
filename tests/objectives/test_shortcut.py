"""Shortcut models (Frans et al. 2024) against the closed form: for Gaussian data the PF-ODE flow map is known
(objectives/flow_map_oracle.py), so the exact shortcut network is s*(z, t, d) = (z - Phi_{t->t-d}(z)) / d, the
average velocity over [t - d, t]. Two exact half steps compose to one exact step, so s* is a fixed point of the
self-consistency target; the one exception is the smallest level, whose half steps are flow-matching (d = 0) steps
(two Euler steps of the exact velocity)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_diffusion.cli import main as cli_main
from lit_diffusion.objectives import ShortcutModel, make_objective
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap
from lit_diffusion.objectives.paths import LinearPath
from lit_diffusion.samplers import sample_shortcut, time_grid

MEAN, STD = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
ORACLE = GaussianFlowMap(MEAN, STD, LinearPath())


def exact_shortcut_net(z, t, cond=None, r=None):
    """s*(z, t, d) with d the network's step input r (0: the instantaneous velocity)."""
    t = t.expand(z.shape[0]) if t.ndim == 0 else t
    return ORACLE.average_velocity(z, t - r, t)


def perturbed(z, t, cond=None, r=None):
    return 1.05 * exact_shortcut_net(z, t, cond, r) + 0.02 * r.reshape(-1, 1)


def consistency_batch(obj, n=2048, seed=0):
    g = torch.Generator().manual_seed(seed)
    t, d = obj.sample_steps(n, g)
    x0 = MEAN + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)
    z = (1 - t)[:, None] * x0 + t[:, None] * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return z, t, d


def test_the_exact_flow_map_is_a_fixed_point_of_the_self_consistency_target():
    obj = ShortcutModel(max_steps=16)
    z, t, d = consistency_batch(obj)
    assert set(d.tolist()) == {2 / 16, 4 / 16, 8 / 16, 1.0} and bool((t - d >= -1e-12).all() and (t <= 1).all())
    target = obj.consistency_target(exact_shortcut_net, z, t, d, None)
    exact = ORACLE.average_velocity(z, t - d, t)  # one exact step of size d
    above = d > 2 / 16  # half steps of at least 2/M: network steps, exact
    assert float((target - exact)[above].abs().max()) < 1e-10
    # at d = 2/M the half steps are flow-matching steps: two Euler steps of the exact velocity, O(d) off the flow
    h, zb, tb = d[~above] / 2, z[~above], t[~above]
    v1 = ORACLE.velocity(zb, tb)
    two_euler = (v1 + ORACLE.velocity(zb - h[:, None] * v1, tb - h)) / 2
    torch.testing.assert_close(target[~above], two_euler, atol=1e-12, rtol=0)
    assert float((target - exact)[~above].abs().max()) > 1e-2
    off = obj.consistency_target(perturbed, z, t, d, None)
    assert float((off - exact)[above].abs().max()) > 1e-2


def test_the_loss_of_the_consistency_part_vanishes_only_at_the_exact_network():
    # consistency_fraction close to 1: the loss is (nearly) the consistency part; its flow-matching rest is
    # the conditional velocity's irreducible variance, the same for both networks up to the perturbation
    obj = ShortcutModel(max_steps=8, consistency_fraction=0.99)
    x0 = MEAN + STD * torch.randn(1000, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = torch.randn(1000, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    exact = obj.loss(exact_shortcut_net, x0, generator=torch.Generator().manual_seed(3), noise=noise)
    off = obj.loss(perturbed, x0, generator=torch.Generator().manual_seed(3), noise=noise)
    consistency = slice(0, 990)
    t, d = obj.sample_steps(990, torch.Generator().manual_seed(3))  # the loss's first draw
    above = d > 2 / 8
    assert float(exact[consistency][above].max()) < 1e-18
    assert float(off[consistency][above].mean()) > 1e-5


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_sampling_with_the_exact_network_is_the_exact_flow_map(steps):
    obj, n = ShortcutModel(max_steps=8), 20_000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    out = obj.sample_with_info(exact_shortcut_net, noise, nfe=steps)
    assert out.nfe == steps
    ones = torch.ones(n, dtype=torch.float64)
    if steps == 8:  # d = 1/M is the flow-matching step: M Euler steps of the instantaneous velocity
        euler = obj.sample(exact_shortcut_net, noise, sampler="euler", nfe=8)
        torch.testing.assert_close(out.x0, euler, rtol=0, atol=1e-12)
        return
    torch.testing.assert_close(out.x0, ORACLE.flow(noise, ones, 0 * ones), rtol=0, atol=1e-10)
    torch.testing.assert_close(out.x0.mean(0), MEAN, atol=4 * float(STD.max()) / n**0.5, rtol=0)
    torch.testing.assert_close(out.x0.std(0), STD, atol=0.03, rtol=0.02)


@pytest.mark.parametrize("nfe", [3, 6, 16])
def test_a_step_count_the_model_was_not_trained_for_is_refused_by_name(nfe):
    with pytest.raises(ValueError, match=r"valid step counts: 1, 2, 4, 8 \(--nfe\)"):
        ShortcutModel(max_steps=8).sample(exact_shortcut_net, torch.randn(4, 2, dtype=torch.float64), nfe=nfe)


def test_every_ode_sampler_uses_the_instantaneous_velocity():
    obj = ShortcutModel(max_steps=8)
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ones = torch.ones(4000, dtype=torch.float64)
    exact = ORACLE.flow(noise, ones, 0 * ones)
    errors = [float((obj.sample(exact_shortcut_net, noise, sampler="euler", nfe=n) - exact).abs().max())
              for n in (64, 256)]
    assert errors[1] < 0.06 and 3.5 < errors[0] / errors[1] < 4.5, errors  # Euler's first order on the exact flow


def test_the_sampler_needs_a_step_conditioned_network_and_bad_settings_are_named():
    with pytest.raises(ValueError, match="ShortcutModel objective"):
        sample_shortcut(LinearPath(), None, torch.randn(2, 2), time_grid("uniform", 2, LinearPath()))
    with pytest.raises(ValueError, match="power of two"):
        make_objective("shortcut", max_steps=12)
    with pytest.raises(ValueError, match="grid 'uniform'"):
        ShortcutModel().sample(exact_shortcut_net, torch.randn(2, 2, dtype=torch.float64), nfe=2, grid="edm")


def test_a_backbone_without_the_step_size_input_is_named():
    from lit_diffusion.backbones import MLP
    with pytest.raises(ValueError, match="ShortcutModel needs a backbone with the second time input"):
        ShortcutModel().loss(MLP(2, 16, 1), torch.randn(8, 2))


def test_reported_nfe_is_the_number_of_network_calls():
    calls = []

    def counting(z, t, cond=None, r=None):
        calls.append(1)
        return exact_shortcut_net(z, t, cond, r)

    for steps in (1, 2, 4, 8):
        calls.clear()
        assert ShortcutModel(max_steps=8).sample_with_info(counting, torch.randn(4, 2, dtype=torch.float64),
                                                           nfe=steps).nfe == len(calls) == steps


# -- through the real CLI: a tiny fit on the digits, then `sample` at a step count it was trained for, and at one it
# was not (one line naming the valid step counts, no traceback).
REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def test_sampling_at_an_untrained_step_size_is_one_line_naming_the_valid_counts(digits_shards, tmp_path):
    root = tmp_path / "run"
    assert cli_main(["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / "objectives/shortcut.yaml"),
                     "--model.backbone.init_args.second_time", "true", "--model.objective.init_args.max_steps", "8",
                     "--data.train_shards", str(digits_shards), "--data.batch_size", "8", "--data.num_workers", "0",
                     "--model.max_images", "16", "--trainer.default_root_dir", str(root),
                     "--trainer.accelerator", "cpu", "--preview_every_n_steps", "0"]) == 0
    ckpt = root / "checkpoints" / "last.ckpt"
    assert cli_main(["sample", "--ckpt", str(ckpt), "--nfe", "4", "--num", "2", "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "samples.npz").is_file()
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    bad = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", "sample", "--ckpt", str(ckpt), "--nfe", "3",
                          "--num", "2", "--out", str(tmp_path / "bad")], capture_output=True, text=True, env=env, cwd=REPO)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    lines = [line for line in bad.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "3 steps" in lines[0] and "valid step counts: 1, 2, 4, 8" in lines[0], bad.stderr
