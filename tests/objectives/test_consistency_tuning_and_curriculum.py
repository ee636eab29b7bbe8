"""ECT (ConsistencyTuning): dt schedule, closed form, tuning a flow-matching model in a plain loop, checkpoint
errors; iCT's curriculum follows the run's progress or a plain loop's own steps."""
from __future__ import annotations

import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.contract import PathCoefficients, Prediction
from lit_diffusion.objectives import ConsistencyCurriculum, ConsistencyTraining, FlowMatching
from lit_diffusion.objectives.consistency_tuning import ConsistencyTuning
from lit_diffusion.objectives.flow_map_oracle import GaussianFlowMap

MEAN, STD = torch.tensor([1.0, -0.5], dtype=torch.float64), torch.tensor([0.5, 2.0], dtype=torch.float64)


def data(n, g):
    return (MEAN + STD * torch.randn(n, 2, generator=g, dtype=torch.float64)).float()


def test_dt_schedule_starts_at_denoising_and_shrinks_by_stage():
    obj = ConsistencyTuning(stage_steps=10)
    r, t = obj.sample_pairs(4000, torch.Generator().manual_seed(0))
    assert bool((r == 0).all()) and bool((t > 0).all())  # stage 0: plain denoising
    gaps = []
    for progress in (0.2, 0.5, 0.99):
        obj.set_training_step(0, progress=progress)
        r, t = obj.sample_pairs(4000, torch.Generator().manual_seed(0))
        assert bool((r <= t).all())
        gaps.append(float((obj.path.noise_ratio(t) - obj.path.noise_ratio(r)).median()))
    assert gaps[0] > gaps[1] > gaps[2] > 0
    plain = ConsistencyTuning(stage_steps=2)
    for _ in range(4):
        plain.loss(MLP(2, 8, 1), torch.randn(3, 2))
    assert plain.stage() == 2  # counts its own loss calls in a plain loop


def test_exact_consistency_function_beats_a_perturbed_one():
    obj = ConsistencyTuning(stages=4)
    obj.set_training_step(0, progress=0.9)
    oracle = GaussianFlowMap(MEAN, STD, obj.path)

    def exact(x, t, cond=None, scale=1.0):
        c = PathCoefficients.at(obj.path, t, x)
        f = scale * oracle.flow(x, t, torch.zeros_like(t))
        return obj.parameterisation.target(Prediction(f, (x - c.alpha * f) / c.sigma), x, c)

    x0 = data(8192, torch.Generator().manual_seed(1)).double()
    loss = {s: float(obj.loss(lambda x, t, c=None: exact(x, t, c, s), x0, generator=torch.Generator().manual_seed(2)).mean())
            for s in (1.0, 1.1)}
    assert loss[1.0] < loss[1.1]


def test_tuning_a_flow_matching_model_improves_its_one_step_samples():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    net, fm = MLP(2, 64, 2), FlowMatching()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        loss = fm.loss(net, data(256, g), generator=g).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    noise = torch.randn(4000, 2, generator=torch.Generator().manual_seed(9))

    def error(x):
        return float((x.mean(0).double() - MEAN).abs().sum() + (x.std(0).double() - STD).abs().sum())

    before = error(fm.sample(net, noise, sampler="euler", nfe=1))
    student = MLP(2, 64, 2)
    ConsistencyTuning.load_pretrained(student, net.state_dict())
    ect = ConsistencyTuning(base=fm, stage_steps=50)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)
    for _ in range(200):
        loss = ect.loss(student, data(256, g), generator=g).mean()
        opt.zero_grad(); loss.backward(); opt.step()
    assert error(ect.sample(student, noise)) < before  # 1 step, default sampler


def test_wrong_checkpoint_is_named():
    with pytest.raises(ValueError, match="does not fit MLP.*wrong shapes"):
        ConsistencyTuning.load_pretrained(MLP(2, 32, 1), MLP(2, 64, 1).state_dict())


def test_ict_curriculum_follows_progress_steps_or_total():
    cur = ConsistencyCurriculum(s0=10, s1=80)  # 4 stages
    assert [cur.num_scales(0, p) for p in (0.0, 0.3, 0.6, 0.99, 1.0)] == [11, 21, 41, 81, 81]
    assert cur.num_scales(2500) == 41  # plain loop: one doubling per 1000 steps
    assert ConsistencyCurriculum(total_steps=400, s0=10, s1=80).num_scales(250) == 41
    obj = ConsistencyTraining(curriculum=cur)
    for _ in range(3):
        obj.loss(MLP(2, 8, 1), torch.randn(4, 2))
    assert obj.current_step() == 3
    obj.set_training_step(7, progress=0.5)
    assert obj.current_step() == 7 and obj.progress == 0.5
