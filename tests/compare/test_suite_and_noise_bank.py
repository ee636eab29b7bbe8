"""Suite files are checked before anything runs, and the noise bank gives each sample the same noise
whatever the batching or the number of ranks."""
from pathlib import Path

import pytest
import torch

from lit_diffusion.compare.noise_bank import NoiseBank
from lit_diffusion.compare.suite import SuiteError, load_suite

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def test_every_suite_under_experiments_loads():
    suites = sorted((EXPERIMENTS / "compare").glob("*.yaml"))
    assert suites
    for path in suites:
        suite = load_suite(path)
        assert Path(suite.base_config).is_file(), suite.base_config
        assert all(Path(o.config).is_file() for o in suite.objectives)

TUNE = ("name: x\nout: o\nbase_config: b\nshards: s\nbudget: {{max_images: 1000}}\nobjectives: [{{name: {first}, "
        "config: c, samplers: {{euler: [1]}}}}, {{name: b, config: c, samplers: {{consistency: [1]}}, tune_from: {tune}}}]\n")


@pytest.mark.parametrize("text,message", [
    ("name: x\nout: o\nbase_config: b\nshards: s\n", "missing key 'objectives'"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: [{name: a, config: c, samplers: {rk9: [1]}}]\n", "unknown sampler 'rk9'"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: [{name: a, config: c, samplers: {euler: [0]}}]\n", "NFEs >= 1"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\nbudgett: {}\n", "unknown keys \\['budgett'\\]"),
    ("name: [\n", "not valid YAML"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: [{name: a, config: c, samplers: {'heun:zigzag': [3]}}]\n",
     "samplers.heun:zigzag: unknown time grid 'zigzag'"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\nlauncher: slurm\nslurm: {gpus: 2}\n",
     "unknown slurm options \\['gpus'\\]"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\nlauncher: slurm\nslurm: {time: soon}\n",
     "slurm: --time: 'soon' is not a SLURM time"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\nbudget: {max_time: '5 min'}\n",
     "budget.max_time must be 'DD:HH:MM:SS'"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\nslurm: {max_parallel: 0}\n",
     "slurm.max_parallel must be an integer >= 1"),
    (TUNE.format(first="c", tune="{objective: a, images: 100}"), "'b': tune_from.objective 'a' must name an entry "
     "listed before it"),
    (TUNE.format(first="a", tune="flow_matching"), "tune_from must be \\{objective: NAME, images: N\\}"),
    (TUNE.format(first="a", tune="{objective: a, images: 1000}"), "tune_from.images must be between 0 and "
     "budget.max_images \\(1,000\\)"),
    (TUNE.format(first="a", tune="{objective: a, images: 100}").replace("max_images: 1000", "max_flops: 1.0e12"),
     "tune_from needs budget.max_images"),
    ("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: [{name: a, config: c, samplers: {euler: [1]}, "
     "tunefrom: a}]\n", "unknown keys \\['tunefrom'\\]"),
])
def test_bad_suites_name_the_key(tmp_path, text, message):
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert str(path) in str(error.value)


def test_noise_bank_is_independent_of_batching_and_ranks():
    bank = NoiseBank((1, 4, 4), size=10, seed=3, num_classes=3)
    whole = torch.cat([n for _, n, _ in bank.batches(10)])
    small = torch.cat([n for _, n, _ in bank.batches(3)])
    assert torch.equal(whole, small)
    by_rank = {}
    for rank in range(2):
        for idx, noise, labels in bank.batches(2, rank=rank, world_size=2):
            for i, n, y in zip(idx, noise, labels):
                by_rank[i] = (n, int(y))
    assert sorted(by_rank) == list(range(10))
    for i in range(10):
        assert torch.equal(by_rank[i][0], whole[i]) and by_rank[i][1] == i % 3
    assert not torch.equal(whole, torch.cat([n for _, n, _ in NoiseBank((1, 4, 4), 10, seed=4).batches(10)]))


@pytest.mark.parametrize("extra,message", [
    ("seeds: '12'\n", r"seeds must be a list of integers, e.g. \[0, 1, 2\], got '12'"),
    ("budget: {max_images: abc}\n", "budget.max_images must be an integer, got 'abc'"),
    ("evaluation: {num_samples: 1.5}\n", "evaluation.num_samples must be an integer, got 1.5"),
])
def test_suite_values_of_the_wrong_type_are_named(tmp_path, extra, message):
    path = tmp_path / "suite.yaml"
    path.write_text("name: x\nout: o\nbase_config: b\nshards: s\nobjectives: []\n" + extra)
    with pytest.raises(SuiteError, match=message):
        load_suite(path)


MINIMAL = "name: x\nout: o\nbase_config: b\nshards: s\nobjectives: [{name: a, config: c, samplers: {euler: [1]}}]\n"


def test_defaults_are_the_dataclasses_and_empty_sections_mean_them(tmp_path):
    from lit_diffusion.compare.suite import DEFAULT_MAX_IMAGES, Evaluation, SuiteBudget

    path = tmp_path / "suite.yaml"
    for text in (MINIMAL, MINIMAL + "budget:\nevaluation: {}\nslurm:\n"):
        path.write_text(text)
        suite = load_suite(path)
        assert suite.budget == SuiteBudget() and suite.evaluation == Evaluation() and suite.seeds == [0]
        assert suite.max_images == DEFAULT_MAX_IMAGES and suite.num_samples == Evaluation.num_samples
        assert suite.metrics is None and suite.slurm.job_name == "compare-x" and suite.source == str(path)
    path.write_text(MINIMAL + "evaluation: {metrics: [fd, fd_dinov2], num_samples: 64}\nslurm: {max_parallel: 2}\n")
    suite = load_suite(path)
    assert suite.metrics == ["fd", "fd_dinov2"] and suite.num_samples == 64 and suite.max_parallel == 2


def test_a_suite_is_frozen_and_budget_resolution_makes_a_new_one(tmp_path, monkeypatch):
    import dataclasses

    from lit_diffusion.compare import compute

    path = tmp_path / "suite.yaml"
    path.write_text(MINIMAL.replace("out: o", f"out: {tmp_path / 'out'}") + "budget: {max_flops: 1.0e12}\n")
    suite = load_suite(path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        suite.name = "y"
    with pytest.raises(SuiteError, match="'a' has no image budget yet"):
        suite.max_images_for("a")
    monkeypatch.setattr(compute, "measure_step_cost", lambda s, e: compute.StepCost(4.0e9, 64))
    resolved, costs = compute.resolve_budgets(suite, log=lambda line: None)
    assert resolved.max_images_for("a") == 16_000 and costs["a"].flops_per_step == 4.0e9
    assert suite.objective_images == {} and resolved.objectives == suite.objectives


@pytest.mark.parametrize("extra,message", [
    ("  - {name: b, config: c, samplers: {euler: [1]}, overrides: [--a, 1]}\n",
     'objectives\\[1\\]: overrides must be a list of strings \\(quote numbers: "0"\\), got \\[\'--a\', 1\\]'),
    ("  - {name: b, config: c, samplers: {euler: 4}}\n",
     "objectives\\[1\\]: samplers must be a mapping of strings to lists of integers, got \\{'euler': 4\\}"),
    ("  - {name: b, samplers: {euler: [4]}}\n", "objectives\\[1\\]: missing key 'config'"),
    ("  - 3\n",
     "objectives\\[1\\]: must be a mapping of \\['config', 'name', 'overrides', 'samplers', 'tune_from'\\], got 3"),
])
def test_an_entry_s_error_names_its_index(tmp_path, extra, message):
    path = tmp_path / "suite.yaml"
    path.write_text(MINIMAL.replace("objectives: [{name: a, config: c, samplers: {euler: [1]}}]\n",
                                    "objectives:\n  - {name: a, config: c, samplers: {euler: [1]}}\n") + extra)
    with pytest.raises(SuiteError, match=message) as error:
        load_suite(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)
