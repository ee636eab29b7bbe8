"""Progressive distillation's rounds in a comparison suite (`tune_from: {..., teacher: true}`): the start checkpoint
is also the round's teacher, a chain of rounds counts every stage at its own FLOPs per image, and a `teacher: true`
on an objective that takes no teacher is one line. The checkpoints of the accounting tests are written as files
with the record fields alone (runs/record.py reads nothing else from them)."""
import json
from pathlib import Path

import pytest
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from lit_diffusion.cli import DEBUG_ENV, main as cli_main
from lit_diffusion.compare.compute import StepCost, module_from_fit_config, probe_batch
from lit_diffusion.compare.suite import load_suite
from lit_diffusion.compare.train import checkpoint_spacing, fit_config, record_training
from lit_diffusion.compare.tuning import pretraining
from lit_diffusion.runs import read_record
from lit_diffusion.training.config import TRAINER_DEFAULTS
from test_compare_end_to_end import EXPERIMENTS, write_suite

REPO = EXPERIMENTS.parent
DDPM = {"name": "ddpm", "config": str(EXPERIMENTS / "objectives/ddpm_v.yaml"), "samplers": {"ddim": [2]}}


def pd_round(name: str, source: str, images: int, teacher_steps: int) -> dict:
    return {"name": name, "config": str(EXPERIMENTS / "objectives/progressive_distillation.yaml"),
            "tune_from": {"objective": source, "images": images, "teacher": True},
            "overrides": ["--model.objective.init_args.teacher_steps", str(teacher_steps)],
            "samplers": {"ddim:uniform": [teacher_steps // 2]}}


def write_checkpoint(suite, objective: str, step: int, images: int, seconds: float, name: str | None = None) -> Path:
    """A checkpoint file of the run with the fields a record is made of (no weights: the accounting reads none)."""
    path = suite.run(objective, 0).checkpoints / (name or f"step={step}.ckpt")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"global_step": step, "images_seen": images, "train_seconds": seconds}, path)
    return path


def test_a_round_starts_from_its_teacher_and_distils_from_it(tmp_path):
    suite = write_suite(tmp_path, [DDPM, pd_round("pd", "ddpm", 128, 4)])
    # 32 images a step; the suite keeps checkpoints at steps 2, 4, 6: the start is the one at 128 images
    start = [write_checkpoint(suite, "ddpm", step, 32 * step, float(step)) for step in (2, 4, 6)][1]
    model = fit_config(suite, suite.objectives[1], 0)["model"]
    assert model["init_from"] == str(start)
    assert model["objective"]["init_args"]["teacher_checkpoint"] == str(start)
    assert model["objective"]["init_args"]["teacher_steps"] == 4  # the entry's override still applies
    assert model["max_images"] == 192 - 128
    # a tuned run without a teacher keeps the objective's own teacher_checkpoint (none here: ECT has none)
    ect = {"name": "ect", "config": str(EXPERIMENTS / "objectives/consistency_tuning.yaml"),
           "samplers": {"consistency": [1]}, "tune_from": {"objective": "ddpm", "images": 128}}
    tuned = write_suite(tmp_path, [DDPM, ect])
    plain = fit_config(tuned, tuned.objectives[1], 0)
    assert "teacher_checkpoint" not in (plain["model"]["objective"].get("init_args") or {})


def test_a_chain_of_rounds_charges_each_stage_at_its_own_rate(tmp_path):
    # ddpm (192 images) -> pd4 from ddpm's checkpoint at 64 images -> pd2 from pd4's at 64 + 64 = 128 in all
    suite = write_suite(tmp_path, [DDPM, pd_round("pd4", "ddpm", 64, 8), pd_round("pd2", "pd4", 128, 4)])
    write_checkpoint(suite, "ddpm", 2, 64, 10.0)
    write_checkpoint(suite, "ddpm", 4, 128, 20.0)
    write_checkpoint(suite, "pd4", 2, 64, 30.0)  # pd4's checkpoints count its own images: 64 of its 128
    write_checkpoint(suite, "pd4", 4, 128, 60.0)
    write_checkpoint(suite, "pd2", 2, 64, 50.0, name="last.ckpt")  # pd2 trains 192 - 128 = 64 images
    per_image = {"ddpm": 3.0e6, "pd4": 5.0e6, "pd2": 7.0e6}
    ddpm, pd4, pd2 = suite.objectives
    assert pretraining(suite, pd4, 0, per_image).checkpoint == str(suite.run("ddpm", 0).checkpoints / "step=2.ckpt")
    chain = pretraining(suite, pd2, 0, per_image)
    # pd4's checkpoint at 128 of its own images would be 192 in all, past tune_from.images = 128: the one at 64
    assert chain.checkpoint == str(suite.run("pd4", 0).checkpoints / "step=2.ckpt")
    assert (chain.images_seen, chain.steps, chain.seconds) == (64 + 64, 2 + 2, 10.0 + 30.0)
    assert chain.flops == pytest.approx(3.0e6 * 64 + 5.0e6 * 64)  # not 5e6 x 128: ddpm's images at ddpm's rate
    record = record_training(suite, pd2, 0, per_image)
    assert (record.images_seen, record.pretraining_images, record.steps) == (192, 128, 6)
    assert record.flops == pytest.approx(3.0e6 * 64 + 5.0e6 * 64 + 7.0e6 * 64)
    assert record.seconds == pytest.approx(10.0 + 30.0 + 50.0)


def test_the_mnist_suite_chains_its_rounds_on_kept_checkpoints():
    suite = load_suite(REPO / "experiments/compare/mnist.yaml")
    rounds = [e for e in suite.objectives if e.tune_from is not None and e.tune_from.teacher]
    assert [(e.name, e.tune_from.objective) for e in rounds] == [("pd4", "ddpm"), ("pd2", "pd4"), ("pd1", "pd2")]
    batch = int(suite.overrides[suite.overrides.index("--data.batch_size") + 1])
    log_every = TRAINER_DEFAULTS["log_every_n_steps"]
    start = {"ddpm": 0}  # images before each run's own training
    for entry in rounds:  # where each round's start falls: on a checkpoint its source keeps (train.checkpoint_spacing)
        own = suite.max_images - start[entry.tune_from.objective]
        steps = -(-own // batch)
        every = checkpoint_spacing(suite, own, batch, log_every)["checkpoint_every_n_steps"]
        kept = {start[entry.tune_from.objective] + min(s * batch, own) for s in [*range(every, steps, every), steps]}
        assert entry.tune_from.images in kept, (entry.name, sorted(kept))
        start[entry.name] = entry.tune_from.images
        teacher_steps = int(entry.overrides[entry.overrides.index("--model.objective.init_args.teacher_steps") + 1])
        assert entry.samplers == {"ddim:uniform": [teacher_steps // 2]}  # the student's own steps


def test_teacher_true_on_an_objective_without_a_teacher_is_one_line(tmp_path, capsys, monkeypatch):
    ect = {"name": "ect", "config": str(EXPERIMENTS / "objectives/consistency_tuning.yaml"),
           "samplers": {"consistency": [1]}, "tune_from": {"objective": "ddpm", "images": 128, "teacher": True}}
    suite = {"name": "bad", "out": str(tmp_path / "out"), "shards": str(tmp_path / "none"),
             "base_config": str(EXPERIMENTS / "digits/dit.yaml"), "budget": {"max_images": 192},
             "objectives": [DDPM, ect]}
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    monkeypatch.delenv(DEBUG_ENV, raising=False)
    assert cli_main(["compare", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("lit-diffusion compare")]
    assert len(lines) == 1, err  # and the house's pointer to --debug for the traceback
    assert "objectives[1] ('ect'): tune_from.teacher" in lines[0] and "no teacher_checkpoint argument" in lines[0]
    assert "progressive_distillation.yaml" in lines[0]  # what to use instead
    assert not (tmp_path / "out").exists()  # refused before anything ran

@pytest.mark.slow
def test_a_distillation_round_trains_and_is_reported(tmp_path):
    suite = write_suite(tmp_path, [DDPM, pd_round("pd", "ddpm", 128, 4)])  # 6 steps of 32; ddpm keeps 2, 4, 6
    assert cli_main(["compare", "-c", suite.source]) == 0
    ddpm_run, pd_run = suite.run("ddpm", 0), suite.run("pd", 0)
    start = str(next(p for p in ddpm_run.kept_checkpoints() if read_record(p).global_step == 4))
    trained = yaml.safe_load(pd_run.fit_config.read_text())["model"]
    assert trained["init_from"] == start and trained["objective"]["init_args"]["teacher_checkpoint"] == start
    last = torch.load(pd_run.last_checkpoint, weights_only=False)
    assert (last["images_seen"], last["global_step"]) == (64, 2)
    # the round's step was probed with its teacher: two teacher forwards more than ddpm's step (same backbone,
    # same batch; one student forward and backward each), F measured alone on the probe batch
    costs = {k: StepCost(**v) for k, v in json.loads((tmp_path / "out/compute.json").read_text()).items()}
    module = module_from_fit_config(fit_config(suite, suite.objectives[0], 0, max_images=192))
    batch = probe_batch(suite.shards, costs["ddpm"].batch_size, conditional=bool(module.conditional))
    with FlopCounterMode(display=False) as forward, torch.no_grad():
        module.backbone(batch["x"], torch.full((batch["x"].shape[0],), 0.5), batch.get("label"))
    assert costs["pd"].flops_per_step - costs["ddpm"].flops_per_step == pytest.approx(2 * forward.get_total_flops())
    assert costs["pd"].flops_per_image > costs["ddpm"].flops_per_image
    record = json.loads(pd_run.train_record.read_text())
    assert (record["images_seen"], record["pretraining_images"], record["steps"]) == (192, 128, 6)
    assert record["flops"] == pytest.approx(costs["pd"].flops_per_image * 64 + costs["ddpm"].flops_per_image * 128)
    text = (tmp_path / "out/report.md").read_text()
    assert "| pd | ddim:uniform | 2 |" in text and "| 192 (128 in ddpm's run + 64 tuning) |" in text
