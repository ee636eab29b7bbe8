"""toy2d as a suite of typed entries over the objective registry, run in the one plain training loop."""
import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.compare.toy2d import ToyConfig, run
from lit_diffusion.compare.toy2d_suite import TOY_SUITE, ToyEntry, ToyNet
from lit_diffusion.objectives import OBJECTIVES, FlowMatching
from lit_diffusion.training.plain_loop import train_plain


def test_every_entry_names_a_registered_objective_and_bad_entries_are_refused():
    assert {e.objective for e in TOY_SUITE} <= set(OBJECTIVES)
    assert len({e.name for e in TOY_SUITE}) == len(TOY_SUITE)
    with pytest.raises(ValueError, match="unknown objective 'flow_match'"):
        ToyEntry("x", "flow_match", (("euler", 1),))
    with pytest.raises(ValueError, match="flow must be"):
        ToyEntry("x", "indm", (("euler", 1),), net=ToyNet(flow="realnvp"))


def test_the_plain_loop_trains_an_objective_from_its_public_api():
    mean = torch.tensor([0.5, -0.25])
    torch.manual_seed(0)
    net = MLP(2, 32, 2)
    objective, g0 = FlowMatching(), torch.Generator().manual_seed(5)
    noise = torch.randn(512, 2, generator=g0)
    before = float((objective.sample(net, noise, sampler="euler", nfe=8).mean(0) - mean).abs().sum())
    logs = []
    train_plain(objective, net, lambda g: (mean + 0.2 * torch.randn(128, 2, generator=g), None), steps=200, lr=3e-3,
                seed=0, log=logs.append)
    with torch.no_grad():
        after = float((objective.sample(net, noise, sampler="euler", nfe=8).mean(0) - mean).abs().sum())
    assert after < 0.5 * before and len(logs) == 4 and not net.training


def test_a_suite_of_its_own_entries_runs():
    suite = (ToyEntry("fm", "flow_matching", (("euler", 2),)),
             ToyEntry("ect", "consistency_tuning", (("consistency", 1),), lambda run: {"base": run.objectives["fm"]},
                      baseline="ect (init: fm)", tune_from="fm"))
    results = run(ToyConfig(steps=3, eval_samples=64, batch_size=16, indm=False), log=lambda line: None, suite=suite)
    assert list(results) == ["fm", "ect (init: fm)", "ect"]
    assert results["ect"]["pretraining_steps"] == 3 and set(results["ect"]["sw"]) == {"consistency@1"}
