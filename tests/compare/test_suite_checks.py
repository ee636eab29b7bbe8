"""Issue 30: what a suite needs is checked when it is loaded (item 10), a run's composed fit config is compared
key by key with the one it trained from (item 7), a stop signal's checkpoint is not one the run keeps (item 6),
and a torn cache reads as missing (item 5). The same faults through the CLI: tests/faults/test_compare_round_two.py."""
import logging
from pathlib import Path

import pytest
import yaml

from lit_diffusion.compare.json_files import read_cache, write_json_atomic
from lit_diffusion.compare.run_config import changed_keys
from lit_diffusion.compare.suite import SuiteError, load_suite
from lit_diffusion.runs import RunDirectory

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"


def suite_file(tmp_path, **evaluation) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump({
        "name": "checks", "out": str(tmp_path / "out"), "shards": str(tmp_path / "shards"),
        "base_config": str(EXPERIMENTS / "digits/dit.yaml"), "evaluation": evaluation,
        "objectives": [{"name": "fm", "config": str(EXPERIMENTS / "objectives/flow_matching.yaml"),
                        "samplers": {"euler": [2]}}]}))
    return path


@pytest.mark.parametrize("evaluation, message", [
    ({"num_samples": 5}, "evaluation.num_samples must be >= 10 (the inception score cuts"),  # the default metrics
    ({"num_samples": 3, "metrics": ["fd", "precision"]}, "evaluation.num_samples must be >= 4 (precision's k=3"),
    ({"num_samples": 64, "curve_samples": 9, "metrics": ["is"]}, "evaluation.curve_samples must be >= 10"),
    ({"batch_size": 0}, "evaluation.batch_size must be >= 1"),
    ({"ema_sweep": [0.1, 0.3]}, "evaluation.ema_sweep[1]: EMA: sigma_rel must lie in (0, 0.2887), got 0.3"),
])
def test_what_the_evaluation_needs_is_checked_when_the_suite_loads(tmp_path, evaluation, message):
    path = suite_file(tmp_path, **evaluation)
    with pytest.raises(SuiteError) as error:
        load_suite(path)
    assert str(error.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize("evaluation", [
    {"num_samples": 10},
    {"num_samples": 2, "curve_samples": 2, "metrics": ["fd", "kid"]},
    {"num_samples": 64, "curve_samples": 2, "curve_points": 0, "metrics": ["is"]},  # no curve: its count is unused
    {"num_samples": 64, "curve_samples": 2, "metrics": ["fd", "is"]},  # the curve scores the first metric alone
    {"ema_sweep": [0.05, 0.28]},
])
def test_evaluations_that_can_run_load(tmp_path, evaluation):
    load_suite(suite_file(tmp_path, **evaluation))


def composed(out: str, lr: float = 1e-3, max_images: int = 768, every: int = 6, **extra) -> dict:
    return {"trainer": {"default_root_dir": f"{out}/runs/fm-seed0", "max_time": None, "accelerator": "cpu",
                        "callbacks": [{"class_path": "PostHocEMASnapshots", "init_args": {"every_n_steps": every}}]},
            "model": {"lr": lr, "max_images": max_images, "init_from": f"{out}/runs/fm-seed0/checkpoints/x.ckpt"},
            "data": {"train_shards": "/data/digits"}, "checkpoint_every_n_steps": every, **extra}


def test_a_changed_fit_config_is_told_key_by_key_and_the_budget_is_not_a_change():
    assert changed_keys(composed("/a"), composed("/a", lr=5e-3), "/a", "/a") == ["model.lr: 0.001 -> 0.005"]
    # raising the budget trains a finished run further; its checkpoint spacing and snapshots follow the budget
    assert changed_keys(composed("/a"), composed("/a", max_images=1536, every=12), "/a", "/a") == []
    assert changed_keys(composed("/a"), composed("/moved"), "/a", "/moved") == []  # a moved suite folder
    assert changed_keys(composed("/a"), composed("/a", new_option=1), "/a", "/a") == []  # a newer code's option
    changed = composed("/a")
    changed["data"]["train_shards"] = "/data/other"
    assert changed_keys(composed("/a"), changed, "/a", "/a") == ["data.train_shards: '/data/digits' -> '/data/other'"]


def test_a_stop_signals_checkpoint_is_not_one_the_run_keeps(tmp_path):
    run = RunDirectory(tmp_path)
    run.checkpoints.mkdir()
    for name in ("epoch=0-step=6.ckpt", "epoch=0-step=12.ckpt", "preempted.ckpt", "last.ckpt"):
        (run.checkpoints / name).write_bytes(b"")
    assert [p.name for p in run.kept_checkpoints()] == ["epoch=0-step=12.ckpt", "epoch=0-step=6.ckpt", "last.ckpt"]
    assert RunDirectory(tmp_path / "none").kept_checkpoints() == []


def test_a_torn_cache_reads_as_missing_with_one_warning_naming_it(tmp_path, caplog):
    path = tmp_path / "eval.json"
    write_json_atomic({"euler@2/32": {"fd": 1.5}}, path)
    assert read_cache(path) == {"euler@2/32": {"fd": 1.5}} and [p.name for p in tmp_path.iterdir()] == ["eval.json"]
    for torn in ("", '{"euler@2/32": {"fd": 1.', "[1, 2]"):
        path.write_text(torn)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="lit_diffusion.compare"):
            assert read_cache(path) == {}
        assert len(caplog.records) == 1 and str(path) in caplog.records[0].getMessage()
    assert read_cache(tmp_path / "missing.json") == {}
