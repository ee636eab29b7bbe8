"""Feature networks: Inception's offline error path, and the project's classifier on real digits
(training, cache, determinism, input checks)."""
from __future__ import annotations

import os
import time

import pytest
import torch

from eval_helpers import SMALL, read_all
from lit_diffusion.evaluation import classifier as classifier_module
from lit_diffusion.evaluation.features import (ClassifierConfig, ClassifierFeatures, FeatureNetwork,
                                               InceptionFeatures, load_or_train_classifier, train_classifier)

INCEPTION_WEIGHTS = os.environ.get("LIT_DIFFUSION_INCEPTION_WEIGHTS")


def test_inception_without_weights_explains_where_they_come_from():
    with pytest.raises(ValueError, match="weights_path is required") as e:
        InceptionFeatures()
    msg = str(e.value)
    assert "internet" in msg and "inception-2015-12-05.pt" in msg and "load_or_train_classifier" in msg


def test_inception_with_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        InceptionFeatures(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05-6726825d.pth expected"):
        InceptionFeatures(tmp_path, backend="torchmetrics")  # a folder without the file
    with pytest.raises(ValueError, match="backend must be one of"):
        InceptionFeatures(tmp_path, backend="tf")


@pytest.mark.skipif(not INCEPTION_WEIGHTS, reason="Inception-v3 weights cannot be downloaded here; set "
                    "LIT_DIFFUSION_INCEPTION_WEIGHTS to a local inception-2015-12-05.pt to run this")
def test_inception_with_real_weights():
    net = InceptionFeatures(INCEPTION_WEIGHTS)
    f, logits = net.features_and_logits(torch.rand(4, 3, 32, 32) * 2 - 1)
    assert f.shape == (4, 2048) and logits.shape == (4, 1008) and (f >= 0).all()
    assert net.features(torch.zeros(2, 1, 28, 28)).shape == (2, 2048)


def test_digits_classifier_learns_and_reports_accuracy(digits_net):
    assert isinstance(digits_net, FeatureNetwork)
    assert digits_net.test_accuracy >= 0.9  # 8x8 digits, 150 steps
    assert digits_net.fingerprint.startswith("classifier-w16-h128-1x8x8-")


def test_features_and_logits_shapes(digits_net, digits):
    x, y = read_all(digits["val"])
    f, logits = digits_net.features_and_logits(x[:50])
    assert f.shape == (50, 128) and logits.shape == (50, 10) and f.dtype == torch.float32
    assert torch.equal(digits_net.features(x[:50]), f) and torch.equal(digits_net.logits(x[:50]), logits)
    assert (logits.argmax(1) == y[:50]).float().mean() > 0.85
    assert not digits_net.training and not digits_net.train().training  # always in eval mode


def test_second_call_hits_the_cache(digits_net, digits, cache_dir, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("retrained although the classifier is cached")

    monkeypatch.setattr(classifier_module, "_fit", no_training)
    start = time.perf_counter()
    again = load_or_train_classifier(digits["train"], digits["val"], cache_dir, ClassifierConfig(**SMALL), num_workers=0)
    assert time.perf_counter() - start < 5
    assert again.fingerprint == digits_net.fingerprint and again.test_accuracy == digits_net.test_accuracy
    assert again.cache_path.parent == cache_dir and again.cache_path.is_file()


def test_cache_key_follows_hyper_parameters_and_env(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("LIT_DIFFUSION_CACHE", str(tmp_path / "env_root"))
    config = ClassifierConfig(epochs=1, batch_size=64, width=4, hidden=8)
    net = load_or_train_classifier(digits["train"], config=config, num_workers=0)
    assert net.cache_path.parent == tmp_path / "env_root" / "features"
    other = load_or_train_classifier(digits["train"], config=ClassifierConfig(epochs=1, batch_size=64, width=4, hidden=8,
                                                                              seed=1), num_workers=0)
    assert other.cache_path != net.cache_path and other.fingerprint != net.fingerprint
    assert net.test_accuracy is None

    def no_training(*args, **kwargs):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(classifier_module, "_fit", no_training)  # a test set later: scored, not retrained
    scored = load_or_train_classifier(digits["train"], digits["val"], config=config, num_workers=0)
    assert scored.fingerprint == net.fingerprint and 0.1 < scored.test_accuracy <= 1
    assert load_or_train_classifier(digits["train"], config=config).test_accuracy == scored.test_accuracy


def test_training_is_deterministic_from_tensors():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 3, 8, 8, generator=g) * 2 - 1
    y = (x.mean(dim=(1, 2, 3)) > 0).long()
    config = ClassifierConfig(epochs=2, batch_size=32, width=4, hidden=16)
    a, b = train_classifier((x, y), config=config), train_classifier((x, y), config=config)
    assert a.fingerprint == b.fingerprint and a.dataset_fingerprint == b.dataset_fingerprint
    assert a.dataset_fingerprint.startswith("tensors-")
    c = train_classifier((x, y), config=ClassifierConfig(epochs=2, batch_size=32, width=4, hidden=16, seed=5))
    assert c.fingerprint != a.fingerprint
    restored = ClassifierFeatures.from_payload(a.payload())
    assert restored.fingerprint == a.fingerprint and torch.equal(restored.features(x[:4]), a.features(x[:4]))


def test_bad_inputs(digits_net):
    with pytest.raises(ValueError, match="x has 3 channels, this network takes 1"):
        digits_net.features(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="x is 28x28, this network was trained on 8x8"):
        digits_net.features(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        digits_net.logits(torch.zeros(1, 8, 8))
    with pytest.raises(ValueError, match="must be float"):
        digits_net.logits(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        ClassifierConfig(batch_size=0)
    with pytest.raises(ValueError, match="labels must be an integer tensor of shape \\(4,\\)"):
        train_classifier((torch.zeros(4, 1, 8, 8), torch.zeros(4)))
    with pytest.raises(ValueError, match="fewer than batch_size=128"):
        train_classifier((torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)))
