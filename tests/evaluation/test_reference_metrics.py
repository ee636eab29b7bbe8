"""Reading a split once, reference statistics and their cache, evaluate_samples and generation, on
real digits with the project's classifier as the feature network."""
from __future__ import annotations

import pytest
import torch

from eval_helpers import read_all
from lit_diffusion.evaluation import reference as reference_module
from lit_diffusion.evaluation.frechet import gaussian_stats
from lit_diffusion.evaluation.generate import generate_samples, sample_noise
from lit_diffusion.evaluation.metrics import evaluate_samples, extract
from lit_diffusion.evaluation.reference import RunningGaussian, reference_stats
from lit_diffusion.evaluation.shards import SplitReader

KEYS = {"fd", "kid", "kid_std", "is", "precision", "recall"}


def positions_and_keys(shards, **kwargs) -> dict[int, str]:
    out = {}
    for pos, batch in SplitReader(shards, **kwargs):
        for p, k in zip(pos.tolist(), batch["key"]):
            assert p not in out, f"position {p} read twice"
            out[p] = k
    return out


def test_split_reader_reads_each_sample_once_in_stored_order(digits):
    one = positions_and_keys(digits["train"], batch_size=100, num_workers=0)
    assert sorted(one) == list(range(1438))  # 15 batches of 100: the wrap-around padding is dropped
    assert positions_and_keys(digits["train"], batch_size=64, num_workers=2) == one  # workers interleave batches
    first = positions_and_keys(digits["train"], batch_size=64, num_workers=2, max_samples=300)
    assert first == {p: one[p] for p in range(300)}


def test_running_gaussian_merges_exactly():
    x = torch.randn(1000, 5, generator=torch.Generator().manual_seed(0)) * 3 + 100  # large mean: no cancellation
    running = RunningGaussian(5)
    for chunk in torch.split(x, 37):
        running.update(chunk)
    mu, sigma = running.stats()
    mu0, sigma0 = gaussian_stats(x)
    assert torch.allclose(mu, mu0, rtol=1e-13) and torch.allclose(sigma, sigma0, rtol=1e-11)


def test_reference_stats_match_direct_features_and_are_cached(digits_net, digits, tmp_path, monkeypatch):
    ref = reference_stats(digits_net, digits["train"], cache_dir=tmp_path, kid_pr_samples=500, batch_size=128,
                          num_workers=0)
    x, _ = read_all(digits["train"])
    f, _ = extract(digits_net, x)
    mu, sigma = gaussian_stats(f)
    assert ref["num"] == 1438 and ref["mu"].dtype == torch.float64
    assert torch.allclose(ref["mu"], mu, rtol=1e-9, atol=1e-9) and torch.allclose(ref["sigma"], sigma, rtol=1e-8, atol=1e-8)
    keep = reference_module.subset_positions(1438, 500, 0)
    assert torch.equal(ref["features_for_kid_pr"], f[keep])
    assert ref["feature_fingerprint"] == digits_net.fingerprint and len(list(tmp_path.glob("reference-*.pt"))) == 1

    def no_compute(*args, **kwargs):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(reference_module, "_compute", no_compute)
    again = reference_stats(digits_net, digits["train"], cache_dir=tmp_path, kid_pr_samples=500)
    assert torch.equal(again["sigma"], ref["sigma"]) and torch.equal(again["features_for_kid_pr"], ref["features_for_kid_pr"])
    with pytest.raises(AssertionError, match="recomputed"):  # another max_samples is another entry
        reference_stats(digits_net, digits["train"], max_samples=1000, cache_dir=tmp_path, kid_pr_samples=500)


def test_reference_stats_of_the_first_max_samples(digits_net, digits, tmp_path):
    ref = reference_stats(digits_net, digits["train"], max_samples=700, cache_dir=tmp_path, kid_pr_samples=2000,
                          num_workers=2, batch_size=64)
    x, _ = read_all(digits["train"])
    f, _ = extract(digits_net, x[:700])
    assert ref["num"] == 700 and ref["features_for_kid_pr"].shape == (700, 128)
    assert torch.allclose(ref["mu"], gaussian_stats(f)[0], rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def digits_reference(digits_net, digits, cache_dir):
    return reference_stats(digits_net, digits["train"], cache_dir=cache_dir, num_workers=0)


def test_real_samples_score_well_and_noise_badly(digits_net, digits, digits_reference):
    x, y = read_all(digits["val"])
    real = evaluate_samples(x, digits_net, digits_reference, labels=y)
    noise = evaluate_samples(torch.rand_like(x) * 2 - 1, digits_net, digits_reference, labels=y)
    assert set(real) == KEYS | {"class_accuracy"} and all(isinstance(v, float) for v in real.values())
    assert real["class_accuracy"] == pytest.approx(digits_net.test_accuracy)  # val labels, val images
    assert real["fd"] * 10 < noise["fd"] and real["kid"] < noise["kid"] / 10
    assert real["precision"] > 0.7 and real["recall"] > 0.7 and noise["precision"] < 0.3
    assert real["is"] > 5 and noise["class_accuracy"] < 0.3
    assert set(evaluate_samples(x, digits_net, digits_reference)) == KEYS
    assert evaluate_samples(x, digits_net, digits_reference, labels=y) == real  # deterministic (seeded KID)


def test_bad_inputs(digits_net, digits_reference):
    x = torch.zeros(20, 1, 8, 8)
    with pytest.raises(ValueError, match=r"labels must be an integer tensor of shape \(20,\)"):
        evaluate_samples(x, digits_net, digits_reference, labels=torch.zeros(19, dtype=torch.long))
    with pytest.raises(ValueError, match="reference lacks 'sigma'"):
        evaluate_samples(x, digits_net, {"mu": digits_reference["mu"], "features_for_kid_pr": x})
    with pytest.raises(ValueError, match="computed with feature network other"):
        evaluate_samples(x, digits_net, {**digits_reference, "feature_fingerprint": "other"})
    with pytest.raises(ValueError, match="x has 3 channels"):
        evaluate_samples(torch.zeros(20, 3, 8, 8), digits_net, digits_reference)
    with pytest.raises(ValueError, match="subset_size=50 is more than the 20 rows of f1"):
        evaluate_samples(x, digits_net, digits_reference, kid_subset_size=50)


def test_generation_noise_is_fixed_per_index():
    calls = []

    def sample_fn(noise, labels):
        calls.append(noise.shape[0])
        return torch.tanh(noise) + labels[:, None, None, None] * 0

    a, la = generate_samples(sample_fn, (1, 4, 4), 10, batch_size=3, seed=5, num_classes=4)
    b, lb = generate_samples(sample_fn, (1, 4, 4), 10, batch_size=10, seed=5, num_classes=4)
    assert calls == [3, 3, 3, 1, 10] and torch.equal(a, b) and torch.equal(la, lb)
    assert la.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert torch.equal(a[7], torch.tanh(sample_noise([7], (1, 4, 4), seed=5)[0]))
    assert not torch.equal(sample_noise([7], (4,), seed=5), sample_noise([7], (4,), seed=6))
    none, labels = generate_samples(lambda n, y: n, (2,), 4)
    assert labels is None and none.shape == (4, 2)
