"""Progressive distillation (Salimans & Ho 2022, Alg. 2) against the closed form, on Gaussian data and the cosine
VP path, where the PF-ODE flow map Phi is exact (objectives/flow_map_oracle.py).

What holds exactly: a teacher whose DDIM steps of size h are exact flow-map steps (its x0 'prediction' is the
flow map read through DDIM, x_h(z, t) = (Phi_{t->t-h}(z) - (sigma_{t-h} / sigma_t) z) / (alpha_{t-h} -
(sigma_{t-h} / sigma_t) alpha_t)) makes the student's target x~ the same reading at 2h: the exact flow map is the
fixed point of every round, and the 1-step student of the chain samples the data distribution exactly. The exact
denoiser E[x0 | z_t] is that fixed point only in the limit of small steps: its DDIM is first order, so x~ from
a teacher of 2N exact-denoiser DDIM steps approaches the flow map's reading at rate 1/N."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_diffusion.cli import main as cli_main
from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives import DDPM, GaussianMixture, ProgressiveDistillation, oracle_network
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap
from lit_diffusion.objectives.paths import VPCosinePath
from lit_diffusion.runs import read_record

MEAN, STD = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)
PATH = VPCosinePath()
ORACLE = GaussianFlowMap(MEAN, STD, PATH)
TEACHER = DDPM(prediction="v", schedule="cosine", discrete=False)  # v on the same cosine path


def flow_map_x0(z, t, h):
    """The x0 with which one DDIM step t -> t - h is the exact flow-map step."""
    s = (t - h).clamp_min(0.0)
    c, cs = PathCoefficients.at(PATH, t, z), PathCoefficients.at(PATH, s, z)
    ratio = cs.sigma / c.sigma
    return (ORACLE.flow(z, t, s) - ratio * z) / (cs.alpha - ratio * c.alpha)


def exact_step_net(h):
    """A v-prediction 'network' whose DDIM steps of size h are exact."""
    def net(z, t, cond=None):
        t = t.expand(z.shape[0]) if t.ndim == 0 else t
        c = PathCoefficients.at(PATH, t, z)
        x0 = flow_map_x0(z, t, h)
        return TEACHER.parameterisation.target(Prediction(x0, (z - c.alpha * x0) / c.sigma), z, c)
    return net


def batch(obj, n=1024, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = obj.time_sampler.sample(n, obj.path, generator=g).double()
    x0 = MEAN + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)
    c = PathCoefficients.at(PATH, t, x0)
    return c.alpha * x0 + c.sigma * torch.randn(n, 2, generator=g, dtype=torch.float64), t


@pytest.mark.parametrize("student_steps", [1, 2, 4])
def test_the_exact_flow_map_is_the_fixed_point_of_a_round(student_steps):
    obj = ProgressiveDistillation(TEACHER, torch.nn.Identity(), 2 * student_steps)
    obj.teacher_net = exact_step_net(0.5 / student_steps)
    z, t = batch(obj)
    assert set(t.tolist()) == {i / student_steps for i in range(1, student_steps + 1)}
    target = obj.distillation_target(z, t)
    torch.testing.assert_close(target, flow_map_x0(z, t, 1.0 / student_steps), atol=1e-8, rtol=0)
    # one student DDIM step with x~ lands where the teacher's two steps land (Alg. 2's definition of x~)
    c, c2 = PathCoefficients.at(PATH, t, z), PathCoefficients.at(PATH, t - 1.0 / student_steps, z)
    one = c2.alpha * target + c2.sigma * (z - c.alpha * target) / c.sigma
    torch.testing.assert_close(one, ORACLE.flow(z, t, t - 1.0 / student_steps), atol=1e-8, rtol=0)


def test_the_loss_vanishes_at_the_fixed_point_and_not_elsewhere():
    obj = ProgressiveDistillation(TEACHER, torch.nn.Identity(), 4)
    obj.teacher_net = exact_step_net(0.25)
    x0 = MEAN + STD * torch.randn(2048, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = obj.loss(exact_step_net(0.5), x0, generator=torch.Generator().manual_seed(2))
    wrong = obj.loss(exact_step_net(0.25), x0, generator=torch.Generator().manual_seed(2))  # the teacher itself
    assert float(exact.max()) < 1e-12 and float(wrong.mean()) > 1e-4


def test_a_chain_of_exact_rounds_samples_the_data_in_one_step():
    """Each round's exact student is the next round's teacher; the last one samples in one DDIM step."""
    n = 20_000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    for student_steps in (4, 2, 1):
        obj = ProgressiveDistillation(TEACHER, torch.nn.Identity(), 2 * student_steps)
        out = obj.sample_with_info(exact_step_net(1.0 / student_steps), noise)  # its defaults: ddim, N steps
        assert out.nfe == student_steps == obj.default_nfe
        ones = torch.ones(n, dtype=torch.float64)
        torch.testing.assert_close(out.x0, ORACLE.flow(noise * float(PATH.sigma(ones[:1])), ones, 0 * ones),
                                   atol=1e-8, rtol=0)
    torch.testing.assert_close(out.x0.mean(0), MEAN, atol=4 * float(STD.max()) / n**0.5, rtol=0)
    torch.testing.assert_close(out.x0.std(0), STD, atol=0.0, rtol=0.03)


def test_an_exact_denoiser_teacher_reaches_the_fixed_point_at_first_order():
    mixture = GaussianMixture(MEAN[None], torch.diag(STD**2)[None])
    errors = []
    for student_steps in (16, 32, 64):
        obj = ProgressiveDistillation(TEACHER, oracle_network(mixture, TEACHER), 2 * student_steps)
        z, t = batch(obj, 512)
        errors.append(float((obj.distillation_target(z, t) - flow_map_x0(z, t, 1.0 / student_steps)).abs().mean()))
    assert 1.6 < errors[0] / errors[1] < 2.4 and 1.6 < errors[1] / errors[2] < 2.4, errors


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="teacher_steps must be an even integer >= 2"):
        ProgressiveDistillation(TEACHER, torch.nn.Identity(), 3)
    with pytest.raises(TypeError, match="teacher must be a lit_diffusion objective"):
        ProgressiveDistillation("ddpm", torch.nn.Identity(), 4)


# -- through the real CLI: a tiny DDPM (v, cosine) teacher on the digits, one round from its checkpoint and weights
# (2 teacher DDIM steps -> 1), sampled at the student's step count by default, each run's images counted in its
# checkpoint; and a bad teacher_steps as one line, no traceback.
REPO = Path(__file__).resolve().parents[2]
EXPERIMENTS = REPO / "experiments"


def fit_args(shards, root, objective, *extra):
    return ["fit", "-c", str(EXPERIMENTS / "digits/dit.yaml"), "-c", str(EXPERIMENTS / f"objectives/{objective}.yaml"),
            "--data.train_shards", str(shards), "--data.batch_size", "8", "--data.num_workers", "0",
            "--model.max_images", "16", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
            "--preview_every_n_steps", "0", *extra]


def test_a_round_from_a_teacher_checkpoint_and_a_bad_step_count(digits_shards, tmp_path, capsys):
    assert cli_main(fit_args(digits_shards, tmp_path / "teacher", "ddpm_v")) == 0
    teacher = tmp_path / "teacher" / "checkpoints" / "last.ckpt"
    round_args = ("--model.init_from", str(teacher), "--model.objective.init_args.teacher_checkpoint", str(teacher))
    assert cli_main(fit_args(digits_shards, tmp_path / "round1", "progressive_distillation", *round_args,
                             "--model.objective.init_args.teacher_steps", "2")) == 0
    student = tmp_path / "round1" / "checkpoints" / "last.ckpt"
    assert read_record(teacher).images_seen == read_record(student).images_seen == 16
    capsys.readouterr()
    assert cli_main(["sample", "--ckpt", str(student), "--num", "2", "--out", str(tmp_path / "samples")]) == 0
    assert "(1 NFE, sampler ddim" in capsys.readouterr().out
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    args = fit_args(digits_shards, tmp_path / "bad", "progressive_distillation", *round_args,
                    "--model.objective.init_args.teacher_steps", "3")
    bad = subprocess.run([sys.executable, "-m", "lit_diffusion.cli", *args], capture_output=True, text=True, env=env,
                         cwd=REPO)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr, bad.stderr
    errors = [line for line in bad.stderr.splitlines() if "error" in line.lower()]
    assert errors and "teacher_steps must be an even integer >= 2" in errors[-1], bad.stderr
