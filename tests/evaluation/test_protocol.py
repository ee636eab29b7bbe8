"""Protocol card and reference-statistics provenance: the card is filled from a real feature network and real
reference statistics, and statistics from another evaluator or dataset are refused with a message that says so."""
from __future__ import annotations

import json

import pytest

from lit_diffusion.evaluation.classifier import ClassifierFeatures
from lit_diffusion.evaluation.protocol import ProtocolCard
from lit_diffusion.evaluation.reference import (ReferenceMismatchError, check_reference, reference_from_features,
                                                reference_stats, stats_sha256)


@pytest.fixture(scope="module")
def reference(digits_net, digits, cache_dir):
    return reference_stats(digits_net, digits["train"], cache_dir=cache_dir, num_workers=0)


def test_reference_records_its_provenance(reference, digits_net, digits):
    from lit_diffusion.evaluation.shards import SplitReader

    assert reference["evaluator"] == digits_net.name
    assert reference["weights_sha256"] == digits_net.weights_sha256 and len(reference["weights_sha256"]) == 64
    assert reference["resize"] == digits_net.resize
    assert reference["split"] == "train" and reference["num"] == 1438
    assert reference["dataset_fingerprint"] == SplitReader(digits["train"], num_workers=0).info.fingerprint
    assert reference["stats_sha256"] == stats_sha256(reference["mu"], reference["sigma"])
    check_reference(reference, digits_net, reference["dataset_fingerprint"])  # no error


def test_statistics_from_another_evaluator_or_dataset_are_refused(reference, digits_net, digits):
    from lit_diffusion.evaluation.shards import SplitReader

    other_net = ClassifierFeatures(1, (8, 8), 10)  # untrained: other weights
    with pytest.raises(ReferenceMismatchError, match=f"evaluator {digits_net.name}.*{other_net.fingerprint}.*recompute"):
        check_reference(reference, other_net)
    val_fp = SplitReader(digits["val"], num_workers=0).info.fingerprint
    with pytest.raises(ReferenceMismatchError, match=f"dataset {reference['dataset_fingerprint']} \\(split train\\), "
                                                     f"not of dataset {val_fp}.*recompute"):
        check_reference(reference, digits_net, val_fp)
    with pytest.raises(ReferenceMismatchError, match="evaluator"):
        ProtocolCard.from_evaluation(other_net, reference, num_generated=10)


def test_protocol_card(reference, digits_net):
    card = ProtocolCard.from_evaluation(digits_net, reference, num_generated=500, sampler="heun", grid="edm",
                                       nfe=9, guidance=None, ema="sigma_rel=0.05", seeds=[0, 1, 2],
                                       command="lit-diffusion compare run suite.yaml")
    d = card.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["evaluator"] == digits_net.name and d["weights_sha256"] == digits_net.weights_sha256
    assert d["reference_dataset"] == reference["dataset_fingerprint"] and d["reference_count"] == 1438
    assert d["reference_stats_sha256"] == reference["stats_sha256"] and d["seeds"] == [0, 1, 2]
    assert d["nfe"] == 9 and d["command"] == "lit-diffusion compare run suite.yaml"
    md = card.markdown()
    assert f"| evaluator | {digits_net.name} |" in md and "| NFE | 9 |" in md and "| guidance | — |" in md
    assert "| reference | split train, 1438 images" in md and md.count("\n") == len(d) - 1
    assert card.with_run(nfe=35).nfe == 35
    with pytest.raises(ValueError, match="nfe must be >= 1"):
        card.with_run(nfe=0)


def test_reference_from_features_equals_reference_stats(reference, digits_net, digits):
    from eval_helpers import read_all
    from lit_diffusion.evaluation.metrics import extract

    x, _ = read_all(digits["train"], labels=False)
    ref = reference_from_features(digits_net, extract(digits_net, x)[0], reference["dataset_fingerprint"], "train")
    assert ref["stats_sha256"] != "" and ref["num"] == reference["num"]
    assert (ref["mu"] - reference["mu"]).abs().max() < 1e-5 * reference["mu"].abs().max()
    assert (ref["sigma"] - reference["sigma"]).abs().max() < 1e-5 * reference["sigma"].abs().max()
