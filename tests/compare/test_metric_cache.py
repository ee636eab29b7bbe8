"""Scores cached under each metric's fingerprint: a metric added to a suite is computed alone, the others are
kept; entries from before fingerprints (or of another feature network) are scored again; the table and the
report render whatever metrics the suite names."""
import torch

from lit_diffusion.compare.aggregate import summarise
from lit_diffusion.compare.report import _scores_table
from lit_diffusion.compare.results import MetricColumn, ScoreRow, Setting
from lit_diffusion.compare.score import FINGERPRINTS_KEY, score_samples, stale_metrics
from lit_diffusion.evaluation.feature_network import FeatureNetwork
from lit_diffusion.evaluation.metric import Reference, Samples
from lit_diffusion.evaluation.metric_registry import make_metrics
from lit_diffusion.evaluation.reference import reference_from_features


class PixelFeatures(FeatureNetwork):
    """The first `width` pixels as features: a feature network with no weights, for plumbing."""

    num_classes = 0

    def __init__(self, width: int):
        super().__init__()
        self.num_features, self.name = width, f"pixels{width}"

    @property
    def fingerprint(self) -> str:
        return self.name

    def features_and_logits(self, x):
        f = x.flatten(1)[:, :self.num_features].float()
        return f, f.new_zeros(f.shape[0], 0)


def _reference(*nets):
    real = torch.rand(64, 1, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = Reference()
    for net in nets:
        reference.provide(net, reference_from_features(net, net.features(real), "toy", "train"))
    return reference


def test_new_metric_is_computed_alone_and_old_entries_are_rescored():
    net, other = PixelFeatures(6), PixelFeatures(5)
    reference = _reference(net, other)
    samples = Samples(torch.rand(32, 1, 4, 4, generator=torch.Generator().manual_seed(1)) * 2 - 1)
    fd, kid = make_metrics(["fd", "kid"], net)
    entry = score_samples(samples, [fd, kid], reference, bootstrap=20)
    assert {"fd", "fd_low", "fd_high", "kid", "kid_std"} <= set(entry) and entry["fd_low"] <= entry["fd"] <= entry["fd_high"]
    assert entry[FINGERPRINTS_KEY] == {"fd": fd.fingerprint, "kid": kid.fingerprint}
    assert stale_metrics(entry, [fd, kid], bootstrap=20) == []
    recall = make_metrics(["recall"], net)[0]
    assert stale_metrics(entry, [fd, kid, recall], bootstrap=20) == [recall]  # the new metric alone
    fd_other = make_metrics(["fd"], other)[0]  # FD in another feature space: another fingerprint
    assert stale_metrics(entry, [fd_other, kid], bootstrap=0) == [fd_other]
    today = {k: v for k, v in entry.items() if k != FINGERPRINTS_KEY}  # an entry written before fingerprints
    assert stale_metrics(today, [fd, kid], bootstrap=0) == [fd, kid]
    no_interval = {k: v for k, v in entry.items() if not k.startswith("fd_")}
    assert stale_metrics(no_interval, [fd, kid], bootstrap=20) == [fd]  # its interval is asked but missing


def test_table_and_report_render_the_suites_metrics():
    columns = [MetricColumn("fd_dinov2", "FD_DINOv2"), MetricColumn("recall", "recall", lower_is_better=False)]
    rows = [ScoreRow(o, 0, Setting("euler", None, 4), False, {"fd_dinov2": v, "recall": r, "fd_dinov2_low": v - 1,
                                                              "fd_dinov2_high": v + 1}, 4, primary="fd_dinov2")
            for o, v, r in (("a", 10.0, 0.5), ("b", 20.0, 0.7))]
    summary = summarise(["a", "b"], [0], rows, columns)
    assert summary.best["a"].score == [10.0] and summary.verdict(4) == "a (euler)"  # 11 < 19: separated
    lines = _scores_table(summary, {"varying": [], "rows": {}})
    assert lines[0] == "| objective | sampler | NFE | FD_DINOv2 ↓ | FD_DINOv2 95% interval | recall ↑ |"
    assert lines[2] == "| a | euler | 4 | 10.000 | [9.000, 11.000] | 0.500 |"
    higher = summarise(["a", "b"], [0], [ScoreRow(r.objective, 0, r.setting, False, r.metrics, 4, primary="recall")
                                          for r in rows], columns[::-1])
    assert higher.winners[4].objective == "b"  # recall: higher is better


def test_a_suite_asking_fd_dinov2_without_weights_stops_before_training(tmp_path, monkeypatch):
    from pathlib import Path

    import pytest

    from lit_diffusion.compare.runner import run_suite
    from lit_diffusion.compare.suite import load_suite
    from lit_diffusion.evaluation.dinov2 import WEIGHTS_ENV

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    from dataclasses import replace

    suite = load_suite(Path(__file__).resolve().parents[2] / "experiments/compare/quickstart.yaml")
    suite = replace(suite, out=str(tmp_path / "out"), shards=str(tmp_path / "no-shards"),
                    evaluation=replace(suite.evaluation, metrics=["fd", "fd_dinov2"]))
    with pytest.raises(ValueError, match=f"set {WEIGHTS_ENV}"):
        run_suite(suite, log=lambda line: None)
    assert not (tmp_path / "no-shards").exists() and not (tmp_path / "out" / "runs").exists()
