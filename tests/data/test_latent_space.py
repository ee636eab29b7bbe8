"""The typed latent-space record (data/latent_space.py): an exact round trip with the plain dict that
dataset.json and checkpoints hold, attribute access, clear refusals of broken records, and the agreement check
between shards and a model."""
from __future__ import annotations

import json
import types

import pytest

from lit_diffusion.data.latent_space import AutoencoderRecord, LatentSpace, check_same_latent_space

# a record as `data encode` wrote it before the type existed (key order included)
ENCODED = {"autoencoder": {"kind": "diffusers", "location": "/vae", "subfolder": None, "weights_sha256": "ab" * 32,
                           "in_channels": 3, "latent_channels": 4, "factor": 8},
           "normalization": {"kind": "channel", "mean": [0.1, -0.2, 0.0, 0.3], "std": [1.0, 0.9, 1.1, 1.2]},
           "image_shape": [3, 256, 256], "flips": True, "stored": "posterior mean and std"}
# as `import diffusers --autoencoder` writes it into a checkpoint's model_spec: no "stored"
IMPORTED = {"autoencoder": {**ENCODED["autoencoder"], "kind": "framework", "location": "/ae.ckpt"},
            "normalization": {"kind": "scalar", "scale": 0.18215, "shift": 0.0}, "image_shape": [3, 32, 32],
            "flips": False}


@pytest.mark.parametrize("record", [ENCODED, IMPORTED])
def test_round_trip_is_exact_down_to_the_json_text(record):
    space = LatentSpace.from_dict(record)
    assert space.to_dict() == record
    assert json.dumps(space.to_dict()) == json.dumps(record)  # same key order: dataset.json text unchanged
    assert LatentSpace.from_dict(space.to_dict()) == space


def test_attributes_and_the_normalizer():
    space = LatentSpace.from_dict(IMPORTED)
    assert space.autoencoder == AutoencoderRecord.from_dict(IMPORTED["autoencoder"])
    assert space.autoencoder.factor == 8 and space.image_shape == (3, 32, 32) and not space.flips
    assert space.stored is None and space.normalizer.kind == "scalar" and space.normalizer.scale == 0.18215


def test_unknown_keys_survive_and_the_input_is_not_shared():
    record = json.loads(json.dumps(ENCODED))
    record["future"] = {"x": 1}
    space = LatentSpace.from_dict(record)
    assert space.to_dict() == record
    record["normalization"]["mean"][0] = 99.0
    assert space.normalization["mean"][0] == 0.1  # a copy: editing the loaded dict cannot change the record


def test_broken_records_are_refused_clearly():
    with pytest.raises(ValueError, match=r"the latent record lacks \['flips'\]"):
        LatentSpace.from_dict({k: v for k, v in ENCODED.items() if k != "flips"})
    with pytest.raises(ValueError, match=r"autoencoder lacks \['weights_sha256'\]"):
        LatentSpace.from_dict({**ENCODED, "autoencoder": {"kind": "framework", "location": "x", "subfolder": None,
                                                          "in_channels": 1, "latent_channels": 2, "factor": 2}})
    with pytest.raises(ValueError, match="normalisation kind must be scalar, channel or none"):
        LatentSpace.from_dict({**ENCODED, "normalization": {"kind": "log"}})
    with pytest.raises(ValueError, match="must be a mapping"):
        LatentSpace.from_dict(["not", "a", "dict"])


def _info(kind: str, build: dict):
    """What of_dataset reads of a DatasetInfo: its kind and build section."""
    return types.SimpleNamespace(kind=kind, build=build)


def test_optional_records_and_datasets():
    assert LatentSpace.from_optional(None) is None
    space = LatentSpace.from_dict(ENCODED)
    assert LatentSpace.from_optional(ENCODED) == space
    assert LatentSpace.of_dataset(_info("tensor", {"latent": ENCODED})) == space
    assert LatentSpace.of_dataset(_info("tensor", {})) is None  # a plain tensor dataset
    assert LatentSpace.of_dataset(_info("image", {"latent": ENCODED})) is None  # only tensor datasets are latents


def test_shards_and_model_must_share_the_latent_space():
    a = LatentSpace.from_dict(ENCODED)
    check_same_latent_space(None, None, "shards", "model")
    check_same_latent_space(a, LatentSpace.from_dict(ENCODED), "shards", "model")
    with pytest.raises(ValueError, match="shards holds latents but model was trained on pixels"):
        check_same_latent_space(a, None, "shards", "model")
    other = LatentSpace.from_dict({**ENCODED, "autoencoder": {**ENCODED["autoencoder"], "weights_sha256": "cd" * 32}})
    with pytest.raises(ValueError, match="another autoencoder .*--autoencoder /vae"):
        check_same_latent_space(other, a, "shards", "model")
    rescaled = LatentSpace.from_dict({**ENCODED, "normalization": {"kind": "none"}})
    with pytest.raises(ValueError, match="encode with the same --normalization"):
        check_same_latent_space(rescaled, a, "shards", "model")


def test_a_module_reads_the_typed_record_and_keeps_the_plain_one_for_its_checkpoint():
    from lit_diffusion.backbones import MLP
    from lit_diffusion.objectives import FlowMatching
    from lit_diffusion.training.module import DiffusionModule

    module = DiffusionModule(MLP(dim=2, width=8, depth=1), FlowMatching(), latent=ENCODED)
    assert module.latent == LatentSpace.from_dict(ENCODED) and module.hparams["latent"] == ENCODED
    assert DiffusionModule(MLP(dim=2, width=8, depth=1), FlowMatching()).latent is None
