"""Compute accounting: the FLOP probe counts each objective's whole training step (teacher and JVP included),
a budget in FLOPs becomes each objective's image budget, and a backbone the counter cannot see fails a FLOP
budget with a message that says so."""
import math

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from lit_diffusion.backbones.mlp import MLP
from lit_diffusion.cli import main as cli_main
from lit_diffusion.compare.compute import FlopsUnmeasurable, StepCost, images_for_flops
from lit_diffusion.training.flops import step_flops
from lit_diffusion.objectives.consistency_distillation import ConsistencyDistillation
from lit_diffusion.objectives.consistency_training import ConsistencyTraining
from lit_diffusion.objectives.flow_matching import FlowMatching
from lit_diffusion.objectives.mean_flow import MeanFlow
from lit_diffusion.training.module import DiffusionModule

BATCH = {"x": torch.randn(32, 2)}


def forward_flops(net, r: bool = False) -> float:
    """FLOPs of one forward of the backbone on the batch (with the second time r when asked)."""
    x = BATCH["x"]
    t = torch.rand(x.shape[0])
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(x, t, r=t) if r else net(x, t)
    return float(counter.get_total_flops())


def probe(objective, net) -> float:
    """The module's own training-step probe, counted as the training log and the compare count it."""
    return step_flops(DiffusionModule(net, objective), BATCH)


def test_probe_counts_the_whole_step_of_each_objective():
    torch.manual_seed(0)
    net = MLP(dim=2, width=64, depth=2)
    f = forward_flops(net)
    fm = probe(FlowMatching(), net)
    # forward (F) + backward (2F: the gradients of the activations and of the weights, less the input gradients
    # of the first layers, whose inputs need none: a few % on this net)
    assert 2.85 * f <= fm <= 3 * f
    ct = probe(ConsistencyTraining(), net)
    assert ct - fm == pytest.approx(f, rel=1e-9)  # + the target's forward without gradient
    cd = probe(ConsistencyDistillation(FlowMatching(), MLP(dim=2, width=64, depth=2), teacher_sampler="heun"), net)
    assert cd - ct == pytest.approx(2 * f, rel=1e-9)  # + the teacher's Heun step: two forwards of the teacher
    euler = probe(ConsistencyDistillation(FlowMatching(), MLP(dim=2, width=64, depth=2), teacher_sampler="euler"), net)
    assert euler - ct == pytest.approx(f, rel=1e-9)  # Euler: one teacher forward
    wide_teacher = MLP(dim=2, width=128, depth=2)  # the teacher's own size counts, not the student's
    wide = probe(ConsistencyDistillation(FlowMatching(), wide_teacher, teacher_sampler="euler"), net)
    assert wide - ct == pytest.approx(forward_flops(wide_teacher), rel=1e-9)


def test_probe_counts_meanflow_s_jvp():
    torch.manual_seed(0)
    net = MLP(dim=2, width=64, depth=2, second_time=True)
    f = forward_flops(net, r=True)
    # torch.func.jvp on this MLP: the primal forward (F) and the tangent pass, which torch runs as two products
    # per matrix product (2F; measured on a bare Linear-SiLU-Linear: exactly 3F for jvp alone)
    x = BATCH["x"]
    t = torch.rand(x.shape[0])
    with FlopCounterMode(display=False) as counter:
        torch.func.jvp(lambda a, b: net(a, b, r=b), (x, t), (torch.ones_like(x), torch.ones_like(t)))
    jvp = counter.get_total_flops()
    assert jvp == pytest.approx(3 * f, rel=0.02)
    mf = probe(MeanFlow(), net)
    # the JVP (3F) + the backward through the primal output u (2F less the input gradients of the first layers)
    assert jvp + 1.7 * f <= mf <= jvp + 2 * f
    plain = probe(FlowMatching(), net)  # no JVP: forward + backward only
    assert mf - plain >= 1.9 * f


def test_flop_budget_becomes_images_per_objective():
    cheap, dear = StepCost(flops_per_step=3.0e9, batch_size=64), StepCost(flops_per_step=4.0e9, batch_size=64)
    assert images_for_flops(1.2e12, cheap, "fm") == math.floor(1.2e12 / (3.0e9 / 64)) == 25_600
    assert images_for_flops(1.2e12, dear, "ct") == 19_200  # 4/3 the cost per image: 3/4 the images
    with pytest.raises(FlopsUnmeasurable, match="counted 0 FLOPs .* 'x'.*Give the suite budget.max_images"):
        images_for_flops(1.2e12, StepCost(0.0, 64), "x")


def test_budget_keys_are_checked(tmp_path):
    from lit_diffusion.compare.suite import SuiteError, load_suite

    base = {"name": "b", "out": "o", "base_config": "c.yaml", "shards": "s",
            "objectives": [{"name": "fm", "config": "f.yaml", "samplers": {"euler": [1]}}]}
    for budget, message in [({"max_images": 10, "max_flops": 1e9}, "not both"),
                            ({"max_flops": "lots"}, "max_flops must be a number"),
                            ({"max_flops": -1.0}, "max_flops must be a positive number"),
                            ({"max_steps": 3}, "unknown budget keys")]:
        path = tmp_path / "suite.yaml"
        path.write_text(yaml.safe_dump(base | {"budget": budget}))
        with pytest.raises(SuiteError, match=message):
            load_suite(path)
    path.write_text(yaml.safe_dump(base | {"budget": {"max_flops": "2e13"}}))  # YAML reads 2e13 as a string
    suite = load_suite(path)
    assert suite.max_flops == 2e13 and suite.budget_text == "2e+13 training FLOPs per run"


def test_flop_budget_on_an_unmeasurable_backbone_fails_through_the_cli(tmp_path, digits_shards, capsys):
    config = {"trainer": {"accelerator": "cpu", "devices": 1},
              "model": {"backbone": {"class_path": "uncounted_backbone.ElementwiseNet"},
                        "objective": {"class_path": "lit_diffusion.objectives.FlowMatching"}},
              "data": {"train_shards": str(digits_shards), "batch_size": 16, "num_workers": 0}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "fm.yaml").write_text("model:\n  objective:\n    class_path: lit_diffusion.objectives.FlowMatching\n")
    suite = {"name": "uncounted", "out": str(tmp_path / "out"), "shards": str(digits_shards),
             "base_config": str(tmp_path / "base.yaml"), "budget": {"max_flops": 1.0e12},
             "objectives": [{"name": "fm", "config": str(tmp_path / "fm.yaml"), "samplers": {"euler": [1]}}]}
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    assert cli_main(["compare", "-c", str(tmp_path / "suite.yaml")]) == 1
    err = capsys.readouterr().err
    assert "counted 0 FLOPs in a training step of 'fm'" in err and "budget.max_images or budget.max_time" in err
    assert not (tmp_path / "out/runs").exists()  # nothing was trained
