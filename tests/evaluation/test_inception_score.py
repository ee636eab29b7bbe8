"""Inception Score: its two extremes (1 and the number of classes) and input checks."""
from __future__ import annotations

import math

import pytest
import torch

from lit_diffusion.evaluation.inception_score import inception_score


def test_uniform_predictions_score_one():
    mean, std = inception_score(torch.zeros(100, 7), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    assert inception_score(probs=torch.full((50, 4), 0.25), splits=5)[0] == pytest.approx(1.0, abs=1e-12)


def test_confident_balanced_predictions_score_the_number_of_classes():
    c = 10
    probs = torch.eye(c).repeat(20, 1)  # every split of 20 holds each class twice
    assert inception_score(probs=probs, splits=10)[0] == pytest.approx(c, rel=1e-12)
    logits = 50.0 * torch.eye(c).repeat(20, 1)  # softmax is one-hot up to e^-50
    assert inception_score(logits, splits=10)[0] == pytest.approx(c, rel=1e-6)


def test_confident_but_one_class_scores_one():
    probs = torch.zeros(30, 5)
    probs[:, 2] = 1
    assert inception_score(probs=probs, splits=3)[0] == pytest.approx(1.0, abs=1e-12)


def test_logits_and_probs_agree():
    logits = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    a = inception_score(logits, splits=4)
    b = inception_score(probs=torch.softmax(logits.double(), 1), splits=4)
    assert a[0] == pytest.approx(b[0], rel=1e-9) and a[1] == pytest.approx(b[1], rel=1e-6)
    assert 1 < a[0] < 6 and not math.isnan(a[1])


def test_bad_inputs():
    with pytest.raises(ValueError, match="exactly one of"):
        inception_score(torch.zeros(10, 3), probs=torch.full((10, 3), 1 / 3))
    with pytest.raises(ValueError, match="exactly one of"):
        inception_score()
    with pytest.raises(ValueError, match="cannot be cut into splits=10"):
        inception_score(torch.zeros(5, 3), splits=10)
    with pytest.raises(ValueError, match="sum to 1"):
        inception_score(probs=torch.ones(10, 3), splits=2)
    with pytest.raises(ValueError, match=r"logits must be an \(N, C\)"):
        inception_score(torch.zeros(10), splits=2)
