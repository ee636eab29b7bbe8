"""The protocol card in the comparison report: one card of the fields every score shares plus the fields that
differ, in report.md and in the W&B run (offline), with the scores' intervals and each run's compute."""
import json
from pathlib import Path

import pytest

from lit_diffusion.compare.aggregate import summarise
from lit_diffusion.compare.card import card_markdown, shared_and_varying
from lit_diffusion.compare.report import _to_wandb, collect_cards
from lit_diffusion.compare.results import ScoreRow, Setting, TrainRecord
from lit_diffusion.compare.suite import load_suite

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments/compare/quickstart.yaml"
CARD = {"evaluator": "classifier", "weights_sha256": "ab" * 32, "num_generated": 500, "sampler": "euler", "nfe": 1,
        "seeds": [0], "command": "lit-diffusion compare -c s.yaml"}


def _scores():
    def row(obj, key, nfe, fd):
        card = CARD | {"sampler": key, "nfe": nfe}
        return ScoreRow(obj, 0, Setting.from_suite(key, nfe), False, {"fd": fd, "kid": 0.0, "fd_low": fd - 0.5,
                                                                    "fd_high": fd + 0.5}, nfe, card)
    return [row("fm", "euler", 1, 3.0), row("fm", "euler", 4, 2.0), row("ct", "consistency", 1, 1.0)]


def test_shared_card_and_varying_fields():
    scores = _scores()
    shared, varying = shared_and_varying([r.protocol for r in scores])
    assert varying == ["sampler", "nfe"] and shared == {k: v for k, v in CARD.items() if k not in varying}
    assert "| command | `lit-diffusion compare -c s.yaml` |" in card_markdown(shared)
    assert shared_and_varying([]) == ({}, [])


def test_wandb_gets_the_card_the_scores_and_the_compute(tmp_path, monkeypatch, request):
    wandb = pytest.importorskip("wandb")
    from lit_diffusion.runs.wandb_offline import load_offline_runs

    for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_PROJECT": "lit-diffusion-test",
                       "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
                       "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache")}.items():
        monkeypatch.setenv(key, value)
    wandb.teardown()
    request.addfinalizer(wandb.teardown)
    suite = load_suite(QUICKSTART)
    scores = _scores()
    summary = summarise(["fm", "ct"], [0], scores)
    cards = collect_cards(summary, [(r.objective, r.setting, r.protocol) for r in scores])
    records = {("fm", 0): TrainRecord(10.0, 640, 1000, 64.0, 2.0e6, 1.28e9, 10),
               ("ct", 0): TrainRecord(12.0, 640, 1000, 53.3, 3.0e6, 1.92e9, 10)}
    _to_wandb(suite, ["# report"], tmp_path, cards, records, summary)
    wandb.teardown()  # the offline run's records reach its file when the wandb service stops
    run = next(iter(load_offline_runs(tmp_path / "wandb").values()))
    assert run.config["protocol"] == cards["shared"] and run.config["budget"] == "27,200 images per run"
    assert run.summary["protocol_varying_fields"] == ["sampler", "nfe"]
    logged = {k for row in run.history for k in row}
    assert {"scores", "compute", "report"} <= logged
